"""Regularized evolution (Real et al. 2019) — config only for now."""

from __future__ import annotations

from dataclasses import dataclass

from rlnas.errors import require


@dataclass(frozen=True)
class EvolutionConfig:
    """Settings of regularized evolution (defaults: the NAS-Bench-201 scripts)."""

    population: int = 10
    """Size of the aging population."""
    sample_size: int = 3
    """Tournament size: members drawn to pick the parent."""

    def __post_init__(self) -> None:
        require(self.population >= 2, "population", self.population, "an integer >= 2")
        require(
            1 <= self.sample_size <= self.population,
            "sample_size",
            self.sample_size,
            f"an integer in 1..population ({self.population})",
        )
