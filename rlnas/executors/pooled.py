"""The part the process and Ray executors share: a pool of slots, each one worker at a time.

A :class:`PooledExecutor` keeps a queue of submitted jobs, hands a job to any slot whose
worker is ready and idle, waits for whatever a slot says next (a worker ready, a result, a
death), fails a child that runs past ``executor.child_timeout_seconds`` and recycles a worker
after ``executor.recycle_after`` children. A subclass says how to start, reach, wait on and
kill its kind of worker (a local process, a Ray actor) through the ``_`` hooks at the end.
"""

from __future__ import annotations

import logging
import pickle
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from rlnas.config import ExecutorConfig
from rlnas.errors import ChildFailure, ConfigError, SearchAborted
from rlnas.executors import Evaluator, Job
from rlnas.trial import Outcome

Result = tuple[int, "Outcome | ChildFailure"]

STARTUP_DEATHS = 3
"""Workers dying in a row before they are ready abort the search (it would loop forever)."""


@dataclass(eq=False, kw_only=True)
class Slot:
    """One place in the pool: the worker that fills it and the child it is training."""

    ready: bool = False  # the worker built its evaluator
    job: Job | None = None
    started: float = 0.0  # when the current job was sent
    children: int = 0  # children this worker has finished


def pickled_factory(factory: Callable[[], Evaluator], who: str) -> bytes:
    """``factory`` pickled for a worker, or a one-line ConfigError saying what is needed."""
    try:
        return pickle.dumps(factory)
    except Exception as exc:
        raise ConfigError(
            f"`executor.kind`: {who} need a picklable evaluator factory (a module-level "
            f"function, class or functools.partial), got {factory!r}: {exc}"
        ) from None


S = TypeVar("S", bound=Slot)


class PooledExecutor(Generic[S]):
    """Evaluates up to ``cfg.workers`` children at once, one per slot."""

    noun = "worker"
    """How log lines and failure messages name one worker (``Ray worker``, ...)."""
    log = logging.getLogger("rlnas.executors")
    """Where the pool reports recycling and timeouts (each kind has its own logger)."""

    def __init__(self, cfg: ExecutorConfig) -> None:
        self.cfg = cfg
        self.capacity = cfg.workers
        self._slots: list[S] = []
        self._pending: deque[Job] = deque()
        self._done: list[Result] = []
        self._startup_deaths = 0
        self._fatal: str | None = None
        self._fingerprint: str | None = None
        self._closed = False

    def fingerprint(self) -> str:
        """The evaluator's fingerprint, as the first worker to be ready reports it."""
        while self._fingerprint is None:
            if self._fatal is not None:
                raise SearchAborted(self._fatal)
            self._poll(None)
        return self._fingerprint

    def submit(self, job: Job) -> None:
        if self._closed:
            raise RuntimeError(f"submit() on a closed {type(self).__name__}")
        self._pending.append(job)
        self._dispatch()

    def wait(self) -> list[Result]:
        """Block until at least one child finished (or failed); return all finished ones."""
        if self._closed:
            raise RuntimeError(f"wait() on a closed {type(self).__name__}")
        while not self._done:
            if self._fatal is not None:
                raise SearchAborted(self._fatal)
            if not self._pending and all(s.job is None for s in self._slots):
                return []
            self._poll(self._seconds_to_deadline())
            self._enforce_timeout()
            self._tidy()
            self._dispatch()
        done, self._done = self._done, []
        return done

    # -- shared steps ----------------------------------------------------------------------
    def _dispatch(self) -> None:
        for slot in self._slots:
            if not self._pending:
                return
            if not slot.ready or slot.job is not None:
                continue
            job = self._pending.popleft()
            if not self._send(slot, job):  # the worker is gone: keep the job for the next
                self._pending.appendleft(job)
                continue
            slot.job, slot.started = job, time.monotonic()

    def _became_ready(self, slot: S, fingerprint: str) -> None:
        slot.ready = True
        self._fingerprint = fingerprint
        self._startup_deaths = 0

    def _finished(self, slot: S, number: int, result: Outcome | ChildFailure) -> None:
        """Record the result of ``slot``'s child; recycle its worker when it has done enough."""
        self._done.append((number, result))
        slot.job = None
        slot.children += 1
        recycle = self.cfg.recycle_after
        if recycle is not None and slot.children >= recycle:
            self.log.info(
                "recycling %s %s after %d children", self.noun, self._pid(slot), slot.children
            )
            self._recycle(slot)

    def _died_starting(self) -> bool:
        """Count a worker that died before it was ready; True once that aborts the search."""
        self._startup_deaths += 1
        return self._startup_deaths >= STARTUP_DEATHS

    def _enforce_timeout(self) -> None:
        limit = self.cfg.child_timeout_seconds
        if limit is None:
            return
        now = time.monotonic()
        for slot in list(self._slots):
            if slot.job is None or now - slot.started < limit:
                continue
            number = slot.job.number
            self.log.warning(
                "child %d exceeded the %g s timeout; its %s was killed", number, limit, self.noun
            )
            message = (
                f"child {number} ran longer than executor.child_timeout_seconds={limit:g}; "
                f"its {self.noun} process {self._pid(slot)} was killed"
            )
            self._done.append((number, ChildFailure("timeout", message)))
            self._timed_out(slot)

    def _seconds_to_deadline(self) -> float | None:
        limit = self.cfg.child_timeout_seconds
        starts = [s.started for s in self._slots if s.job is not None]
        if limit is None or not starts:
            return None
        return max(0.0, min(starts) + limit - time.monotonic())

    # -- what each kind of worker does its own way -----------------------------------------
    def _poll(self, timeout: float | None) -> None:
        """Wait up to ``timeout`` seconds (``None``: until something happens) and handle what
        the workers said: ready, a result, a death."""
        raise NotImplementedError

    def _send(self, slot: S, job: Job) -> bool:
        """Start ``job`` on ``slot``'s worker; False if the worker is gone."""
        raise NotImplementedError

    def _pid(self, slot: S) -> int | None:
        raise NotImplementedError

    def _timed_out(self, slot: S) -> None:
        """Kill ``slot``'s worker, whose child ran too long, and start a fresh one."""
        raise NotImplementedError

    def _recycle(self, slot: S) -> None:
        """Replace ``slot``'s worker, which has just finished a child, by a fresh one."""
        raise NotImplementedError

    def _tidy(self) -> None:
        """Housekeeping after each round of waiting (default: none)."""
