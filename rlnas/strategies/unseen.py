"""Sampling without replacement from a policy that learns (Shi et al., ICML 2020).

Each decision path (the active choices so far) keeps the share of its probability that has
not been proposed yet: 1 until visited, 0 once every architecture below it was proposed.
Choice ``i`` is then drawn with probability proportional to ``p(i) * share(path + i)``, and
after each draw the shares along the drawn path are refreshed with the current policy;
shares off the drawn path date from their last visit.

Masking only exhausted branches (what :class:`~rlnas.strategies.base.SeenTrie` does for
strategies without a policy) would hand the probability of an architecture already proposed
to its siblings at the LAST decision: a concentrated policy would explore its last
decisions exhaustively and its first ones hardly at all.
"""

from __future__ import annotations

from typing import Any

import numpy as np

Path = tuple[int, ...]


class UnseenShares:
    """Per decision path, the share of its probability not proposed yet."""

    def __init__(self) -> None:
        self.shares: dict[Path, float] = {}

    @property
    def exhausted(self) -> bool:
        """Whether every architecture has been proposed (the root's share is 0)."""
        return self.shares.get((), 1.0) <= 0.0

    def weigh(self, path: Path, probs: np.ndarray) -> np.ndarray:
        """The draw weights of the choices after ``path``: probability times unseen share."""
        return probs * [self.shares.get((*path, i), 1.0) for i in range(len(probs))]

    def close(self, leaf: Path, steps: list[tuple[Path, np.ndarray, tuple[bool, ...]]]) -> None:
        """Mark the architecture at ``leaf`` proposed and refresh the shares of the paths
        that led to it; ``steps`` holds, per drawn decision, its path, probabilities and
        allowed choices."""
        self.shares[leaf] = 0.0
        for path, probs, allowed in reversed(steps):
            probs = np.where(allowed, np.maximum(probs, 1e-12), 0.0)  # no underflow to 0
            shares = [self.shares.get((*path, i), 1.0) for i in range(len(probs))]
            self.shares[path] = float(np.dot(probs, shares) / probs.sum())

    def state(self) -> list[list[Any]]:
        return [[list(path), share] for path, share in self.shares.items()]

    def load(self, state: list[list[Any]]) -> None:
        self.shares = {tuple(path): float(share) for path, share in state}
