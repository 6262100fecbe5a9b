"""When a search stops (:class:`Budget`) and what a failed child does to it
(:class:`FailurePolicy`): plain settings of :class:`rlnas.search.Search`, which re-exports both.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Budget", "FailurePolicy"]


@dataclass(frozen=True)
class Budget:
    """When a search stops; the first limit reached wins. ``None``: no limit."""

    children: int | None = None
    """Children trained (cached re-uses are free and do not count)."""
    cost_seconds: float | None = None
    """Sum of the children's costs (training seconds, or simulated seconds for a table).
    A child that would take the total past this limit is not counted."""
    wall_seconds: float | None = None
    """Wall-clock seconds (summed over resumes); no new child starts after this."""
    repeats: int = 100
    """Stop (``converged``) after this many children in a row whose architecture was already
    evaluated. Only a search with ``search.unique: false`` can propose repeats; they cost
    nothing and do not count, so a strategy that has converged on one architecture would
    otherwise loop for ever."""


@dataclass(frozen=True)
class FailurePolicy:
    """What a failed child (unbuildable, NaN loss, exception, timeout) does to the search."""

    reward: float | None = None
    """Reward told to the strategy for a failed child; ``None`` skips that sample."""
    max_consecutive: int = 10
    """This many failures in a row stop the search (the state is saved)."""
