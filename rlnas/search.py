"""The search loop: ask the strategy, evaluate children, tell the rewards, record everything.

Framework-free: spaces, strategies, evaluators, executors and observers (the MLflow
tracker, the progress bar) plug in through small interfaces::

    strategy.ask() -> sample -> executor runs evaluator -> outcome -> strategy.tell()
                                     \\-> checkpoint, then observers, see every finished trial

Only this loop changes a trial's state. Parallel evaluation is "ask while the executor has
room, tell as results arrive". Resume is "load the state, re-run the children that were in
flight, go on": :meth:`Search.state_dict` holds everything (the strategy's state, the trials
done and in flight, the counters), and the checkpoint saves it after every finished child,
*before* the observers record that child, so a crash can never leave a child recorded in
MLflow but missing from the state.

What repeats exactly (the inline executor: everything; parallel ones: see the README's
"What repeats exactly") is tested in ``tests/test_reproducible.py``.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from rlnas.budget import Budget, FailurePolicy
from rlnas.cache import CachedReward, RewardCache
from rlnas.entry_points import callable_module
from rlnas.errors import ChildFailure, ConfigError, SearchAborted
from rlnas.executors import Executor, Job
from rlnas.objectives import Objective, Scalarizer
from rlnas.search_result import SearchResult
from rlnas.strategies.base import SpaceExhausted, Strategy, Update
from rlnas.trial import Outcome, Trial, TrialState

log = logging.getLogger("rlnas.search")

__all__ = ["FINISHED", "Budget", "FailurePolicy", "Observer", "Saver", "Search", "SearchResult"]

FINISHED = ("budget", "exhausted", "converged")
"""Ways a search ends normally; an ``interrupted`` or ``aborted`` one can be resumed."""


class Observer(Protocol):
    """Sees the search; every method is optional."""

    def search_started(self, search: Search) -> None: ...
    def trial_finished(self, search: Search, trial: Trial) -> None: ...
    def controller_updated(self, search: Search, metrics: Mapping[str, float]) -> None: ...
    def search_finished(self, search: Search, result: SearchResult) -> None: ...
    def search_crashed(self, search: Search, error: BaseException) -> None: ...


class Saver(Protocol):
    """Writes :meth:`Search.state_dict` somewhere durable (see :mod:`rlnas.checkpoint`);
    ``release()``, if it has one, is called when the search stops running."""

    def save(self, search: Search, result: SearchResult | None = None) -> None: ...


@dataclass
class Search:
    """One search. ``run()`` returns a :class:`SearchResult`; observers record it.

    ``checkpoint`` saves the state after every finished child; ``preload`` (called once,
    after ``search_started``) returns rewards of earlier searches for the cache.

    ``objectives`` (two or more) make it a multi-objective search. Every trial keeps its
    reward and all its metrics, the raw objective values among them; a
    :attr:`~rlnas.strategies.base.Strategy.multi_objective` strategy (nsga) is told them,
    any other is told one number, ``scalarizer(values)``
    (:class:`~rlnas.objectives.Scalarizer` with method ``scalarization``), whose Chebyshev or
    linear weight vector is drawn afresh after each controller update, so that every
    controller batch pulls towards one direction of the front; a strategy that
    :attr:`~rlnas.strategies.base.Strategy.reads_objectives` (REINFORCE with
    ``front_weight``) is also told each value as the metric ``objective/NAME``, larger is
    better. A child whose objectives are not all finite (a device the table has no value
    for) is told as a failed child.
    """

    strategy: Strategy
    executor: Executor
    budget: Budget
    seed: int = 0
    failures: FailurePolicy = field(default_factory=FailurePolicy)
    observers: Sequence[Observer] = ()
    checkpoint: Saver | None = None
    preload: Callable[[Search], Mapping[str, CachedReward]] | None = None
    objectives: Sequence[Objective] = ()
    scalarization: str | None = None

    def __post_init__(self) -> None:
        self.objectives = tuple(self.objectives)
        self.scalarizer: Scalarizer | None = None
        """Makes one reward of the objectives for a strategy that is not multi-objective."""
        if self.objectives and not self.strategy.multi_objective:
            self.scalarizer = Scalarizer(self.objectives, self.scalarization, seed=self.seed)
        self.trials: list[Trial] = []
        self.updates: list[tuple[float, dict[str, float]]] = []
        """Every controller update: (time, metrics), so that it can be recorded again."""
        self.cache = RewardCache()
        self.fingerprint = ""
        """The evaluator's fingerprint (known once the search runs)."""
        self.resumed = False
        self._in_flight: dict[int, Trial] = {}
        self._records: dict[int, dict[str, Any]] = {}
        """Saved records of finished trials (they never change again): a save costs the
        same after 10 children as after 1,000."""
        self._rerun: list[Trial] = []  # in flight when the search stopped; run them first
        self.interrupted: set[int] = set()
        """Children killed because the search stopped; a resumed search runs them again."""
        self._preloaded = False
        self._consecutive_failures = 0
        self._repeats = 0
        self._trained = 0
        self._cost = 0.0
        self._elapsed = 0.0  # wall seconds of earlier runs of this search
        self._started = time.time()
        self._stop: str | None = None
        self._message = ""

    # -- public ----------------------------------------------------------------------------
    @property
    def best(self) -> Trial | None:
        done = [t for t in self.trials if t.state is TrialState.COMPLETE]
        return max(done, key=lambda t: (t.reward, -t.number)) if done else None

    @property
    def in_flight(self) -> list[Trial]:
        return list(self._in_flight.values())

    @property
    def finished(self) -> bool:
        """Whether the search ended normally (nothing left to resume)."""
        return self._stop in FINISHED

    def save(self) -> None:
        """Save the state now (the tracker asks once the parent run exists, so that a crash
        from then on leaves a search that can be resumed)."""
        self._save()

    def child_seed(self, number: int) -> int:
        """A seed per child, derived from the search seed and the child's number."""
        return int(np.random.SeedSequence([self.seed, number]).generate_state(1)[0])

    def run(self) -> SearchResult:
        try:
            self._check_fingerprint()
        except BaseException:
            self.executor.close()
            raise
        try:
            return self._run()
        except BaseException as exc:  # not a stop the search handles: tell the observers
            self._emit("search_crashed", exc, crashed=True)  # (the tracker ends its run)
            raise
        finally:  # the search no longer runs (also when it crashed): let a resume take it
            release = getattr(self.checkpoint, "release", None)
            if release is not None:
                release()

    def _run(self) -> SearchResult:
        self._started = time.time() - self._elapsed
        self._emit("search_started")
        try:
            if self.preload is not None and not self._preloaded:
                self.cache.preload(self.preload(self))
                self._preloaded = True
            self._save()
            while True:
                self._fill()
                if not self._in_flight:
                    break
                aborted: SearchAborted | None = None
                for number, result in self.executor.wait():
                    try:  # finish the whole batch: these children are done, keep them
                        with _held_signals():
                            trial = self._in_flight.pop(number)
                            update = self._finish(trial, result)
                        self._announce(trial, update)
                    except SearchAborted as exc:
                        aborted = aborted or exc
                if aborted is not None:
                    raise aborted
        except KeyboardInterrupt:
            self._stop, self._message = "interrupted", "interrupted by the user"
        except SearchAborted as exc:
            self._stop, self._message = "aborted", str(exc)
        finally:
            for trial in self._in_flight.values():
                trial.state = TrialState.KILLED
                trial.message = "in flight when the search stopped"
                trial.finished_at = time.time()
                self.interrupted.add(trial.number)
            self._in_flight.clear()
            self.executor.close()
        result = SearchResult(
            self.trials,
            self.best,
            time.time() - self._started,
            self._stop or "budget",
            self._message,
        )
        self._stop = result.stopped
        self._save(result)
        self._emit("search_finished", result)
        return result

    # -- state -----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue: plain data, plus NumPy arrays in the strategy's part.

        Children in flight (or killed because the search stopped) are saved as RUNNING:
        a resumed search runs them again, with the same architecture and seed.
        """
        trials = []
        for t in self.trials:
            record = self._records.get(t.number)
            if record is not None:
                trials.append(record)
                continue
            record = t.to_dict()
            if t.number in self._in_flight or t.number in self.interrupted:
                record.update(state=TrialState.RUNNING.value, message=None, finished_at=None)
            elif t.state.finished:
                self._records[t.number] = record
            trials.append(record)
        return {
            "seed": self.seed,
            "fingerprint": self.fingerprint,
            "trials": trials,
            "updates": [[t, dict(m)] for t, m in self.updates],
            "earlier_cache": {k: v.to_dict() for k, v in self.cache.earlier.items()},
            "preloaded": self._preloaded,
            "consecutive_failures": self._consecutive_failures,
            "repeats": self._repeats,
            "elapsed": time.time() - self._started,
            "stopped": self._stop,
            "message": self._message,
            "strategy": self.strategy.state_dict(),
            "scalarizer": None if self.scalarizer is None else self.scalarizer.state_dict(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from :meth:`state_dict` (before :meth:`run`)."""
        self.strategy.load_state_dict(state["strategy"])
        if self.scalarizer is not None and state.get("scalarizer"):
            self.scalarizer.load_state_dict(state["scalarizer"])
        self.trials = [Trial.from_dict(d) for d in state["trials"]]
        self._records = {}
        self.strategy.mark_seen(t.architecture for t in self.trials)
        self.updates = [(float(t), dict(m)) for t, m in state["updates"]]
        self.cache = RewardCache()
        self.cache.preload(
            {k: CachedReward.from_dict(v) for k, v in state["earlier_cache"].items()}
        )
        self._preloaded = bool(state["preloaded"])
        self._trained, self._cost = 0, 0.0
        for trial in self.trials:
            self._account(trial)
        self._rerun = [t for t in self.trials if t.state is TrialState.RUNNING]
        self._repeats = int(state["repeats"])
        self._elapsed = float(state["elapsed"])
        self.fingerprint = str(state["fingerprint"])
        stopped = state["stopped"]
        if stopped in FINISHED:  # nothing left to run: a resume only records what is missing
            self._stop, self._message = stopped, str(state["message"])
        if stopped != "aborted":  # after an abort, the user has fixed the cause: start afresh
            self._consecutive_failures = int(state["consecutive_failures"])
        self.resumed = True

    # -- the loop --------------------------------------------------------------------------
    def _room(self) -> bool:
        b = self.budget
        if self._stop is not None:
            return False
        if b.children is not None and self._trained + len(self._in_flight) >= b.children:
            return False
        if b.cost_seconds is not None and self._cost >= b.cost_seconds:
            return False
        return b.wall_seconds is None or time.time() - self._started < b.wall_seconds

    def _fill(self) -> None:
        while self._rerun and len(self._in_flight) < self.executor.capacity and not self._stop:
            trial = self._rerun.pop(0)
            log.info("child %d was in flight when the search stopped: run again", trial.number)
            trial.started_at = time.time()
            self._submit(trial)
        while len(self._in_flight) < self.executor.capacity and self._room():
            with _held_signals():  # a child asked is a child kept
                try:
                    sample = self.strategy.ask()
                except SpaceExhausted as exc:
                    self._stop, self._message = "exhausted", str(exc)
                    return
                number = len(self.trials)
                trial = Trial(
                    number=number,
                    sample=sample,
                    seed=self.child_seed(number),
                    controller_step=self.strategy.step,
                )
                self.trials.append(trial)
                earlier = self.cache.get(sample.architecture.hash)
                if earlier is None:
                    self._repeats = 0
                else:
                    trial.complete(earlier.outcome())  # the same child again: train nothing
                    trial.cached_from = earlier.source
                    self._repeats += 1
                    update = self._settle(trial)
            if earlier is None:  # a trial kept but not yet submitted is run on resume
                self._submit(trial)
                continue
            self._announce(trial, update)
            if self._repeats >= self.budget.repeats:
                self._stop = "converged"
                self._message = (
                    f"the last {self._repeats} children proposed had all been evaluated "
                    "before (search.unique is false): the strategy has converged"
                )

    def _submit(self, trial: Trial) -> None:
        self._in_flight[trial.number] = trial
        self.executor.submit(Job(trial.number, dict(trial.architecture), trial.seed))

    def _finish(self, trial: Trial, result: Outcome | ChildFailure) -> Update:
        """Settle a child the executor returned; the strategy's update, if any."""
        if isinstance(result, ChildFailure):
            trial.fail(result.reason, result.message)
            trial.texts = dict(result.texts)
        else:
            limit = self.budget.cost_seconds
            if limit is not None and self._cost + result.cost > limit:
                trial.state = TrialState.KILLED  # over the budget: it does not count
                trial.message = f"over the cost budget of {limit:g} s"
                trial.cost = result.cost
                trial.finished_at = time.time()
                self._stop = "budget"
                self._save()
                return None
            trial.complete(result)
        return self._settle(trial)

    def _settle(self, trial: Trial) -> Update:
        """Count a finished child, tell the strategy and save the state; the update."""
        self._account(trial)
        if trial.state is TrialState.COMPLETE:
            self._consecutive_failures = 0
        else:
            self._consecutive_failures += 1
            log.warning(
                "child %d failed (%s): %s", trial.number, trial.failure_reason, trial.message
            )
        if self.strategy.multi_objective:
            update = self.strategy.tell(trial.sample, self._told(trial), dict(trial.metrics))
        elif self.scalarizer is not None and self.strategy.reads_objectives:
            update = self.strategy.tell(trial.sample, self._told(trial), self._objectives(trial))
        else:  # also a strategy written before tell took metrics
            update = self.strategy.tell(trial.sample, self._told(trial))
        if update and self.scalarizer is not None:
            self.scalarizer.new_weights()  # the next controller batch, a new direction
        if update:
            self.updates.append((time.time(), dict(update)))
        self._save()  # the state first: a crash after this never loses or repeats the child
        return update

    def _announce(self, trial: Trial, update: Update) -> None:
        """Tell the observers about a settled child (and the update it brought); stop the
        search after too many failures in a row."""
        self._emit("trial_finished", trial)
        if update:
            self._emit("controller_updated", update)
        if self._consecutive_failures >= self.failures.max_consecutive:
            raise SearchAborted(
                f"{self._consecutive_failures} children failed in a row (search.max_failures="
                f"{self.failures.max_consecutive}); last failure: {trial.message}"
            )

    def _objectives(self, trial: Trial) -> dict[str, float]:
        """A completed trial's objective values as ``objective/NAME`` metrics, each larger
        is better (none for a failed trial or a missing value)."""
        if self.scalarizer is None or trial.state is not TrialState.COMPLETE:
            return {}
        values = self.scalarizer.values(trial.reward, trial.metrics)
        if not np.all(np.isfinite(values)):
            return {}
        return {
            f"objective/{o.name}": float(v if o.maximize else -v)
            for o, v in zip(self.objectives, values)
        }

    def _told(self, trial: Trial) -> float | None:
        """The reward the strategy is told for a finished trial."""
        failed = None if self.strategy.multi_objective else self.failures.reward
        if trial.state is not TrialState.COMPLETE:
            return failed
        if self.scalarizer is None:
            return trial.reward
        values = self.scalarizer.values(trial.reward, trial.metrics)
        if not np.all(np.isfinite(values)):
            return failed
        return self.scalarizer(values)

    def _account(self, trial: Trial) -> None:
        """Count a finished trial against the budget and remember completed rewards."""
        if trial.cached_from is not None or trial.state not in (
            TrialState.COMPLETE,
            TrialState.FAILED,
        ):
            return
        self._trained += 1
        self._cost += trial.cost
        self.cache.remember(trial)

    def _check_fingerprint(self) -> None:
        """Learn the evaluator's fingerprint; a resumed search must still have the same."""
        fingerprint = getattr(self.executor, "fingerprint", None)
        current = str(fingerprint()) if callable(fingerprint) else ""
        if self.resumed and self.fingerprint and current and current != self.fingerprint:
            raise ConfigError(
                f"the evaluator's settings changed since the search started (fingerprint "
                f"{self.fingerprint}, now {current}); a search resumes only with the same "
                "data and child settings."
            )
        self.fingerprint = current or self.fingerprint

    def _save(self, result: SearchResult | None = None) -> None:
        if self.checkpoint is not None:
            self.checkpoint.save(self, result)

    def _emit(self, event: str, *args, crashed: bool = False) -> None:
        for obs in self.observers:
            method = getattr(obs, event, None)
            if method is None:
                continue
            try:
                method(self, *args)
            except Exception as exc:
                if not crashed:
                    raise
                log.error("%s.%s: %s", type(obs).__name__, event, exc)  # the crash counts


@contextmanager
def _held_signals() -> Iterator[None]:
    """Hold Ctrl-C (and SIGTERM, which rlnas turns into Ctrl-C) until the block ends, then
    deliver it. The loop's state changes in steps (a strategy draws a child and the trial is
    kept; a trial finishes, the strategy learns its reward and the state is saved): a signal
    that lands inside one would save a state no uninterrupted search ever had, and a resume
    would go on differently. Observers and the executor's waits stay interruptible."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers run in the main thread only
        return
    held: list[tuple[int, Any]] = []
    previous: dict[int, Callable[[int, Any], Any]] = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        handler = signal.getsignal(signum)
        if callable(handler):  # Python's own handlers only: SIG_DFL still ends the process
            previous[signum] = handler
            signal.signal(signum, lambda s, frame: held.append((s, frame)))
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if held:
            signum, frame = held[0]
            previous[signum](signum, frame)


callable_module(__name__, "search")  # rlnas.search(build, x, y): rlnas.api.search
