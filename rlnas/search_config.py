"""Settings of the search loop (:class:`rlnas.search.Search`): its budget, its failure policy
and, for a multi-objective search, its objectives and how they become one reward.

A light module of its own so that :mod:`rlnas.config` can import it without the loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from rlnas.errors import MAY_BE_EMPTY, require
from rlnas.objectives import METHODS, Objective, Scalarizer, parse_objectives
from rlnas.rules import NonEmpty, OneOf, Range, check_fields


@dataclass(frozen=True)
class SearchConfig:
    """The budget, the failure policy and the objectives."""

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

    objectives: Annotated[tuple[str, ...], NonEmpty("objective")] = field(
        default=(), metadata={MAY_BE_EMPTY: True}
    )
    """What a multi-objective search optimises (empty: the reward alone), e.g. ``[accuracy,
    'latency:pixel3']``: the reward (``accuracy``), ``val_accuracy``, ``params``, ``mmacs``,
    ``latency`` (measured, see ``child.latency``), ``tflite_bytes``, and for task nb201
    ``latency:DEVICE`` / ``energy:DEVICE`` from HW-NAS-Bench; ``<=TARGET`` makes a MnasNet
    budget (``'latency:pixel3<=20'``). The parent run logs the Pareto front of the children
    (``pareto_front.json``, ``plots/pareto_front.png``, ``search/hypervolume``)."""
    scalarization: Annotated[str | None, OneOf(METHODS)] = None
    """How reinforce, random and rea get one reward out of the objectives (nsga ranks the
    vectors itself): chebyshev or linear (a fresh Dirichlet weight vector per controller
    batch), dominance (minus the number of earlier children that dominate the child, plus
    half its Chebyshev value), mnasnet-soft or mnasnet-hard (Tan et al. 2019; every cost
    objective needs a target). ``null``: mnasnet-soft when an objective has a target, else
    dominance."""

    def __post_init__(self) -> None:
        check_fields(self)
        if self.objectives:
            Scalarizer(self.parsed_objectives, self.scalarization)  # checks the pairing
        require(
            bool(self.objectives) or self.scalarization is None,
            "scalarization",
            self.scalarization,
            "null unless search.objectives lists at least two objectives",
        )

    @property
    def parsed_objectives(self) -> tuple[Objective, ...]:
        """The objectives as records (empty for a single-objective search)."""
        return parse_objectives(self.objectives) if self.objectives else ()
