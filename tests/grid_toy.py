"""A toy space with a mask and an inactive decision, and its formula reward (no Keras).

Shared by the strategy tests: big enough (9,984 cells) that learning shows, small enough
that everything runs in milliseconds.
"""

from __future__ import annotations

from rlnas.space import Space
from rlnas.trial import Outcome


class GridSpace(Space):
    """7 decisions of 4 values (9,984 cells); ``extra`` only applies when ``d0`` > 0 and
    ``d1`` may not equal ``d0`` (a mask), so mutations must re-check the rest."""

    name = "grid"

    def declare(self, d):
        values = [d.choice("d0", [0, 1, 2, 3])]
        values.append(d.choice("d1", [0, 1, 2, 3], mask=[v != values[0] for v in range(4)]))
        values += [d.choice(f"d{i}", [0, 1, 2, 3]) for i in range(2, 6)]
        extra = d.choice("extra", [0, 1, 2, 3], active=values[0] > 0)
        return values + [extra]


def grid_reward(arch) -> float:
    """Additive with one interaction; best (5.3): d0=3, d1=2, d2..d5=3, extra=3."""
    r = sum(arch[f"d{i}"] for i in range(2, 6)) / 4 + arch["d0"] / 3 + arch["d1"] / 2
    r += 0.3 * (arch["d0"] == 3 and arch.get("extra") == 3)
    return round(r, 6)


class GridEvaluator:
    def fingerprint(self) -> str:
        return "grid"

    def evaluate(self, architecture, *, seed, number):
        return Outcome(reward=grid_reward(architecture), cost=1.0 + architecture["d2"])
