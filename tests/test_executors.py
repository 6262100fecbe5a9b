"""Executors: results as inline, arrival order, fault isolation, recycling, no orphans.

The evaluators are the toy doubles of ``tests/doubles.py`` (no Keras). Arrival order is made
deterministic with gate files, never with timing assertions.
"""

from __future__ import annotations

import functools
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from doubles import (
    FormulaEvaluator,
    RecordingStrategy,
    ToySpace,
    broken_factory,
    formula_reward,
)

from rlnas.config import ExecutorConfig
from rlnas.errors import ChildFailure, ConfigError, SearchAborted
from rlnas.executors import InlineExecutor, Job
from rlnas.executors.process import ProcessExecutor, describe_exit
from rlnas.search import Budget, FailurePolicy, Search
from rlnas.trial import Outcome, TrialState

TESTS = Path(__file__).resolve().parent

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/stat").exists(), reason="process checks read Linux's /proc"
)


def cfg(**kw) -> ExecutorConfig:
    return ExecutorConfig(kind="process", **{"workers": 2, "recycle_after": None, **kw})


def drain(executor, n: int) -> dict[int, Outcome | ChildFailure]:
    """Wait until ``n`` jobs are back; fail (rather than hang) if ``wait`` returns nothing."""
    results: dict[int, Outcome | ChildFailure] = {}
    while len(results) < n:
        batch = executor.wait()
        assert batch, f"wait() returned nothing with {n - len(results)} jobs outstanding"
        for number, result in batch:
            assert number not in results, f"job {number} came back twice"
            results[number] = result
    return results


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a process from /proc, or None when it does not exist."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = text.rsplit(")", 1)[1].split()
    return fields[0], int(fields[1])


def gone(pid: int) -> bool:
    stat = _stat(pid)
    return stat is None or stat[0] in ("Z", "X")  # a zombie has ended; only its entry remains


def own_children() -> list[int]:
    """Live descendants of this test process, but for multiprocessing's resource tracker
    (one per interpreter, started by the first spawn and ended at exit)."""
    parents, found = {os.getpid()}, []
    changed = True
    while changed:
        changed = False
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) in found:
                continue
            stat = _stat(int(entry.name))
            if stat and stat[1] in parents and stat[0] not in ("Z", "X"):
                found.append(int(entry.name))
                parents.add(int(entry.name))
                changed = True
    return [p for p in found if b"resource_tracker" not in _cmdline(p)]


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return b""


def wait_gone(pids, limit: float = 20.0) -> list[int]:
    """The pids still alive after up to ``limit`` seconds (a bound, not a timing assertion)."""
    end = time.monotonic() + limit
    while time.monotonic() < end and not all(gone(p) for p in pids):
        time.sleep(0.1)
    return [p for p in pids if not gone(p)]


JOBS = [Job(n, {"x": n % 5, "y": "abc"[n % 3]}, seed=100 + n) for n in range(6)]


@pytest.fixture
def pool(request):
    """A ProcessExecutor built from ``request.param`` (config overrides), always closed."""
    executors = []

    def make(factory=FormulaEvaluator, **kw):
        executor = ProcessExecutor(factory, cfg(**kw))
        executors.append(executor)
        return executor

    yield make
    for executor in executors:
        executor.close()


# -- process executor ----------------------------------------------------------------------
def test_process_results_equal_inline_and_threads_are_capped(pool):
    inline = InlineExecutor(FormulaEvaluator())
    for job in JOBS:
        inline.submit(job)
    expected = dict(inline.wait())

    executor = pool(threads_per_worker=3)
    for job in JOBS:
        executor.submit(job)
    got = drain(executor, len(JOBS))

    assert sorted(got) == sorted(expected)
    for number, outcome in got.items():
        assert isinstance(outcome, Outcome)
        assert outcome.reward == expected[number].reward
        assert outcome.reward == formula_reward(JOBS[number].architecture, JOBS[number].seed)
        assert outcome.metrics["pid"] != os.getpid()
        assert outcome.metrics["threads"] == 3
    assert "TF_NUM_INTRAOP_THREADS" not in os.environ or os.environ["TF_NUM_INTRAOP_THREADS"] != "3"


