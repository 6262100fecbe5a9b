"""Resume: a search killed at any point continues from its saved state.

In-process, a "kill" is an exception no handler catches (:class:`Crash`), raised at the n-th
write to the tracking store, before or just after the write reached it, or while a child
trains; the search is then rebuilt from its checkpoint as ``rlnas resume`` does. Afterwards
the store must hold exactly one complete run per finished child, no run may be RUNNING, and
the search must equal an uninterrupted one. A last test kills the real CLI with SIGKILL.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from conftest import ToyEvaluator, ToySpace
from doubles import FormulaEvaluator, terminal_sigint
from doubles import ToySpace as FormulaSpace

from rlnas import checkpoint as ckpt
from rlnas import cli
from rlnas.config import ExecutorConfig
from rlnas.executors import InlineExecutor
from rlnas.search import Budget, Search
from rlnas.strategies import RandomSearch
from rlnas.strategies.evolution import EvolutionConfig, RegularizedEvolution
from rlnas.tracking import MLflowTracker
from rlnas.trial import TrialState

mlflow = pytest.importorskip("mlflow")

WRITES = {"create_run", "log_batch", "log_artifacts", "set_terminated", "set_tag", "update_run"}


class Crash(BaseException):
    """The process dies here (as with kill -9): no handler runs, nothing more is written."""


class DyingClient:
    """An MlflowClient whose process dies at its ``at``-th write: before the write, or
    right after the store took it (``after``: the answer never came back)."""

    def __init__(self, client, at: float, after: bool = False) -> None:
        self._client, self.at, self.after, self.writes = client, at, after, 0

    def __getattr__(self, name):
        method = getattr(self._client, name)
        if name not in WRITES:
            return method

        def write(*args, **kwargs):
            self.writes += 1
            if self.writes > self.at or (self.writes == self.at and not self.after):
                raise Crash
            out = method(*args, **kwargs)
            if self.writes == self.at:
                raise Crash
            return out

        return write


class UpdatingEvolution(RegularizedEvolution):
    """Regularized evolution that also reports a "controller update" every 3 rewards, so
    that the update events are killed and resumed too."""

    name = "rea"
    told = 0

    def tell(self, sample, reward):
        super().tell(sample, reward)
        self.told += 1
        if self.told % 3:
            return None
        return {"controller/step": float(self.told // 3), "controller/x": 0.5}

    def state_dict(self):
        return {**super().state_dict(), "told": self.told}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.told = state["told"]


def parts(store, experiment, root, *, at=float("inf"), after=False, evaluator=None, strategy=None):
    uri = store
    tracker = MLflowTracker(uri, experiment, task="toytask")
    tracker.connect()
    tracker.client = DyingClient(tracker.client, at, after)
    saver = ckpt.Checkpoint(
        root,
        lambda: {"run_id": tracker.run_id, "experiment_id": tracker.experiment_id},
    )
    strategy = strategy or UpdatingEvolution(
        ToySpace(), EvolutionConfig(population=3, sample_size=2), seed=5
    )
    evaluator = evaluator or ToyEvaluator(fail=lambda a, n: n == 4)
    search = Search(
        strategy,
        InlineExecutor(evaluator),
        Budget(children=8),
        observers=[tracker],
        checkpoint=saver,
    )
    return tracker, search


def resume(store, experiment, root, run_id, **kw):
    tracker, search = parts(store, experiment, root, **kw)
    tracker.client = tracker.client._client  # the new process lives
    search.load_state_dict(ckpt.read(root / run_id / ckpt.FILE)["search"])
    tracker.resume(run_id)
    return tracker, search.run()


def record(result) -> list[tuple]:
    return [
        (t.number, t.architecture.hash, t.state, t.reward, t.cached_from) for t in result.trials
    ]


def check_store(client, experiment_id: str, run_id: str, result, update_key="controller/x"):
    """Exactly one complete run per finished child; nothing RUNNING; curves without repeats."""
    runs = client.search_runs([experiment_id], max_results=1000)
    assert [r.info.run_id for r in runs if r.info.status == "RUNNING"] == []
    children = [
        r
        for r in runs
        if r.data.tags.get("mlflow.parentRunId") == run_id
        and "rlnas.interrupted" not in r.data.tags
        and "rlnas.stale" not in r.data.tags
    ]
    counts = Counter(int(r.data.tags["rlnas.child"]) for r in children)
    assert counts == Counter(t.number for t in result.trials), counts
    status = {"COMPLETE": "FINISHED", "FAILED": "FAILED"}
    for r in children:
        trial = result.trials[int(r.data.tags["rlnas.child"])]
        assert r.info.status == status[trial.state.value]
        assert r.data.tags["rlnas.architecture_hash"] == trial.architecture.hash
    assert client.get_run(run_id).info.status == "FINISHED"
    steps = [m.step for m in client.get_metric_history(run_id, "child/reward")]
    assert sorted(steps) == [t.number for t in result.trials if t.state is TrialState.COMPLETE]
    updates = [m.step for m in client.get_metric_history(run_id, update_key)]
    assert sorted(updates) == list(range(1, len(updates) + 1)) and updates


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    uri = f"sqlite:///{tmp_path_factory.mktemp('resume-store')}/mlflow.db"
    mlflow.MlflowClient(uri).search_experiments()  # create the tables once
    return uri


def test_killed_at_any_store_write_resumes_to_the_same_search(store, tmp_path):
    client = mlflow.MlflowClient(store)
    tracker, search = parts(store, "reference", tmp_path / "ref")
    reference = search.run()
    writes = tracker.client.writes
    assert reference.stopped == "budget" and reference.failed == 1

    rng = np.random.default_rng(0)
    points = sorted({int(k) for k in rng.choice(np.arange(2, writes + 1), size=8, replace=False)})
    points[0] = 2  # just after the parent run was created (its params not yet logged)
    for i, at in enumerate(points):
        experiment, root, after = f"kill-{at}", tmp_path / f"k{at}", bool(i % 2)
        tracker, search = parts(store, experiment, root, at=at, after=after)
        with pytest.raises(Crash):
            search.run()
        run_id = tracker.run_id
        assert (root / run_id / ckpt.FILE).is_file()
        resumed, result = resume(store, experiment, root, run_id)
        assert record(result) == record(reference), f"killed at write {at}"
        check_store(client, resumed.experiment_id, run_id, result)


def test_reinforce_controller_continues_as_if_never_killed(store, tmp_path):
    """Weights, Adam's moments, baseline, pending batch and generator come back exactly."""
    from rlnas.strategies.reinforce import ReinforceConfig, ReinforceController

    controller = ReinforceController(ToySpace(), ReinforceConfig(batch_size=3), seed=0)

    def fresh():
        controller.reset(0)  # as a new controller with this seed, without compiling again
        return controller

    tracker, search = parts(store, "rl-ref", tmp_path / "ref", strategy=fresh())
    reference = search.run()
    weights = [w.numpy() for w in controller.keras_model.weights]
    at = tracker.client.writes * 2 // 3  # well after the first update
    tracker, search = parts(store, "rl", tmp_path, at=at, strategy=fresh())
    with pytest.raises(Crash):
        search.run()
    _, result = resume(store, "rl", tmp_path, tracker.run_id, strategy=fresh())
    assert record(result) == record(reference)
    assert controller.step == 2 and len(controller.pending) == 1  # 7 rewards (1 failed), by 3
    for w, expected in zip(controller.keras_model.weights, weights):
        np.testing.assert_array_equal(w.numpy(), expected)
    client = mlflow.MlflowClient(store)
    check_store(client, tracker.experiment_id, tracker.run_id, result, "controller/entropy")


