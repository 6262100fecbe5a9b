"""What a search returns (:class:`rlnas.search.Search.run`; re-exported by :mod:`rlnas.search`)."""

from __future__ import annotations

from dataclasses import dataclass

from rlnas.trial import Trial, TrialState


@dataclass
class SearchResult:
    trials: list[Trial]
    best: Trial | None
    wall_seconds: float
    stopped: str  # budget | exhausted | converged | aborted | interrupted
    message: str = ""

    @property
    def failed(self) -> int:
        return sum(t.state is TrialState.FAILED for t in self.trials)
