"""Plain records of a search: trials and what an evaluator returns for one child."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any

from rlnas.space import Architecture, Sample


class TrialState(str, Enum):
    """Life cycle of a child. Only the search loop changes it."""

    RUNNING = "RUNNING"
    COMPLETE = "COMPLETE"
    FAILED = "FAILED"
    KILLED = "KILLED"  # in flight when the search was interrupted

    @property
    def finished(self) -> bool:
        return self is not TrialState.RUNNING


@dataclass
class Outcome:
    """What an evaluator returns for one child.

    ``reward`` is the number the strategy maximises (validation accuracy by default),
    ``metrics`` the final figures, ``history`` per-epoch curves, ``cost`` the seconds the
    child took (simulated seconds for a table look-up) and ``texts`` small text artifacts
    such as the Keras model summary.
    """

    reward: float
    metrics: dict[str, float] = field(default_factory=dict)
    history: dict[str, list[float]] = field(default_factory=dict)
    cost: float = 0.0
    epoch_ends: list[float] = field(default_factory=list)
    """The wall-clock time (``time.time()``, seconds) at which each epoch of ``history``
    ended, measured where the child trained; empty when the evaluator does not know."""
    texts: dict[str, str] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    """Binary artifacts, such as the trained weights of a child kept with
    ``child.keep_weights``; logged with the child, never saved in checkpoints."""


@dataclass
class Trial:
    """One child of a search: its decisions, state, reward and what was measured."""

    number: int
    sample: Sample
    seed: int
    controller_step: int = 0
    state: TrialState = TrialState.RUNNING
    reward: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    history: dict[str, list[float]] = field(default_factory=dict)
    cost: float = 0.0
    epoch_ends: list[float] = field(default_factory=list)
    texts: dict[str, str] = field(default_factory=dict)
    failure_reason: str | None = None
    message: str | None = None
    cached_from: int | str | None = None  # reward re-used: child number, or an earlier run id
    started_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    files: dict[str, bytes] = field(default_factory=dict, repr=False)
    """The outcome's binary artifacts (in memory only: not in :meth:`to_dict`)."""

    @property
    def architecture(self) -> Architecture:
        return self.sample.architecture

    def complete(self, outcome: Outcome) -> None:
        self.state = TrialState.COMPLETE
        self.reward = float(outcome.reward)
        self.metrics = dict(outcome.metrics)
        self.history = {k: list(v) for k, v in outcome.history.items()}
        self.cost = float(outcome.cost)
        self.epoch_ends = [float(t) for t in outcome.epoch_ends]
        self.texts = dict(outcome.texts)
        self.files = dict(outcome.files)
        self.finished_at = time.time()

    def fail(self, reason: str, message: str, cost: float = 0.0) -> None:
        self.state = TrialState.FAILED
        self.failure_reason = reason
        self.message = message
        self.cost = float(cost)
        self.finished_at = time.time()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready record (used by checkpoints and summaries)."""
        d = asdict(self)
        del d["files"]
        d["state"] = self.state.value
        d["sample"] = self.sample.to_dict()
        d["architecture_hash"] = self.architecture.hash
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Trial:
        sample = Sample.from_dict(d["sample"])
        fields = {k: v for k, v in d.items() if k not in ("sample", "architecture_hash")}
        fields["state"] = TrialState(fields["state"])
        return cls(sample=sample, **fields)
