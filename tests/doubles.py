"""Test doubles for executors and the search loop: a toy space and toy evaluators.

Everything here is importable by worker processes (spawn) and Ray workers, so the factories
are module-level classes or ``functools.partial`` of them. The evaluators need no Keras: the
reward is a formula over the decisions plus a little seeded noise, so the same job gives the
same reward in every executor.

A job's architecture (or the ``faults`` map, by child number) can ask the evaluator to
misbehave: ``fault`` = ``raise`` | ``segfault`` | ``sigkill`` | ``exit`` | ``hang``, ``sleep``
= seconds, ``gate`` = a file path to wait for (makes arrival order deterministic, no timing).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from rlnas.errors import DataError
from rlnas.space import Architecture, Sample, Space
from rlnas.strategies.random_search import RandomSearch
from rlnas.trial import Outcome

_Y_BONUS = {"a": 0.0, "b": 0.5, "c": 0.25}


class ToySpace(Space):
    """Three decisions, the last active only for wide children: 5 * 3 * (1 + 2) children."""

    name = "toy"

    def declare(self, d):
        x = d.choice("x", [0, 1, 2, 3, 4])
        y = d.choice("y", ["a", "b", "c"])
        z = d.choice("z", [0.0, 1.0], active=x >= 3)
        return {"x": x, "y": y, "z": z or 0.0}


def formula_reward(architecture: Mapping, seed: int) -> float:
    """A reward with a known best (x=4, y=b, z=1) and seeded noise of about 0.01."""
    base = architecture.get("x", 0) / 4 + _Y_BONUS.get(architecture.get("y", "a"), 0.0)
    base += 0.1 * float(architecture.get("z") or 0.0)
    return float(base + 0.01 * np.random.default_rng(seed).standard_normal())


class FormulaEvaluator:
    """Reward = :func:`formula_reward`; records the process id so tests can see recycling."""

    def __init__(
        self,
        sleep: float = 0.0,
        faults: Mapping[int, str] | None = None,
        gates: Mapping[int, str] | None = None,
    ) -> None:
        self.sleep = sleep
        self.faults = dict(faults or {})
        self.gates = dict(gates or {})

    def fingerprint(self) -> str:
        return "formula-v1"

    def evaluate(self, architecture: Architecture, *, seed: int, number: int) -> Outcome:
        start = time.perf_counter()
        fault = architecture.get("fault") or self.faults.get(number)
        if fault:
            misbehave(str(fault))
        gate = architecture.get("gate") or self.gates.get(number)
        if gate:
            wait_for(Path(str(gate)))
        pause = float(architecture.get("sleep") or self.sleep)
        if pause:
            time.sleep(pause)
        reward = formula_reward(architecture, seed)
        return Outcome(
            reward,
            metrics={
                "pid": float(os.getpid()),
                "threads": float(os.environ.get("TF_NUM_INTRAOP_THREADS", 0)),
            },
            cost=time.perf_counter() - start,
        )


def misbehave(kind: str) -> None:
    """Fail the way a real child can: an exception, a crash, a kill, an exit or a hang."""
    if kind == "raise":
        raise ValueError("toy evaluator raised on purpose")
    if kind == "segfault":
        os.kill(os.getpid(), signal.SIGSEGV)
    elif kind == "sigkill":  # what the out-of-memory killer does
        os.kill(os.getpid(), signal.SIGKILL)
    elif kind == "exit":
        os._exit(3)
    elif kind == "hang":
        time.sleep(3600)
    else:
        raise AssertionError(f"unknown fault {kind!r}")
    time.sleep(60)  # a signal may take a moment to land


def wait_for(path: Path, limit: float = 60.0) -> None:
    """Block until ``path`` exists (the test creates it when it wants this child to finish)."""
    end = time.monotonic() + limit
    while not path.exists():
        if time.monotonic() > end:
            raise TimeoutError(f"gate {path} never opened")
        time.sleep(0.02)


def broken_factory() -> FormulaEvaluator:
    """A factory that cannot build its evaluator (as a worker whose data is missing)."""
    raise DataError("`task.path`: file '/nowhere/data.npz' does not exist.")


class RecordingStrategy(RandomSearch):
    """Random search that records the order of asks and tells (``events``)."""

    name = "recording"

    def __init__(self, space: Space, *, seed: int = 0) -> None:
        super().__init__(space, seed=seed)
        self.events: list[tuple[str, str]] = []
        self.told: list[tuple[str, float | None]] = []

    def ask(self) -> Sample:
        sample = super().ask()
        self.events.append(("ask", sample.architecture.hash))
        return sample

    def tell(self, sample: Sample, reward: float | None):
        self.events.append(("tell", sample.architecture.hash))
        self.told.append((sample.architecture.hash, reward))
        return None


def terminal_sigint() -> None:
    """As a subprocess's ``preexec_fn``: SIGINT as a terminal delivers it, also when the test
    runner was started where SIGINT is ignored (a background job of a script): an ignored
    SIGINT is inherited through exec."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
