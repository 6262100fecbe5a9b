"""Regularized (aging) evolution, REA (Real et al. 2019), behind ``ask``/``tell``.

As in the NAS-Bench-201 scripts: the first ``population`` children are drawn at random;
after that each child is a mutation of a tournament winner (the best of ``sample_size``
members drawn with replacement from the population), and every new child pushes the
oldest member out, so the population keeps only recent children ("aging").

The mutation works on any space: pick one active decision that has another allowed value,
change it to one of those, and replay the rest of the parent through the space (a later
decision whose value the change made inactive or masked gets a random allowed value). With
``unique=True`` a mutation that gives an architecture already proposed is retried a few
times, then replaced by a random architecture never proposed before.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar

from rlnas.errors import require
from rlnas.rules import Range, check_fields
from rlnas.space import Decision, Sample, Space
from rlnas.strategies.base import Metrics, Strategy, Update


@dataclass(frozen=True)
class EvolutionConfig:
    """Settings of regularized evolution (defaults: the NAS-Bench-201 scripts)."""

    population: Annotated[int, Range(ge=2)] = 10
    """Size of the aging population."""
    sample_size: int = 3
    """Tournament size: members drawn to pick the parent."""
    mutation_tries: Annotated[int, Range(ge=1)] = 10
    """Mutations tried before falling back to a random unseen architecture (unique only)."""

    def __post_init__(self) -> None:
        check_fields(self)
        require(
            1 <= self.sample_size <= self.population,
            "sample_size",
            self.sample_size,
            f"an integer in 1..population ({self.population})",
        )


class RegularizedEvolution(Strategy):
    """Aging evolution: random start, tournament selection, one-decision mutation."""

    name = "rea"
    can_reset: ClassVar[bool] = True

    def __init__(
        self,
        space: Space,
        config: EvolutionConfig | None = None,
        *,
        seed: int = 0,
        unique: bool = True,
    ) -> None:
        super().__init__(space, seed=seed, unique=unique)
        self.config = config or EvolutionConfig()
        self.population: deque[tuple[Sample, float]] = deque()
        self.asked = 0

    def ask(self) -> Sample:
        self.asked += 1
        if self.asked <= self.config.population or not self.population:
            return self._draw(self._random_choice)
        members = list(self.population)
        picks = self.rng.integers(len(members), size=self.config.sample_size)
        parent = max((members[i] for i in picks), key=lambda m: m[1])[0]
        for _ in range(self.config.mutation_tries if self.seen is not None else 1):
            child = self.mutate(parent)
            if self.seen is None:
                return child
            if child.architecture not in self.seen:
                self.seen.add(child)
                return child
        return self._draw(self._random_choice)  # the parent's neighbourhood is used up

    def mutate(self, parent: Sample) -> Sample:
        """``parent`` with one active decision changed to another allowed value."""
        steps = [t for t, (a, m) in enumerate(zip(parent.actions, parent.masks)) if a >= 0]
        steps = [t for t in steps if sum(parent.masks[t]) >= 2] or steps
        if not steps:
            return parent
        target = int(steps[self.rng.integers(len(steps))])
        options = [
            i for i, ok in enumerate(parent.masks[target]) if ok and i != parent.actions[target]
        ]

        def choose(decision: Decision, allowed: tuple[bool, ...]) -> int:
            if decision.step == target and options:
                return int(options[self.rng.integers(len(options))])
            old = parent.actions[decision.step]
            if old >= 0 and allowed[old]:
                return old
            return self._random_choice(decision, allowed)

        return self.space.sample(choose)[0]

    def tell(self, sample: Sample, reward: float | None, metrics: Metrics = None) -> Update:
        if reward is None:  # a failed child does not join the population
            return None
        self.population.append((sample, float(reward)))
        if len(self.population) > self.config.population:
            self.population.popleft()  # the oldest member dies, whatever its reward
        return None

    def reset(self, seed: int) -> None:
        """Start afresh, exactly as a new strategy with this seed would."""
        Strategy.__init__(self, self.space, seed=seed, unique=self.seen is not None)
        self.population.clear()
        self.asked = 0

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["asked"] = self.asked
        state["population"] = [(s.to_dict(), r) for s, r in self.population]
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.asked = int(state["asked"])
        self.population = deque((Sample.from_dict(s), float(r)) for s, r in state["population"])
