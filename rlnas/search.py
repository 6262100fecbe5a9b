"""The search loop: ask the strategy, evaluate children, tell the rewards, record everything.

Framework-free: spaces, strategies, evaluators, executors and observers (the MLflow
tracker, the progress bar, checkpoints) plug in through small interfaces::

    strategy.ask() -> sample -> executor runs evaluator -> outcome -> strategy.tell()
                                     \\-> observers see every finished trial and update

Only this loop changes a trial's state. Parallel evaluation is "ask while the executor has
room, tell as results arrive".
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from rlnas.errors import ChildFailure, SearchAborted
from rlnas.executors import Executor, Job
from rlnas.strategies.base import SpaceExhausted, Strategy
from rlnas.trial import Outcome, Trial, TrialState

log = logging.getLogger("rlnas.search")


@dataclass(frozen=True)
class Budget:
    """When a search stops; the first limit reached wins. ``None``: no limit."""

    children: int | None = None
    """Children trained (cached re-uses are free and do not count)."""
    cost_seconds: float | None = None
    """Sum of the children's costs (training seconds, or simulated seconds for a table).
    A child that would take the total past this limit is not counted."""
    wall_seconds: float | None = None
    """Wall-clock seconds; no new child starts after this."""


@dataclass(frozen=True)
class FailurePolicy:
    """What a failed child (unbuildable, NaN loss, exception, timeout) does to the search."""

    reward: float | None = None
    """Reward told to the strategy for a failed child; ``None`` skips that sample."""
    max_consecutive: int = 10
    """This many failures in a row stop the search (the state is saved)."""


class Observer(Protocol):
    """Sees the search; every method is optional."""

    def search_started(self, search: Search) -> None: ...
    def trial_finished(self, search: Search, trial: Trial) -> None: ...
    def controller_updated(self, search: Search, metrics: Mapping[str, float]) -> None: ...
    def search_finished(self, search: Search, result: SearchResult) -> None: ...


@dataclass
class SearchResult:
    trials: list[Trial]
    best: Trial | None
    wall_seconds: float
    stopped: str  # budget | exhausted | aborted | interrupted
    message: str = ""

    @property
    def failed(self) -> int:
        return sum(t.state is TrialState.FAILED for t in self.trials)


@dataclass
class Search:
    """One search. ``run()`` returns a :class:`SearchResult`; observers record it."""

    strategy: Strategy
    executor: Executor
    budget: Budget
    seed: int = 0
    failures: FailurePolicy = field(default_factory=FailurePolicy)
    observers: Sequence[Observer] = ()
    trials: list[Trial] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._in_flight: dict[int, Trial] = {}
        self._cache: dict[str, Trial] = {}
        self._consecutive_failures = 0
        self._trained = 0
        self._cost = 0.0
        self._started = time.time()
        self._stop: str | None = None
        self._message = ""
        for trial in self.trials:  # trials restored from a checkpoint
            self._account(trial)

    # -- public ----------------------------------------------------------------------------
    @property
    def best(self) -> Trial | None:
        done = [t for t in self.trials if t.state is TrialState.COMPLETE]
        return max(done, key=lambda t: (t.reward, -t.number)) if done else None

    @property
    def in_flight(self) -> list[Trial]:
        return list(self._in_flight.values())

    def child_seed(self, number: int) -> int:
        """A seed per child, derived from the search seed and the child's number."""
        return int(np.random.SeedSequence([self.seed, number]).generate_state(1)[0])

    def run(self) -> SearchResult:
        self._started = time.time()
        self._emit("search_started")
        try:
            while True:
                self._fill()
                if not self._in_flight:
                    break
                aborted: SearchAborted | None = None
                for number, result in self.executor.wait():
                    try:  # finish the whole batch: these children are done, keep them
                        self._finish(self._in_flight.pop(number), result)
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
            self._in_flight.clear()
            self.executor.close()
        result = SearchResult(
            self.trials,
            self.best,
            time.time() - self._started,
            self._stop or "budget",
            self._message,
        )
        self._emit("search_finished", result)
        return result

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
        while len(self._in_flight) < self.executor.capacity and self._room():
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
                controller_step=getattr(self.strategy, "step", 0),
            )
            self.trials.append(trial)
            earlier = self._cache.get(sample.architecture.hash)
            if earlier is not None:  # the same child again: reuse its reward, train nothing
                trial.complete(Outcome(earlier.reward, earlier.metrics, earlier.history, 0.0))
                trial.cached_from = earlier.number
                self._after(trial)
                continue
            self._in_flight[number] = trial
            self.executor.submit(Job(number, dict(sample.architecture), trial.seed))

    def _finish(self, trial: Trial, result: Outcome | ChildFailure) -> None:
        if isinstance(result, ChildFailure):
            trial.fail(result.reason, result.message)
        else:
            limit = self.budget.cost_seconds
            if limit is not None and self._cost + result.cost > limit:
                trial.state = TrialState.KILLED  # over the budget: it does not count
                trial.message = f"over the cost budget of {limit:g} s"
                trial.cost = result.cost
                trial.finished_at = time.time()
                self._stop = "budget"
                self._emit("trial_finished", trial)
                return
            trial.complete(result)
        self._after(trial)

    def _after(self, trial: Trial) -> None:
        self._account(trial)
        if trial.state is TrialState.COMPLETE:
            reward: float | None = trial.reward
            self._consecutive_failures = 0
        else:
            reward = self.failures.reward
            self._consecutive_failures += 1
            log.warning(
                "child %d failed (%s): %s", trial.number, trial.failure_reason, trial.message
            )
        update = self.strategy.tell(trial.sample, reward)
        self._emit("trial_finished", trial)
        if update:
            self._emit("controller_updated", update)
        if self._consecutive_failures >= self.failures.max_consecutive:
            raise SearchAborted(
                f"{self._consecutive_failures} children failed in a row (search.max_failures="
                f"{self.failures.max_consecutive}); last failure: {trial.message}"
            )

    def _account(self, trial: Trial) -> None:
        """Count a finished trial against the budget and remember completed rewards."""
        if trial.cached_from is not None or trial.state not in (
            TrialState.COMPLETE,
            TrialState.FAILED,
        ):
            return
        self._trained += 1
        self._cost += trial.cost
        if trial.state is TrialState.COMPLETE:
            self._cache.setdefault(trial.architecture.hash, trial)

    def _emit(self, event: str, *args) -> None:
        for obs in self.observers:
            method = getattr(obs, event, None)
            if method is not None:
                method(self, *args)
