"""The MLflow tracker with a toy evaluator, into a temporary SQLite store."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from rlnas.config import Config, TrackingConfig
from rlnas.errors import TrackingError
from rlnas.executors import InlineExecutor
from rlnas.search import Budget, FailurePolicy, Search
from rlnas.strategies import RandomSearch
from rlnas.tracking import MLflowTracker, flatten, normalize_uri

mlflow = pytest.importorskip("mlflow")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One SQLite store for the module (creating one takes seconds); tests use their own
    experiment in it."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('store')}/mlflow.db"
    return uri, mlflow.MlflowClient(uri)


@pytest.fixture
def experiment(request):
    return request.node.name


def search_with(store, experiment, space, evaluator, budget, *, strategy=None, **kw):
    uri, _ = store
    tracker = MLflowTracker(uri, experiment, task="toytask")
    tracker.connect()
    strategy = strategy or RandomSearch(space, seed=0)
    search = Search(strategy, InlineExecutor(evaluator), budget, observers=[tracker], **kw)
    return tracker, search.run()


def runs_of(client, tracker):
    runs = client.search_runs([tracker.experiment_id], max_results=1000)
    parent = [r for r in runs if r.info.run_id == tracker.run_id]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == tracker.run_id]
    assert len(parent) == 1 and len(runs) == 1 + len(children)
    return parent[0], sorted(children, key=lambda r: int(r.data.tags["rlnas.child"]))


def artifacts(client, run_id, path=None):
    return sorted(a.path for a in client.list_artifacts(run_id, path))


def test_parent_and_children_carry_params_tags_metrics_and_artifacts(
    store, experiment, toy_space, toy_evaluator
):
    _, client = store
    tracker, result = search_with(store, experiment, toy_space, toy_evaluator(), Budget(5))
    parent, children = runs_of(client, tracker)

    assert parent.info.status == "FINISHED"
    assert parent.info.run_name == f"search-toy-toytask-random-{tracker.run_id[:4]}"
    tags = parent.data.tags
    assert tags["rlnas.space"] == "toy" and tags["rlnas.task"] == "toytask"
    assert tags["rlnas.strategy"] == "random" and tags["rlnas.stopped"] == "budget"
    assert tags["rlnas.version"] == __import__("rlnas").__version__
    best = result.best
    assert parent.data.metrics["search/best_reward"] == best.reward
    assert parent.data.metrics["search/children"] == 5
    history = client.get_metric_history(tracker.run_id, "child/reward")
    assert [m.step for m in history] == [0, 1, 2, 3, 4]
    assert [m.value for m in history] == [t.reward for t in result.trials]
    best_curve = [m.value for m in client.get_metric_history(tracker.run_id, "search/best_so_far")]
    assert best_curve == sorted(best_curve) and best_curve[-1] == best.reward
    assert artifacts(client, tracker.run_id) == [
        "best_architecture.json",
        "plots",
        "space.json",
        "top_k.csv",
        "top_k.md",
    ]
    assert artifacts(client, tracker.run_id, "plots") == ["plots/rewards.png"]
    top = client.download_artifacts(tracker.run_id, "top_k.csv")
    lines = Path(top).read_text().splitlines()
    assert lines[0].startswith("rank,child,reward,train_seconds,architecture_hash,run_id,width")
    assert len(lines) == 1 + 5 and lines[1].split(",")[1] == str(best.number)
    assert tags["rlnas.best_run_id"] == children[best.number].info.run_id

    assert len(children) == 5
    for run, trial in zip(children, result.trials):
        assert run.info.status == "FINISHED"
        assert run.info.run_name == f"{tracker.run_id[:4]}-child-{trial.number:04d}"
        made = {
            k: json.dumps(v) if not isinstance(v, str) else v for k, v in trial.architecture.items()
        }
        assert run.data.params == {"dropout": "inactive", **made}  # every decision, always
        t = run.data.tags
        assert t["rlnas.architecture_hash"] == trial.architecture.hash
        assert t["rlnas.status"] == "COMPLETE" and t["rlnas.strategy"] == "random"
        assert t["rlnas.controller_step"] == "0"
        m = run.data.metrics
        assert m["reward"] == trial.reward
        assert m["child/params"] == trial.architecture["width"] * 10
        assert m["child/train_seconds"] == 0.5
        curve = client.get_metric_history(run.info.run_id, "child/val_accuracy")
        assert [(x.step, x.value) for x in curve] == list(enumerate(trial.history["val_accuracy"]))
        assert artifacts(client, run.info.run_id) == [
            "architecture.json",
            "architecture.svg",
            "model_summary.txt",
        ]
        arch = json.loads(
            Path(client.download_artifacts(run.info.run_id, "architecture.json")).read_text()
        )
        assert arch["decisions"] == dict(trial.architecture)

    summary = tracker.summary(result)
    assert summary["run_id"] == tracker.run_id and summary["status"] == "FINISHED"
    assert summary["children"] == 5 and summary["failed"] == 0
    assert summary["best_decisions"] == dict(best.architecture)
    assert summary["best_run_id"] == children[best.number].info.run_id


def test_failed_children_are_failed_runs_with_the_reason(
    store, experiment, toy_space, toy_evaluator
):
    _, client = store
    evaluator = toy_evaluator(fail=lambda a, n: n % 2 == 1)
    tracker, result = search_with(store, experiment, toy_space, evaluator, Budget(4))
    parent, children = runs_of(client, tracker)
    assert parent.info.status == "FINISHED"
    assert [r.info.status for r in children] == ["FINISHED", "FAILED"] * 2
    failed = children[1]
    assert failed.data.tags["rlnas.status"] == "FAILED"
    assert failed.data.tags["rlnas.failure_reason"] == "nan_loss"
    assert "diverged" in failed.data.tags["rlnas.message"]
    assert "reward" not in failed.data.metrics
    assert len(client.get_metric_history(tracker.run_id, "child/reward")) == 2
    assert tracker.summary(result)["failed"] == 2


def test_aborted_search_is_a_failed_parent(store, experiment, toy_space, toy_evaluator):
    _, client = store
    tracker, result = search_with(
        store,
        experiment,
        toy_space,
        toy_evaluator(fail=lambda a, n: True),
        Budget(10),
        failures=FailurePolicy(max_consecutive=2),
    )
    parent, children = runs_of(client, tracker)
    assert result.stopped == "aborted"
    assert parent.info.status == "FAILED"
    assert parent.data.tags["rlnas.stopped"] == "aborted"
    assert "2 children failed in a row" in parent.data.tags["rlnas.message"]
    assert [r.info.status for r in children] == ["FAILED", "FAILED"]


def test_interrupted_search_is_killed_and_no_run_stays_running(
    store, experiment, toy_space, toy_evaluator
):
    _, client = store
    tracker, result = search_with(
        store, experiment, toy_space, toy_evaluator(interrupt_at=2), Budget(10)
    )
    parent, children = runs_of(client, tracker)
    assert parent.info.status == "KILLED"
    assert [r.info.status for r in children] == ["FINISHED", "FINISHED", "KILLED"]
    assert children[2].data.tags["rlnas.status"] == "KILLED"
    assert tracker.summary(result)["killed"] == 1


def test_a_crash_ends_the_parent_run_failed(store, experiment, toy_space, toy_evaluator):
    _, client = store

    class Crash:
        def trial_finished(self, search, trial):
            raise RuntimeError("a bug in an observer")

    uri, _ = store
    tracker = MLflowTracker(uri, experiment)
    search = Search(
        RandomSearch(toy_space),
        InlineExecutor(toy_evaluator()),
        Budget(3),
        observers=[tracker, Crash()],
    )
    with pytest.raises(RuntimeError, match="a bug in an observer"):
        search.run()  # the search tells its observers that it crashed
    assert client.get_run(tracker.run_id).info.status == "FAILED"
    tracker.abort("FAILED")  # harmless once ended
    assert client.get_run(tracker.run_id).info.status == "FAILED"

    tracker = MLflowTracker(uri, experiment)  # the same, as a context manager
    search = Search(
        RandomSearch(toy_space),
        InlineExecutor(toy_evaluator()),
        Budget(3),
        observers=[tracker, Crash()],
    )
    with pytest.raises(RuntimeError), tracker:
        search.run()
    assert client.get_run(tracker.run_id).info.status == "FAILED"
    running = client.search_runs([tracker.experiment_id], "attributes.status = 'RUNNING'")
    assert running == []


def test_cached_duplicates_say_where_their_reward_comes_from(
    store, experiment, toy_space, toy_evaluator
):
    _, client = store
    a = {"width": 64, "act": "gelu", "depth": 3, "dropout": 0.25}
    b = {"width": 8, "act": "tanh", "depth": 1}

    class Twice(RandomSearch):  # proposes a, a, b
        def ask(self):
            self.n = getattr(self, "n", 0) + 1
            return self.space.replay(a if self.n < 3 else b)[0]

    strategy = Twice(toy_space, unique=False)
    tracker, result = search_with(
        store, experiment, toy_space, toy_evaluator(), Budget(2), strategy=strategy
    )
    _, children = runs_of(client, tracker)
    assert len(children) == 3
    cached = children[1]
    assert cached.data.tags["rlnas.cached_from"] == "0"
    assert cached.data.tags["rlnas.cached_from_run"] == children[0].info.run_id
    assert cached.data.metrics["reward"] == children[0].data.metrics["reward"] == 0.95
    assert cached.data.metrics["child/train_seconds"] == 0.0
    assert "rlnas.cached_from" not in children[2].data.tags
    assert tracker.summary(result)["cached"] == 1


def test_config_is_logged_as_yaml_and_flat_params(store, experiment, toy_space, toy_evaluator):
    uri, client = store
    cfg = Config(tracking=TrackingConfig(uri=uri, experiment=experiment))
    tracker = MLflowTracker.from_config(cfg)
    assert tracker.task == "digits"
    search = Search(
        RandomSearch(toy_space), InlineExecutor(toy_evaluator()), Budget(1), observers=[tracker]
    )
    search.run()
    params = client.get_run(tracker.run_id).data.params
    assert params["child.epochs"] == "1"
    assert params["layers.filters"] == "[16, 32, 64]"
    assert params["controller.from"] == "null"
    text = Path(client.download_artifacts(tracker.run_id, "config.yaml")).read_text()
    assert "epochs: 1" in text and f"experiment: {experiment}" in text


def test_store_that_does_not_answer_fails_fast_with_one_line():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tracker = MLflowTracker(f"http://127.0.0.1:{port}")
    with pytest.raises(TrackingError, match=r"cannot reach the MLflow tracking server at") as e:
        tracker.connect()
    assert "\n" not in str(e.value)


def test_uris_and_params():
    assert normalize_uri("sqlite:///runs/mlflow.db").startswith("sqlite:////")
    assert normalize_uri("sqlite:////abs/x.db") == "sqlite:////abs/x.db"
    assert normalize_uri("http://127.0.0.1:5000") == "http://127.0.0.1:5000"
    assert flatten({"a": {"b": 1, "c": [1, 2]}, "d": None, "e": "x"}) == {
        "a.b": "1",
        "a.c": "[1, 2]",
        "d": "null",
        "e": "x",
    }


def test_passwords_never_reach_the_store_or_messages():
    from rlnas.tracking import redact
    from rlnas.tracking.tracker import _loggable

    uri = "postgresql://alice:s3cret@db.example:5432/mlflow"
    assert redact(uri) == "postgresql://alice:***@db.example:5432/mlflow"
    assert redact("sqlite:////tmp/x.db") == "sqlite:////tmp/x.db"
    cfg = Config(tracking=TrackingConfig(uri=uri))
    assert "s3cret" not in json.dumps(_loggable(cfg))


def test_a_deleted_experiment_is_refused_before_any_work(store, experiment):
    uri, client = store
    client.delete_experiment(client.create_experiment(experiment))
    with pytest.raises(TrackingError, match=rf"experiment '{experiment}' is deleted in"):
        MLflowTracker(uri, experiment).connect()


PROBE = """
import json, sys
sys.path.insert(0, sys.argv[2])
from conftest import ToyEvaluator, ToySpace
from rlnas.executors import InlineExecutor
from rlnas.search import Budget, Search
from rlnas.strategies import RandomSearch
from rlnas.tracking import MLflowTracker

seen = ["matplotlib.ft2font" in sys.modules]

class Probe(ToyEvaluator):
    def evaluate(self, architecture, *, seed, number):
        seen.append("matplotlib.ft2font" in sys.modules)
        return super().evaluate(architecture, seed=seed, number=number)

tracker = MLflowTracker(sys.argv[1], "probe")
tracker.connect()
strategy = RandomSearch(ToySpace(), seed=0)
Search(strategy, InlineExecutor(Probe()), Budget(2), observers=[tracker]).run()
print(json.dumps(seen))
"""


def test_the_plotting_library_is_loaded_before_the_first_child(tmp_path):
    """The reward plot is drawn as the search ends, where a Ctrl-C is likely; matplotlib's
    native modules are loaded as the search starts, so that Ctrl-C never interrupts their
    initialisation (which aborted the process on exit instead of a clean exit 130)."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    out = subprocess.run(
        [sys.executable, "-c", PROBE, uri, str(Path(__file__).parent)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen == [False, True, True]  # not loaded by the imports, loaded before child 0