def test_results_arrive_as_they_finish(pool, tmp_path):
    gate = tmp_path / "open"
    executor = pool()
    executor.submit(Job(0, {"x": 1, "gate": str(gate)}, seed=1))
    executor.submit(Job(1, {"x": 2}, seed=2))
    first = executor.wait()
    assert [n for n, _ in first] == [1]  # job 0 cannot finish before the gate opens
    gate.touch()
    second = executor.wait()
    assert [n for n, _ in second] == [0]
    assert isinstance(second[0][1], Outcome)


def test_timeout_kills_the_child_and_the_pool_goes_on(pool):
    executor = pool(workers=1, child_timeout_seconds=2.0)
    executor.submit(Job(0, {"x": 1, "fault": "hang"}, seed=1))
    executor.submit(Job(1, {"x": 2}, seed=2))
    [(number, failure)] = executor.wait()
    assert number == 0 and isinstance(failure, ChildFailure)
    assert failure.reason == "timeout"
    assert "child_timeout_seconds=2" in failure.message
    results = drain(executor, 1)
    assert isinstance(results[1], Outcome)


def test_dead_workers_fail_their_child_and_are_replaced(pool):
    executor = pool(workers=2)
    faults = {0: "segfault", 1: "sigkill", 2: "exit", 3: "raise"}
    for number, fault in faults.items():
        executor.submit(Job(number, {"x": number, "fault": fault}, seed=number))
    for number in (4, 5, 6):
        executor.submit(Job(number, {"x": number % 5}, seed=number))
    results = drain(executor, 7)

    died = {n: r for n, r in results.items() if isinstance(r, ChildFailure)}
    assert {n: r.reason for n, r in died.items()} == {
        0: "worker_died",
        1: "worker_died",
        2: "worker_died",
        3: "exception",
    }
    assert "SIGSEGV" in died[0].message
    assert "SIGKILL" in died[1].message and "out-of-memory" in died[1].message
    assert "exit code 3" in died[2].message
    assert "toy evaluator raised on purpose" in died[3].message
    for number in (4, 5, 6):
        assert results[number].reward == formula_reward({"x": number % 5}, number)


def test_describe_exit():
    assert describe_exit(0) == "exit code 0"
    assert describe_exit(-signal.SIGSEGV) == "killed by signal SIGSEGV (a crash in native code)"
    assert describe_exit(-signal.SIGTERM) == "killed by signal SIGTERM"


def test_workers_are_recycled_after_n_children(pool):
    executor = pool(workers=1, recycle_after=2)
    pids = []
    for number in range(5):  # one at a time, so the order of workers is known
        executor.submit(Job(number, {"x": number}, seed=number))
        [(_, outcome)] = executor.wait()
        pids.append(int(outcome.metrics["pid"]))
    assert pids[0] == pids[1] != pids[2] == pids[3] != pids[4]
    assert len(set(pids)) == 3
    executor.close()
    assert wait_gone(pids) == []


def test_close_leaves_no_process_even_mid_child(pool):
    executor = pool(workers=2)
    executor.submit(Job(0, {"x": 1, "fault": "hang"}, seed=1))
    executor.submit(Job(1, {"x": 1}, seed=2))
    assert [n for n, _ in executor.wait()] == [1]
    pids = [p for p in executor.pids if p is not None]
    assert len(pids) == 2 and not any(gone(p) for p in pids)
    executor.close()
    assert wait_gone(pids) == []
    assert own_children() == []
    import multiprocessing

    assert multiprocessing.active_children() == []
    with pytest.raises(RuntimeError):
        executor.submit(Job(2, {"x": 1}, seed=3))


def test_an_evaluator_that_cannot_be_built_aborts_the_search(pool):
    executor = pool(factory=broken_factory, workers=2)
    executor.submit(Job(0, {"x": 1}, seed=1))
    with pytest.raises(
        SearchAborted, match=r"could not build its evaluator: DataError: `task.path`"
    ):
        executor.wait()


def test_an_unpicklable_factory_is_a_config_error():
    with pytest.raises(ConfigError, match="picklable evaluator factory"):
        ProcessExecutor(lambda: FormulaEvaluator(), cfg())


