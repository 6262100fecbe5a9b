"""The search loop with a toy space and a toy evaluator (no Keras, no MLflow)."""

from __future__ import annotations

import pytest

import rlnas.search as search_module
from rlnas.executors import InlineExecutor
from rlnas.search import Budget, FailurePolicy, Search
from rlnas.strategies import RandomSearch, Strategy
from rlnas.trial import TrialState


class Recorder:
    """An observer that writes down every event."""

    def __init__(self) -> None:
        self.events: list[tuple] = []

    def search_started(self, search):
        self.events.append(("started",))

    def trial_finished(self, search, trial):
        self.events.append(("trial", trial.number, trial.state))

    def controller_updated(self, search, metrics):
        self.events.append(("update", dict(metrics)))

    def search_finished(self, search, result):
        self.events.append(("finished", result.stopped))


class Scripted(Strategy):
    """Proposes the given architectures in turn; records what it is told; "updates" every
    ``every`` rewards."""

    name = "scripted"

    def __init__(self, space, archs, every: int = 0) -> None:
        super().__init__(space, unique=False)
        self.archs = archs
        self.every = every
        self.told: list[tuple[dict, float | None]] = []
        self.step = 0

    def ask(self):
        return self.space.replay(self.archs[len(self.told) % len(self.archs)])[0]

    def tell(self, sample, reward):
        self.told.append((dict(sample.architecture), reward))
        if self.every and len(self.told) % self.every == 0:
            self.step += 1
            return {"controller/step": float(self.step), "controller/reward_mean": 0.5}
        return None


A = {"width": 64, "act": "gelu", "depth": 3, "dropout": 0.25}
B = {"width": 8, "act": "tanh", "depth": 1}
A2 = {"width": 32, "act": "relu", "depth": 1}  # reward 0.5
B2 = {"width": 8, "act": "relu", "depth": 1}


def run(space, evaluator, budget, strategy=None, **kw):
    strategy = strategy or RandomSearch(space, seed=3)
    return Search(strategy, InlineExecutor(evaluator), budget, **kw).run()


def test_children_budget_and_best(toy_space, toy_evaluator):
    result = run(toy_space, toy_evaluator(), Budget(children=6))
    assert result.stopped == "budget"
    assert [t.number for t in result.trials] == list(range(6))
    assert all(t.state is TrialState.COMPLETE for t in result.trials)
    assert len({t.architecture.hash for t in result.trials}) == 6  # unique by default
    assert result.best.reward == max(t.reward for t in result.trials)
    assert result.trials[0].history["val_accuracy"][-1] == result.trials[0].reward


def test_cost_budget_stops_and_does_not_count_the_child_over_it(toy_space, toy_evaluator):
    result = run(toy_space, toy_evaluator(), Budget(children=10, cost_seconds=1.2))
    states = [t.state for t in result.trials]
    assert states == [TrialState.COMPLETE, TrialState.COMPLETE, TrialState.KILLED]
    assert "cost budget" in result.trials[2].message
    assert result.stopped == "budget"


def test_wall_budget(toy_space, toy_evaluator, monkeypatch):
    class Clock:  # every reading of the clock is one second later
        now = 1000.0

        @classmethod
        def time(cls):
            cls.now += 1.0
            return cls.now

    monkeypatch.setattr(search_module, "time", Clock)
    result = run(toy_space, toy_evaluator(), Budget(children=50, wall_seconds=6))
    assert 0 < len(result.trials) < 50
    assert result.stopped == "budget"


def test_space_exhausted_ends_normally(toy_space, toy_evaluator):
    result = run(toy_space, toy_evaluator(), Budget(children=200))
    assert result.stopped == "exhausted"
    assert len(result.trials) == 84
    assert result.best.reward == 0.95


def test_failed_children_get_the_configured_reward_and_the_search_goes_on(toy_space, toy_evaluator):
    evaluator = toy_evaluator(fail=lambda arch, n: arch["width"] == 8)
    strategy = Scripted(toy_space, [A, B, A2, B2])
    result = run(
        toy_space,
        evaluator,
        Budget(children=4),
        strategy,
        failures=FailurePolicy(reward=-1.0, max_consecutive=3),
    )
    assert [t.state for t in result.trials] == [TrialState.COMPLETE, TrialState.FAILED] * 2
    failed = result.trials[1]
    assert failed.failure_reason == "nan_loss" and "diverged" in failed.message
    assert failed.reward is None
    assert [r for _, r in strategy.told] == [0.95, -1.0, 0.5, -1.0]
    assert result.failed == 2 and result.stopped == "budget"


