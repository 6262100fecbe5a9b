"""Multi-objective evolution: NSGA-II's crowded comparison on REA's aging population.

The population, the random start, the tournament, the one-decision mutation and the aging
are those of :class:`~rlnas.strategies.evolution.RegularizedEvolution`; what changes is what
wins a tournament. Each member carries a vector of objective values, and after every
``tell`` the members are ranked as NSGA-II ranks them (Deb et al. 2002): first by
non-dominated front (:func:`rlnas.pareto.non_dominated_ranks`), then, within a front, by
crowding distance (isolated members first, so the front spreads out). The tournament keeps
the member that ranks best. Aging still removes the oldest member whatever its rank, which
keeps the population moving as REA's does.

The objectives are given at construction (:func:`rlnas.objectives.parse_objectives`);
``tell`` reads their values from the trial's reward and metrics::

    nsga = NsgaEvolution(space, parse_objectives(["accuracy", "latency:pixel3"]))
    sample = nsga.ask()
    nsga.tell(sample, reward=0.93, metrics={"hw_pixel3_latency_ms": 4.2})
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from rlnas.errors import ConfigError
from rlnas.objectives import Objective
from rlnas.pareto import crowding_distance, non_dominated_ranks
from rlnas.space import Sample, Space
from rlnas.strategies.base import Metrics, Update
from rlnas.strategies.evolution import EvolutionConfig, RegularizedEvolution

DEFAULT_CONFIG = EvolutionConfig(population=20, sample_size=3)
"""Twice REA's population of 10, so that it can hold a front; REA's tournament of 3."""


def crowded_scores(values: np.ndarray, maximize: Sequence[bool]) -> np.ndarray:
    """One number per member that orders them as NSGA-II's crowded comparison does.

    ``-rank + 0.5 * c / (1 + c)`` with ``c`` the crowding distance within the member's front
    (``inf`` -> 0.5): any member of a better front scores higher, and within a front the
    more isolated member does.
    """
    ranks = non_dominated_ranks(values, maximize)
    scores = -ranks.astype(np.float64)
    for r in np.unique(ranks):
        members = np.flatnonzero(ranks == r)
        c = crowding_distance(values[members])
        finite = np.isfinite(c)
        c[finite] = 0.5 * c[finite] / (1.0 + c[finite])
        scores[members] += np.where(finite, c, 0.5)
    return scores


class NsgaEvolution(RegularizedEvolution):
    """Aging evolution whose tournament uses Pareto rank, then crowding distance."""

    name = "nsga"
    multi_objective = True

    def __init__(
        self,
        space: Space,
        objectives: Sequence[Objective],
        config: EvolutionConfig | None = None,
        *,
        seed: int = 0,
        unique: bool = True,
    ) -> None:
        super().__init__(space, config or DEFAULT_CONFIG, seed=seed, unique=unique)
        if len(objectives) < 2:
            raise ConfigError(
                f"nsga: needs at least two objectives, got {[o.name for o in objectives]}."
            )
        self.objectives = tuple(objectives)
        self.maximize = [o.maximize for o in self.objectives]
        self.values: deque[tuple[float, ...]] = deque()

    def tell(self, sample: Sample, reward: float | None, metrics: Metrics = None) -> Update:
        """Report a child: ``reward`` and ``metrics`` hold its objectives' values."""
        if reward is None:  # a failed child does not join the population
            return None
        vector = tuple(o.value(reward, metrics or {}) for o in self.objectives)
        if not all(np.isfinite(vector)):
            return None  # e.g. a device without a measurement for this cell: not comparable
        self.values.append(vector)
        super().tell(sample, 0.0)  # joins and ages the population; the score is set below
        if len(self.values) > len(self.population):
            self.values.popleft()
        self._rescore()
        return None

    def _rescore(self) -> None:
        scores = crowded_scores(np.array(self.values), self.maximize)
        self.population = deque((s, float(x)) for (s, _), x in zip(self.population, scores))

    def reset(self, seed: int) -> None:
        super().reset(seed)
        self.values.clear()

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["values"] = [list(v) for v in self.values]
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.values = deque(tuple(float(x) for x in v) for v in state["values"])