DRIVER = """
import os, signal, sys
# Ctrl-C as a terminal delivers it, also when the test runner itself was started where
# SIGINT is ignored (a background job of a script), which every child would inherit
signal.signal(signal.SIGINT, signal.default_int_handler)
from doubles import FormulaEvaluator, RecordingStrategy, ToySpace
from rlnas.config import ExecutorConfig
from rlnas.executors import Job
from rlnas.executors.process import ProcessExecutor
from rlnas.search import Budget, FailurePolicy, Search

class Announce:
    def trial_finished(self, search, trial):
        print("PIDS", *search.executor.pids, flush=True)

def main(mode):
    config = ExecutorConfig(kind="process", workers=2)
    if mode == "exit":  # leave without close(): interpreter exit must end the workers
        ex = ProcessExecutor(FormulaEvaluator, config)
        ex.submit(Job(0, {"x": 1, "fault": "hang"}, 0))
        ex.submit(Job(1, {"x": 2}, 1))
        ex.wait()
        print("PIDS", *ex.pids, flush=True)
        sys.exit(0)
    factory = __import__("functools").partial(FormulaEvaluator, faults={1: "hang", 2: "hang"})
    search = Search(RecordingStrategy(ToySpace()), ProcessExecutor(factory, config),
                    Budget(children=3), observers=[Announce()])
    result = search.run()
    print("STOPPED", result.stopped, flush=True)

if __name__ == "__main__":
    main(sys.argv[1])
"""