def test_killed_while_a_child_trains_it_trains_again_with_the_same_seed(store, tmp_path):
    class DiesAt(ToyEvaluator):
        def evaluate(self, architecture, *, seed, number):
            if number == 5 and self.die:
                raise Crash
            return super().evaluate(architecture, seed=seed, number=number)

    evaluator = DiesAt()
    evaluator.die = True
    tracker, search = parts(store, "train", tmp_path, evaluator=evaluator)
    with pytest.raises(Crash):
        search.run()
    saved = ckpt.read(tmp_path / tracker.run_id / ckpt.FILE)["search"]
    assert [t["number"] for t in saved["trials"]] == [0, 1, 2, 3, 4]  # 5 was not asked yet
    # the crash reached the caller only after the tracker had written what it held, and
    # ended the parent run FAILED: nothing is written behind the resume's back
    client = mlflow.MlflowClient(store)
    assert client.get_run(tracker.run_id).info.status == "FAILED"
    runs = client.search_runs(
        [tracker.experiment_id], f"tags.`mlflow.parentRunId` = '{tracker.run_id}'"
    )
    assert sorted(int(r.data.tags["rlnas.child"]) for r in runs) == [0, 1, 2, 3, 4]
    evaluator = DiesAt()
    evaluator.die = False
    _, result = resume(store, "train", tmp_path, tracker.run_id, evaluator=evaluator)
    assert evaluator.calls == [5, 6, 7]  # nothing trained twice
    _, reference = parts(store, "train-ref", tmp_path / "ref", evaluator=ToyEvaluator())
    assert record(result) == record(reference.run())
    check_store(mlflow.MlflowClient(store), tracker.experiment_id, tracker.run_id, result)


