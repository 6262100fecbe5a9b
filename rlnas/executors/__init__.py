"""Executors run children; only the search loop changes trial state and writes to the tracker.

An executor takes jobs (trial number, architecture, seed) and hands back, as they finish,
either the evaluator's :class:`~rlnas.trial.Outcome` or a :class:`~rlnas.errors.ChildFailure`.
``capacity`` is how many children may be in flight at once.
"""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from rlnas.errors import ChildFailure
from rlnas.space import Architecture
from rlnas.trial import Outcome


@dataclass(frozen=True)
class Job:
    """One child to evaluate."""

    number: int
    architecture: Mapping
    seed: int


class Evaluator(Protocol):
    """Turns an architecture into an outcome, or raises :class:`ChildFailure`."""

    def fingerprint(self) -> str:
        """Identity of the training settings (two children with the same architecture and
        fingerprint get the same reward up to seeding)."""
        ...

    def evaluate(self, architecture: Architecture, *, seed: int, number: int) -> Outcome: ...


class Executor(Protocol):
    capacity: int

    def fingerprint(self) -> str:
        """The evaluator's fingerprint (a pool may wait for its first worker to say it)."""
        ...

    def submit(self, job: Job) -> None: ...

    def wait(self) -> list[tuple[int, Outcome | ChildFailure]]:
        """Block until at least one submitted job finished; return the finished ones."""
        ...

    def close(self) -> None: ...


def run_job(evaluator: Evaluator, job: Job) -> Outcome | ChildFailure:
    """Evaluate one job, turning any exception into a :class:`ChildFailure` (never raises)."""
    start = time.perf_counter()
    try:
        arch = Architecture(job.architecture)
        outcome = evaluator.evaluate(arch, seed=job.seed, number=job.number)
    except ChildFailure as failure:
        return failure
    except MemoryError as exc:
        return ChildFailure("out_of_memory", f"out of memory: {exc}")
    except Exception as exc:  # a child's bug must not end the search
        last = traceback.extract_tb(exc.__traceback__)[-1]
        return ChildFailure(
            "exception",
            f"{type(exc).__name__}: {exc} (at {last.filename}:{last.lineno}) after "
            f"{time.perf_counter() - start:.1f}s",
        )
    return outcome


def worker_threads(threads_per_worker: int | None, workers: int) -> int:
    """Threads one worker may use: the configured number, else the cores shared out evenly."""
    if threads_per_worker is not None:
        return threads_per_worker
    return max(1, (os.cpu_count() or 1) // workers)


def thread_env(threads: int) -> dict[str, str]:
    """Environment that caps TensorFlow's and the BLAS libraries' thread pools.

    It only works when set before TensorFlow is imported, so worker processes apply it first
    thing; without it every worker would start one thread per core and they would fight.
    """
    n = str(threads)
    return {
        "TF_NUM_INTRAOP_THREADS": n,
        "TF_NUM_INTEROP_THREADS": n,
        "OMP_NUM_THREADS": n,
        "OPENBLAS_NUM_THREADS": n,
        "MKL_NUM_THREADS": n,
    }


class InlineExecutor:
    """Runs each child in the main process, one at a time, when it is submitted."""

    capacity = 1

    def __init__(self, evaluator: Evaluator) -> None:
        self.evaluator = evaluator
        self._done: list[tuple[int, Outcome | ChildFailure]] = []

    def fingerprint(self) -> str:
        return self.evaluator.fingerprint()

    def submit(self, job: Job) -> None:
        self._done.append((job.number, run_job(self.evaluator, job)))

    def wait(self) -> list[tuple[int, Outcome | ChildFailure]]:
        done, self._done = self._done, []
        return done

    def close(self) -> None:
        pass
