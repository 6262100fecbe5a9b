"""Rewards already paid for, so that no architecture is trained twice.

A search keys its cache by the architecture's canonical hash; every entry was measured with
the search's own evaluator (the same training settings: one evaluator fingerprint per
search). Entries come from two places:

* this search's completed children (``source`` = the child's number); a resumed search
  rebuilds them from its checkpoint, so a resume never retrains a child;
* with ``search.cache_across_searches: true``, the completed children of earlier searches in
  the same tracking store with the same task, space and evaluator fingerprint (``source`` =
  the MLflow run id of that child), loaded once when the search starts and kept in its
  checkpoint, so that a resumed search sees the same cache as before.

A re-used reward costs nothing and does not count against ``search.children``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rlnas.trial import Outcome, Trial, TrialState


@dataclass(frozen=True)
class CachedReward:
    """The reward (and final metrics) of one evaluated architecture."""

    reward: float
    source: int | str
    """The child number in this search, or the run id of a child of an earlier search."""
    metrics: Mapping[str, float] = field(default_factory=dict)
    history: Mapping[str, list[float]] = field(default_factory=dict)

    def outcome(self) -> Outcome:
        """What a cached child completes with: the same figures, no cost."""
        history = {k: list(v) for k, v in self.history.items()}
        return Outcome(self.reward, dict(self.metrics), history, cost=0.0)

    def to_dict(self) -> dict[str, Any]:
        return {"reward": self.reward, "source": self.source, "metrics": dict(self.metrics)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CachedReward:
        return cls(float(d["reward"]), d["source"], dict(d.get("metrics", {})))


class RewardCache:
    """Architecture hash -> :class:`CachedReward`; this search's own entries win."""

    def __init__(self) -> None:
        self.own: dict[str, CachedReward] = {}
        self.earlier: dict[str, CachedReward] = {}

    def __len__(self) -> int:
        return len(self.own.keys() | self.earlier.keys())

    def get(self, key: str) -> CachedReward | None:
        return self.own.get(key) or self.earlier.get(key)

    def remember(self, trial: Trial) -> None:
        """Keep the reward of a child this search trained (the first one of a hash wins)."""
        if trial.state is TrialState.COMPLETE and trial.cached_from is None:
            entry = CachedReward(trial.reward, trial.number, trial.metrics, trial.history)
            self.own.setdefault(trial.architecture.hash, entry)

    def preload(self, entries: Mapping[str, CachedReward]) -> None:
        """Add rewards measured by earlier searches."""
        for key, entry in entries.items():
            self.earlier.setdefault(key, entry)
