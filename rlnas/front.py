"""The Pareto front of a multi-objective search, read off its trials (framework-free).

A member of the front is a completed, freshly evaluated child whose objective values (see
:mod:`rlnas.objectives`) no other such child dominates; children with a non-finite value
(a device the table has no measurement for) are left out. The hypervolume is taken against
a reference point fixed by the objectives and the first controller batch::

    members = front(search.trials, search.objectives)
    hypervolume_of(search.trials, search.objectives)

Reference point (:func:`reference_point`): 0 for a maximised objective (accuracies are
>= 0); for a minimised one, twice its largest value among the children of the first
controller batch (``controller_step == 0``: for a strategy that does not learn in batches,
all children), so that the figure is comparable across the updates of one search.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rlnas.objectives import Objective
from rlnas.pareto import hypervolume, pareto_mask
from rlnas.trial import Trial, TrialState


@dataclass(frozen=True)
class Member:
    """One child on the front: its trial and its objectives' values (config order)."""

    trial: Trial
    values: tuple[float, ...]

    def objectives(self, objectives: Sequence[Objective]) -> dict[str, float]:
        return {o.name: v for o, v in zip(objectives, self.values)}


def scored(trials: Sequence[Trial], objectives: Sequence[Objective]) -> list[Member]:
    """Every completed, freshly evaluated child with finite objective values."""
    out = []
    for t in trials:
        if t.state is not TrialState.COMPLETE or t.cached_from is not None:
            continue
        try:
            values = tuple(o.value(t.reward, t.metrics) for o in objectives)
        except Exception:  # a child without the metric (an older record): not comparable
            continue
        if all(np.isfinite(values)):
            out.append(Member(t, values))
    return out


def front(trials: Sequence[Trial], objectives: Sequence[Objective]) -> list[Member]:
    """The non-dominated children, best first by the first objective."""
    members = scored(trials, objectives)
    if not members:
        return []
    maximize = [o.maximize for o in objectives]
    mask = pareto_mask(np.array([m.values for m in members]), maximize)
    on_front = [m for m, keep in zip(members, mask) if keep]
    first = objectives[0]
    return sorted(on_front, key=lambda m: -m.values[0] if first.maximize else m.values[0])


def reference_point(
    trials: Sequence[Trial], objectives: Sequence[Objective]
) -> tuple[float, ...] | None:
    """The hypervolume's reference point (see the module's docstring); ``None`` before any
    child has finite values."""
    members = scored(trials, objectives)
    first = [m for m in members if m.trial.controller_step == 0] or members
    if not first:
        return None
    worst = np.max(np.array([m.values for m in first]), axis=0)
    return tuple(0.0 if o.maximize else 2.0 * float(w) for o, w in zip(objectives, worst))


def hypervolume_of(
    trials: Sequence[Trial],
    objectives: Sequence[Objective],
    reference: Sequence[float] | None = None,
) -> float:
    """Hypervolume of the children's objective values (0 when there are none)."""
    reference = reference if reference is not None else reference_point(trials, objectives)
    members = scored(trials, objectives)
    if reference is None or not members:
        return 0.0
    points = np.array([m.values for m in members])
    return hypervolume(points, reference, [o.maximize for o in objectives])
