"""Random search: every active decision drawn uniformly among its allowed choices.

The baseline every other strategy must beat. With ``unique=True`` (the default) it samples
without replacement, so it never proposes the same architecture twice.
"""

from __future__ import annotations

from typing import ClassVar

from rlnas.space import Sample
from rlnas.strategies.base import Metrics, Strategy, Update


class RandomSearch(Strategy):
    """Uniform sampling; ``tell`` learns nothing."""

    name = "random"
    can_reset: ClassVar[bool] = True

    def ask(self) -> Sample:
        return self._draw(self._random_choice)

    def tell(self, sample: Sample, reward: float | None, metrics: Metrics = None) -> Update:
        return None

    def reset(self, seed: int) -> None:
        """Start afresh, exactly as a new random search with this seed would."""
        Strategy.__init__(self, self.space, seed=seed, unique=self.seen is not None)
