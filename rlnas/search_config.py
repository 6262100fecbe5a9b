"""Settings of the search loop (:class:`rlnas.search.Search`): its budget and failure policy.

A light module of its own so that :mod:`rlnas.config` can import it without the loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from rlnas.rules import Range, check_fields


@dataclass(frozen=True)
class SearchConfig:
    """The budget and the failure policy."""

    children: Annotated[int, Range(ge=1)] = 20
    """Children to train (re-used cached rewards do not count)."""
    budget_seconds: Annotated[float | None, Range(gt=0, unit="seconds")] = None
    """Stop when the children's summed cost reaches this (simulated seconds for tables)."""
    wall_seconds: Annotated[float | None, Range(gt=0, unit="seconds")] = None
    """Start no new child after this many wall-clock seconds."""
    max_failures: Annotated[int, Range(ge=1)] = 10
    """Stop after this many failed children in a row."""
    failed_reward: float | None = None
    """Reward told for a failed child (a finite number); ``null`` skips it in the update."""
    unique: bool = True
    """Never propose an architecture twice in one search."""
    cache_across_searches: bool = False
    """Also re-use rewards of earlier searches of the same task, space and training settings
    found in the tracking store."""

    def __post_init__(self) -> None:
        check_fields(self)