def test_failed_child_without_reward_is_told_none(toy_space, toy_evaluator):
    strategy = Scripted(toy_space, [B, A])
    run(toy_space, toy_evaluator(fail=lambda a, n: n == 0), Budget(children=2), strategy)
    assert [r for _, r in strategy.told] == [None, 0.95]


def test_consecutive_failures_abort_the_search(toy_space, toy_evaluator):
    result = run(
        toy_space,
        toy_evaluator(fail=lambda a, n: True),
        Budget(children=20),
        failures=FailurePolicy(max_consecutive=3),
    )
    assert result.stopped == "aborted"
    assert len(result.trials) == 3
    assert all(t.state is TrialState.FAILED for t in result.trials)
    assert "3 children failed in a row (search.max_failures=3)" in result.message
    assert "diverged" in result.message


def test_duplicates_reuse_the_cached_reward_when_not_unique(toy_space, toy_evaluator):
    evaluator = toy_evaluator()
    strategy = Scripted(toy_space, [A, A, B])
    result = run(toy_space, evaluator, Budget(children=2), strategy)
    first, again, other = result.trials
    assert again.cached_from == 0 and again.state is TrialState.COMPLETE
    assert again.reward == first.reward and again.cost == 0.0
    assert evaluator.calls == [0, 2]  # the duplicate was not trained
    assert other.cached_from is None


def test_observers_see_every_event_in_order(toy_space, toy_evaluator):
    rec = Recorder()
    strategy = Scripted(toy_space, [A, B, A2, B2], every=2)
    run(toy_space, toy_evaluator(), Budget(children=4), strategy, observers=[rec])
    kinds = [e[0] for e in rec.events]
    assert kinds == ["started", "trial", "trial", "update", "trial", "trial", "update", "finished"]
    assert rec.events[3][1]["controller/step"] == 1.0
    assert rec.events[-1] == ("finished", "budget")


def test_interrupt_marks_the_child_in_flight_killed(toy_space, toy_evaluator):
    rec = Recorder()
    result = run(toy_space, toy_evaluator(interrupt_at=2), Budget(children=5), observers=[rec])
    assert result.stopped == "interrupted"
    assert [t.state for t in result.trials] == [TrialState.COMPLETE] * 2 + [TrialState.KILLED]
    assert result.trials[2].finished_at is not None
    assert rec.events[-1] == ("finished", "interrupted")


def test_child_seeds_differ_and_are_reproducible(toy_space, toy_evaluator):
    a = run(toy_space, toy_evaluator(), Budget(children=3), seed=1)
    b = run(toy_space, toy_evaluator(), Budget(children=3), seed=1)
    assert [t.seed for t in a.trials] == [t.seed for t in b.trials]
    assert len({t.seed for t in a.trials}) == 3


@pytest.mark.parametrize("seed", [0, 1])
def test_same_seed_same_children(toy_space, toy_evaluator, seed):
    a = run(toy_space, toy_evaluator(), Budget(children=5), RandomSearch(toy_space, seed=seed))
    b = run(toy_space, toy_evaluator(), Budget(children=5), RandomSearch(toy_space, seed=seed))
    assert [t.architecture for t in a.trials] == [t.architecture for t in b.trials]


def test_progress_bar_lines(toy_space, toy_evaluator):
    import io

    from rlnas.progress import ProgressBar, clock

    out = io.StringIO()  # not a terminal: one plain line per child
    bar = ProgressBar(4, out)
    evaluator = toy_evaluator(fail=lambda a, n: n == 1)
    run(toy_space, evaluator, Budget(children=4), observers=[bar])
    lines = out.getvalue().splitlines()
    assert len(lines) == 4
    assert lines[1].startswith("child 1: failed (nan_loss)")
    assert "4/4 children" in lines[-1] and "1 failed" in lines[-1] and "ETA 0:00" in lines[-1]
    best = max(float(line.split("reward ")[1].split()[0]) for line in lines if "reward" in line)
    assert f"best {best:.4f}" in lines[-1]
    assert clock(75.2) == "1:15" and clock(3725) == "1:02:05"

    live = io.StringIO()  # a terminal: the line is redrawn in place and ended at the close
    bar = ProgressBar(2, live, live=True)
    run(toy_space, toy_evaluator(), Budget(children=2), observers=[bar])
    text = live.getvalue()
    assert text.count("\r\x1b[2K") >= 3 and text.endswith("\n")
    assert "2/2 children" in text.splitlines()[-1]