def test_ctrl_c_keeps_the_child_in_flight_for_the_resume(store, tmp_path):
    tracker, search = parts(store, "ctrl-c", tmp_path, evaluator=ToyEvaluator(interrupt_at=3))
    interrupted = search.run()
    assert interrupted.stopped == "interrupted"
    client = mlflow.MlflowClient(store)
    assert client.get_run(tracker.run_id).info.status == "KILLED"
    saved = ckpt.read(tmp_path / tracker.run_id / ckpt.FILE)["search"]
    assert saved["trials"][3]["state"] == "RUNNING" and saved["stopped"] == "interrupted"
    evaluator = ToyEvaluator()
    _, result = resume(store, "ctrl-c", tmp_path, tracker.run_id, evaluator=evaluator)
    assert evaluator.calls == [3, 4, 5, 6, 7]
    assert result.trials[3].seed == interrupted.trials[3].seed
    assert result.trials[3].architecture == interrupted.trials[3].architecture
    check_store(client, tracker.experiment_id, tracker.run_id, result)
    killed = client.search_runs(
        [tracker.experiment_id], "tags.`rlnas.interrupted` = 'true'", max_results=10
    )
    assert [(r.data.tags["rlnas.child"], r.info.status) for r in killed] == [("3", "KILLED")]


class SignalledEvolution(UpdatingEvolution):
    """Sends itself SIGINT (a real Ctrl-C) from inside its ``where`` method at the 4th call:
    in ``ask`` once the random draws are made, in ``tell`` before the population is
    updated."""

    def __init__(self, *args, where: str, **kw):
        super().__init__(*args, **kw)
        self.where, self.calls = where, 0

    def _maybe_signal(self, where: str) -> None:
        if where == self.where:
            self.calls += 1
            if self.calls == 4:
                os.kill(os.getpid(), signal.SIGINT)  # the handler runs at the next bytecode

    def ask(self):
        sample = super().ask()
        self._maybe_signal("ask")
        return sample

    def tell(self, sample, reward):
        self._maybe_signal("tell")
        return super().tell(sample, reward)