def start_driver(tmp_path: Path, mode: str) -> tuple[subprocess.Popen, list[int]]:
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), str(TESTS.parent)])}
    proc = subprocess.Popen(
        [sys.executable, str(script), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,  # its own process group, as a terminal would give it
    )
    line = proc.stdout.readline()
    assert line.startswith("PIDS"), line + proc.stderr.read()
    return proc, [int(p) for p in line.split()[1:]]


@pytest.mark.parametrize("mode", ["exit", "ctrl-c", "kill -9"])
def test_no_orphans_when_the_driver_exits_is_interrupted_or_killed(tmp_path, mode):
    proc, pids = start_driver(tmp_path, "exit" if mode == "exit" else "search")
    try:
        if mode == "ctrl-c":  # SIGINT to the whole group; workers ignore it, the driver stops
            os.killpg(proc.pid, signal.SIGINT)
        elif mode == "kill -9":
            proc.kill()
        out, err = proc.communicate(timeout=30)  # workers hold its pipes until they end
    except subprocess.TimeoutExpired:
        out, err = "", "the driver's output stayed open for 30 s"
    finally:
        if proc.poll() is None:
            proc.kill()
    left = wait_gone(pids)
    for pid in left:  # do not leave them behind for the other tests
        os.kill(pid, signal.SIGKILL)
    assert left == [], err
    if mode == "ctrl-c":
        assert "STOPPED interrupted" in out, err
    if mode == "exit":
        assert proc.returncode == 0, err


# -- the search loop on a process pool -----------------------------------------------------
class OpenGateWhenFinished:
    """Opens child 0's gate when children 1 and 2 have been told (both ran on the other
    worker while child 0 waited), so child 0 must arrive after them. Opening it after child
    1 alone raced: child 0 could finish before child 2 was even dispatched."""

    def __init__(self, gate: Path) -> None:
        self.gate = gate

    def trial_finished(self, search, trial) -> None:
        if trial.number == 2:
            self.gate.touch()


def test_search_asks_k_and_tells_as_results_arrive(tmp_path):
    gate = tmp_path / "gate"
    factory = functools.partial(FormulaEvaluator, faults={3: "segfault"}, gates={0: str(gate)})
    strategy = RecordingStrategy(ToySpace(), seed=7)
    search = Search(
        strategy,
        ProcessExecutor(factory, cfg(workers=2)),
        Budget(children=8),
        seed=7,
        observers=[OpenGateWhenFinished(gate)],
    )
    result = search.run()

    reference = Search(
        RecordingStrategy(ToySpace(), seed=7),
        InlineExecutor(FormulaEvaluator()),
        Budget(children=8),
        seed=7,
    ).run()

    assert result.stopped == "budget"
    assert [t.architecture for t in result.trials] == [t.architecture for t in reference.trials]
    for trial, same in zip(result.trials, reference.trials):
        if trial.number == 3:
            assert trial.state is TrialState.FAILED and trial.failure_reason == "worker_died"
            continue
        assert trial.state is TrialState.COMPLETE
        assert trial.reward == same.reward

    events = strategy.events
    assert [kind for kind, _ in events[:2]] == ["ask", "ask"]  # k = 2 children in flight
    in_flight = 0
    for kind, _ in events:
        in_flight += 1 if kind == "ask" else -1
        assert 0 <= in_flight <= 2
    told = [h for kind, h in events if kind == "tell"]
    hashes = [t.architecture.hash for t in result.trials]
    assert len(told) == 8 and sorted(told) == sorted(hashes)
    assert told[0] == hashes[1]  # child 1 was told first: it arrived first
    assert told.index(hashes[0]) > told.index(hashes[2])  # ...and child 2 ran while 0 waited
    assert own_children() == []


class BatchExecutor(InlineExecutor):
    """Runs children inline but hands them back all at once, as a pool often does."""

    capacity = 3


def test_a_search_that_aborts_keeps_the_rest_of_the_batch():
    executor = BatchExecutor(FormulaEvaluator(faults={0: "raise"}))
    strategy = RecordingStrategy(ToySpace(), seed=1)
    search = Search(
        strategy, executor, Budget(children=6), failures=FailurePolicy(max_consecutive=1)
    )
    result = search.run()
    assert result.stopped == "aborted" and "toy evaluator raised" in result.message
    states = [t.state for t in result.trials]
    assert states == [TrialState.FAILED, TrialState.COMPLETE, TrialState.COMPLETE]
    assert [reward is None for _, reward in strategy.told] == [True, False, False]


# -- Ray -----------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ray_address_that_cannot_be_reached_fails_fast_in_one_line():
    pytest.importorskip("ray")
    from rlnas.executors.ray_executor import RayExecutor

    address = f"127.0.0.1:{free_port()}"
    with pytest.raises(ConfigError) as info:
        RayExecutor(FormulaEvaluator, ExecutorConfig(kind="ray", ray_address=address))
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("`executor.ray_address`: cannot reach a Ray cluster at")
    assert repr(address) in message
    import ray

    assert not ray.is_initialized()


def test_ray_missing_says_how_to_install(monkeypatch):
    from rlnas.executors.ray_executor import RayExecutor

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    with pytest.raises(ConfigError, match=r"pip install rlnas\[ray\]"):
        RayExecutor(FormulaEvaluator, ExecutorConfig(kind="ray"))


@pytest.mark.slow
def test_ray_executor_on_a_local_ray(tmp_path):
    ray = pytest.importorskip("ray")
    from rlnas.executors.ray_executor import RayExecutor

    assert not ray.is_initialized()
    before = set(own_children())
    config = ExecutorConfig(
        kind="ray", workers=2, recycle_after=None, child_timeout_seconds=3.0, threads_per_worker=2
    )
    executor = RayExecutor(FormulaEvaluator, config)
    try:
        gate = tmp_path / "gate"
        executor.submit(Job(0, {"x": 1, "gate": str(gate)}, seed=1))
        executor.submit(Job(1, {"x": 2}, seed=2))
        assert [n for n, _ in executor.wait()] == [1]
        gate.touch()
        executor.submit(Job(2, {"x": 3, "fault": "segfault"}, seed=3))
        executor.submit(Job(3, {"x": 4, "fault": "hang"}, seed=4))
        for job in JOBS[4:]:
            executor.submit(job)
        results = drain(executor, 5)
    finally:
        executor.close()

    assert isinstance(results[0], Outcome)
    assert results[0].reward == formula_reward({"x": 1}, 1)
    assert results[0].metrics["threads"] == 2
    assert results[2].reason == "worker_died"
    assert results[3].reason == "timeout" and "child_timeout_seconds=3" in results[3].message
    for job in JOBS[4:]:
        assert results[job.number].reward == formula_reward(job.architecture, job.seed)
        assert results[job.number].metrics["threads"] == 2  # replacement workers too
    assert os.environ.get("TF_NUM_INTRAOP_THREADS") != "2"  # the driver's own is untouched
    assert not ray.is_initialized()  # close() shut down the Ray it started
    leftover = [pid for pid in own_children() if pid not in before]
    assert wait_gone(leftover) == []
