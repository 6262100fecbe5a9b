"""The reward cache: no architecture trained twice, in a search, across a resume, and
(``search.cache_across_searches``) across the searches of one tracking store."""

from __future__ import annotations

import json

import pytest
from conftest import ToyEvaluator, ToySpace

from rlnas import checkpoint as ckpt
from rlnas import cli, factory
from rlnas.executors import InlineExecutor
from rlnas.search import Budget, Search
from rlnas.strategies import Strategy
from rlnas.trial import TrialState

mlflow = pytest.importorskip("mlflow")

A = {"width": 64, "act": "gelu", "depth": 3, "dropout": 0.25}
B = {"width": 8, "act": "tanh", "depth": 1}
C = {"width": 32, "act": "relu", "depth": 1}


class Scripted(Strategy):
    """Proposes the given architectures in turn, then the last one for ever (a policy that
    has converged); ``search.unique: false``, so repeats are possible."""

    name = "scripted"

    def __init__(self, space, archs) -> None:
        super().__init__(space, unique=False)
        self.archs = archs
        self.asked = 0

    def ask(self):
        arch = self.archs[min(self.asked, len(self.archs) - 1)]
        self.asked += 1
        return self.space.replay(arch)[0]

    def tell(self, sample, reward):
        return None

    def state_dict(self):
        return {**super().state_dict(), "asked": self.asked}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.asked = state["asked"]


def test_a_converged_strategy_stops_after_a_bounded_run_of_repeats():
    evaluator = ToyEvaluator()
    strategy = Scripted(ToySpace(), [A, B, A, C])  # then C for ever
    result = Search(strategy, InlineExecutor(evaluator), Budget(children=50, repeats=6)).run()
    assert evaluator.calls == [0, 1, 3]  # A, B, C trained once each
    assert result.stopped == "converged"
    assert "the last 6 children proposed had all been evaluated before" in result.message
    cached = [t.cached_from for t in result.trials]
    assert cached == [None, None, 0, None, 3, 3, 3, 3, 3, 3]
    assert all(t.state is TrialState.COMPLETE for t in result.trials)
    assert result.trials[-1].reward == result.trials[3].reward and result.trials[-1].cost == 0


def test_repeats_in_a_row_only(toy_space):
    evaluator = ToyEvaluator()
    strategy = Scripted(toy_space, [A, A, B, B, C, C])
    result = Search(strategy, InlineExecutor(evaluator), Budget(children=3, repeats=2)).run()
    assert result.stopped == "budget"  # one repeat at a time never reaches 2 in a row
    assert evaluator.calls == [0, 2, 4]


def test_the_cache_survives_a_resume(tmp_path):
    class Crash(BaseException):
        pass

    class DiesAt(ToyEvaluator):
        def evaluate(self, architecture, *, seed, number):
            if number == 3:
                raise Crash
            return super().evaluate(architecture, seed=seed, number=number)

    def search(evaluator):
        saver = ckpt.Checkpoint(tmp_path, lambda: {"run_id": "run"})
        strategy = Scripted(ToySpace(), [A, B, A, C, B, A, C])
        return Search(strategy, InlineExecutor(evaluator), Budget(children=3), checkpoint=saver)

    with pytest.raises(Crash):
        search(DiesAt()).run()
    evaluator = ToyEvaluator()
    resumed = search(evaluator)
    resumed.load_state_dict(ckpt.read(tmp_path / "run" / ckpt.FILE)["search"])
    result = resumed.run()
    assert evaluator.calls == [3]  # C; A and B come from the cache of the first run
    assert [t.cached_from for t in result.trials] == [None, None, 0, None]
    assert result.stopped == "budget"


# -- across searches, through the command ---------------------------------------------------
@pytest.fixture
def toy_command(monkeypatch, tmp_path):
    """``rlnas search`` with the toy space and a toy evaluator (chosen per search)."""
    made: list[ToyEvaluator] = []

    def executor(cfg):
        made.append(ToyEvaluator(epochs=cfg.child.epochs))  # fingerprint "toy-<epochs>"
        return InlineExecutor(made[-1])

    monkeypatch.setattr(factory, "make_space", lambda cfg: ToySpace())
    monkeypatch.setattr(factory, "make_executor", executor)
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path}/mlflow.db"

    def search(name: str, *settings: str) -> tuple[dict, ToyEvaluator]:
        args = ["search", "-c", str(tmp_path / "c.yaml"), "--summary", f"{name}.json"]
        args += [f"--set={s}" for s in settings]
        assert cli.main([*args, "--no-progress"]) == 0
        return json.loads((tmp_path / f"{name}.json").read_text()), made[-1]

    (tmp_path / "c.yaml").write_text(
        f"strategy: random\nsearch: {{children: 4}}\ntracking: {{uri: '{uri}'}}\n"
    )
    return search, mlflow.MlflowClient(uri)


def children(client, summary) -> list:
    runs = client.search_runs(
        [summary["experiment_id"]], f"tags.`mlflow.parentRunId` = '{summary['run_id']}'"
    )
    return sorted(runs, key=lambda r: int(r.data.tags["rlnas.child"]))


def test_rewards_of_earlier_searches_are_reused_with_the_same_settings(toy_command):
    search, client = toy_command
    first, _ = search("first")
    earlier = {r.data.tags["rlnas.architecture_hash"]: r for r in children(client, first)}
    assert {r.data.tags["rlnas.fingerprint"] for r in earlier.values()} == {"toy-1"}

    second, evaluator = search("second", "search.cache_across_searches=true")
    runs = children(client, second)
    cached = runs[:4]  # the same seed proposes the same four children first
    for run in cached:
        source = earlier[run.data.tags["rlnas.architecture_hash"]]
        assert run.data.tags["rlnas.cached_from"] == source.info.run_id
        assert run.data.tags["rlnas.cached_from_run"] == source.info.run_id
        assert run.data.metrics["reward"] == source.data.metrics["reward"]
        assert run.data.metrics["child/train_seconds"] == 0
    assert evaluator.calls == [4, 5, 6, 7]  # the budget counts trained children only
    assert second["children"] == 4 and second["cached"] == 4

    other, evaluator = search("other", "search.cache_across_searches=true", "child.epochs=2")
    assert other["cached"] == 0 and evaluator.calls == [0, 1, 2, 3]  # other settings

    plain, evaluator = search("plain")  # the option is off by default
    assert plain["cached"] == 0 and evaluator.calls == [0, 1, 2, 3]