@pytest.mark.parametrize("where", ["ask", "tell"])
def test_ctrl_c_inside_ask_or_tell_stops_after_it_and_resumes_exactly(store, tmp_path, where):
    """A Ctrl-C that lands while the strategy draws a child or learns a reward waits until
    the loop's state is whole again (the child asked is kept, the reward told is counted),
    so the resumed search is the uninterrupted one."""
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        pytest.skip("Ctrl-C is not Python's KeyboardInterrupt here")
    _, reference = parts(store, f"ref-{where}", tmp_path / "ref")
    reference = reference.run()

    def evolution():
        return SignalledEvolution(
            ToySpace(), EvolutionConfig(population=3, sample_size=2), seed=5, where=where
        )

    tracker, search = parts(store, f"sig-{where}", tmp_path / "sig", strategy=evolution())
    stopped = search.run()
    assert stopped.stopped == "interrupted" and len(stopped.trials) < 8
    _, result = resume(store, f"sig-{where}", tmp_path / "sig", tracker.run_id)
    assert record(result) == record(reference)
    check_store(mlflow.MlflowClient(store), tracker.experiment_id, tracker.run_id, result)


def test_process_pool_reruns_children_in_flight(store, tmp_path):
    """Kill while one worker still trains: its child runs again; random search (whose asks
    do not depend on rewards) proposes the same children as an uninterrupted search."""
    from rlnas.executors.process import ProcessExecutor

    class DieAtChild:
        def trial_finished(self, search, trial):
            if trial.number == 4:  # asked after child 3, which never ends
                raise Crash

    def make(observers, root, evaluator=FormulaEvaluator):
        tracker = MLflowTracker(store, "pool", task="toytask")
        saver = ckpt.Checkpoint(root, lambda: {"run_id": tracker.run_id})
        executor = ProcessExecutor(
            evaluator, ExecutorConfig(kind="process", workers=2, recycle_after=None)
        )
        strategy = RandomSearch(FormulaSpace(), seed=1)
        observers = [tracker, *observers]
        return tracker, Search(
            strategy, executor, Budget(6), 3, observers=observers, checkpoint=saver
        )

    stuck = functools.partial(FormulaEvaluator, gates={3: str(tmp_path / "never")})
    tracker, search = make([DieAtChild()], tmp_path, stuck)  # child 3 is still training
    with pytest.raises(Crash):
        search.run()
    saved = ckpt.read(tmp_path / tracker.run_id / ckpt.FILE)["search"]
    in_flight = [t for t in saved["trials"] if t["state"] == "RUNNING"]
    assert in_flight  # the other worker was busy
    tracker2, search2 = make([], tmp_path)
    search2.load_state_dict(saved)
    tracker2.resume(tracker.run_id)
    result = search2.run()
    for t in in_flight:
        again = result.trials[t["number"]]
        assert again.state is TrialState.COMPLETE and again.seed == t["seed"]
    _, reference = make([], tmp_path / "ref")
    expected = reference.run()
    assert [t.architecture for t in result.trials] == [t.architecture for t in expected.trials]
    assert [t.reward for t in result.trials] == [t.reward for t in expected.trials]
    check_store_plain(mlflow.MlflowClient(store), tracker2.experiment_id, tracker.run_id, result)


def check_store_plain(client, experiment_id, run_id, result) -> None:
    runs = client.search_runs([experiment_id], f"tags.`mlflow.parentRunId` = '{run_id}'")
    finished = Counter(int(r.data.tags["rlnas.child"]) for r in runs if r.info.status == "FINISHED")
    assert finished == Counter(range(len(result.trials)))
    assert all(r.info.status != "RUNNING" for r in runs)


# -- the real command, killed with SIGKILL --------------------------------------------------
NB201 = """\
seed: 0
task: {name: nb201, dataset: cifar10}
space: nb201
strategy: rea
evolution: {population: 6, sample_size: 3}
search: {children: 60}
tracking: {uri: 'URI', experiment: EXP}
"""


def children_of(uri: str, run_id: str) -> list[tuple]:
    client = mlflow.MlflowClient(uri)
    run = client.get_run(run_id)
    runs = client.search_runs(
        [run.info.experiment_id], f"tags.`mlflow.parentRunId` = '{run_id}'", max_results=1000
    )
    assert all(r.info.status != "RUNNING" for r in runs)
    done = [r for r in runs if r.info.status == "FINISHED"]
    out = sorted(
        (
            int(r.data.tags["rlnas.child"]),
            r.data.tags["rlnas.architecture_hash"],
            r.data.metrics["reward"],
        )
        for r in done
    )
    assert len({n for n, _, _ in out}) == len(out), "a child was recorded twice"
    return out


def start(args, cwd: Path, n: int):
    with open(cwd / f"stderr-{n}.txt", "w") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "rlnas", *args, "--no-progress"],
            cwd=cwd,
            stdout=subprocess.DEVNULL,
            stderr=err,
            preexec_fn=terminal_sigint,
        )


def stop_mid_search(proc, saved: Path, before: float, sig: int, rng) -> int:
    """Wait until ``proc`` has saved the search's state (it is searching), wait a random
    moment more, then send ``sig``; its exit status."""
    deadline = time.monotonic() + 240
    while proc.poll() is None and time.monotonic() < deadline:
        if saved.is_file() and saved.stat().st_mtime_ns != before:
            break
        time.sleep(0.02)
    time.sleep(rng.uniform(0.0, 0.6))
    if proc.poll() is None:
        proc.send_signal(sig)
    return proc.wait(timeout=120)


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume_equals_an_uninterrupted_search(
    tmp_path, monkeypatch
):
    """The real CLI on NAS-Bench-201 (table look-ups: no training) with regularized
    evolution (whose children depend on the rewards told, in order): killed with SIGKILL
    twice and stopped with Ctrl-C once, at random moments mid-search, resumed each time;
    then compared with the same search uninterrupted. (The REINFORCE controller's state is
    checked in-process: each new process would compile its update again, which is slow.)"""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    (tmp_path / "ref.yaml").write_text(NB201.replace("URI", uri).replace("EXP", "ref"))
    (tmp_path / "kill.yaml").write_text(NB201.replace("URI", uri).replace("EXP", "kill"))
    monkeypatch.chdir(tmp_path)
    assert cli.main(["search", "-c", "ref.yaml", "--no-progress", "--summary", "ref.json"]) == 0
    reference = json.loads((tmp_path / "ref.json").read_text())

    rng = np.random.default_rng(int(time.time()))
    state = tmp_path / "state"
    proc = start(["search", "-c", "kill.yaml"], tmp_path, 0)
    deadline = time.monotonic() + 240
    while not list(state.glob("*/search.npz")) and time.monotonic() < deadline:
        time.sleep(0.02)
    (saved,) = state.glob("*/search.npz")
    run_id = saved.parent.name
    before, codes, finished = -1, [], False
    for sig in (signal.SIGKILL, signal.SIGINT, signal.SIGKILL):
        codes.append(stop_mid_search(proc, saved, before, sig, rng))
        status = mlflow.MlflowClient(uri).get_run(run_id).info.status
        if status == "FINISHED":  # the search was recorded whole before the signal came:
            finished = True  # it exited 0, or was stopped as it reported or tore down
            assert codes[-1] in (0, 130, -signal.SIGKILL), codes
            break
        assert codes[-1] == (130 if sig == signal.SIGINT else -signal.SIGKILL), (
            tmp_path / f"stderr-{len(codes) - 1}.txt"
        ).read_text()
        if sig == signal.SIGINT:
            assert status == "KILLED"
        before = saved.stat().st_mtime_ns
        proc = start(["resume", run_id, "--uri", uri], tmp_path, len(codes))
    if not finished:
        code = proc.wait(timeout=240)
        assert code == 0, (tmp_path / f"stderr-{len(codes)}.txt").read_text()[-3000:]

    client = mlflow.MlflowClient(uri)
    parent = client.get_run(run_id)
    assert parent.info.status == "FINISHED"
    best = client.get_run(reference["run_id"]).data.metrics["search/best_reward"]
    assert parent.data.metrics["search/best_reward"] == best == reference["best_reward"]
    assert children_of(uri, run_id) == children_of(uri, reference["run_id"])
    assert len(children_of(uri, run_id)) == 60
    assert not (state / run_id).exists()  # finished and recorded: the state is gone


SLOW_STORE = """
import os, sys, time
from mlflow import MlflowClient
at, after, mark = int(os.environ["KILL_AT"]), os.environ["KILL_AFTER"] == "1", os.environ["MARK"]
count = [0]
def pausing(original):
    def write(self, *args, **kwargs):
        count[0] += 1
        if count[0] == at and not after:  # the request is not sent yet
            open(mark, "w").close(); time.sleep(600)
        out = original(self, *args, **kwargs)
        if count[0] == at and after:  # the store took it; the answer never comes back
            open(mark, "w").close(); time.sleep(600)
        return out
    return write
for name in WRITES:
    setattr(MlflowClient, name, pausing(getattr(MlflowClient, name)))
from rlnas.cli import main
sys.exit(main(sys.argv[1:]))
"""
"""``python -c`` code: the rlnas CLI whose tracking client pauses inside its ``KILL_AT``-th
write (before the request, or after the store took it, per ``KILL_AFTER``), having touched
the file ``MARK``: a SIGKILL sent once the file exists lands inside that MLflow write."""


@pytest.mark.slow
def test_sigkill_inside_an_mlflow_write_then_resume_loses_and_repeats_nothing(
    tmp_path, monkeypatch
):
    """The real CLI (NAS-Bench-201 look-ups, regularized evolution) killed with SIGKILL inside
    an MLflow write twice: once before a write reached the store (in the search), once after
    the store took it but before the answer came back (in the resume); resumed again, it
    equals the uninterrupted search: no child lost or recorded twice, no run left RUNNING."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    config = NB201.replace("children: 60", "children: 20").replace("URI", uri)
    (tmp_path / "ref.yaml").write_text(config.replace("EXP", "ref"))
    (tmp_path / "kill.yaml").write_text(config.replace("EXP", "kill"))
    code = SLOW_STORE.replace("WRITES", repr(sorted(WRITES)))
    rng = np.random.default_rng(18)

    def rlnas(args, n, at=0, after=False):
        mark = tmp_path / f"writing-{n}"
        env = {"KILL_AT": str(at), "KILL_AFTER": str(int(after)), "MARK": str(mark)}
        with open(tmp_path / f"stderr-{n}.txt", "w") as err:
            proc = subprocess.Popen(
                [sys.executable, "-c", code, *args, "--no-progress"],
                cwd=tmp_path, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=err,
            )  # fmt: skip
        if at:  # wait for the pause inside the write, then kill
            deadline = time.monotonic() + 240
            while not mark.exists() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
            assert mark.exists(), (tmp_path / f"stderr-{n}.txt").read_text()[-3000:]
            proc.send_signal(signal.SIGKILL)
        return proc.wait(timeout=240)

    monkeypatch.chdir(tmp_path)
    assert cli.main(["search", "-c", "ref.yaml", "--no-progress", "--summary", "ref.json"]) == 0
    reference = json.loads((tmp_path / "ref.json").read_text())
    first, second = (int(k) for k in rng.integers(10, 40, size=2))
    assert rlnas(["search", "-c", "kill.yaml"], 1, at=first) == -signal.SIGKILL
    (saved,) = (tmp_path / "state").glob("*/search.npz")
    run_id = saved.parent.name
    assert rlnas(["resume", run_id, "--uri", uri], 2, at=second, after=True) == -signal.SIGKILL
    assert rlnas(["resume", run_id, "--uri", uri], 3) == 0, (tmp_path / "stderr-3.txt").read_text()

    client = mlflow.MlflowClient(uri)
    assert client.get_run(run_id).info.status == "FINISHED"
    runs = client.search_runs([client.get_run(run_id).info.experiment_id], max_results=1000)
    assert [r.info.run_id for r in runs if r.info.status == "RUNNING"] == []
    assert children_of(uri, run_id) == children_of(uri, reference["run_id"])  # none twice
    assert len(children_of(uri, run_id)) == 20
