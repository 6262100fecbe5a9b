"""The `nb201` space: the NAS-Bench-201 cell (Dong & Yang, ICLR 2020).

A cell has four nodes; each of its six edges ``j -> k`` (j < k) carries one of five
operations. The decisions are the edges, named and ordered as in the official architecture
string (``edge_0_1, edge_0_2, edge_1_2, edge_0_3, edge_1_3, edge_2_3``), so every one of the
5**6 = 15,625 cells of the benchmark table is exactly one architecture of this space::

    space = Nb201Space()
    sample, ops = space.replay({e: "nor_conv_3x3" for e in EDGES})
    load_table().row_of(ops)  # the cell's row in the table

The blueprint is the tuple of the six operations (the table's key); no decision is masked,
since the benchmark trained even the cells whose output is cut off from the input.
"""

from __future__ import annotations

from rlnas.nb201.vocabulary import EDGES, OPS, arch_str
from rlnas.space import Decider, Space


class Nb201Space(Space):
    """Six categorical edge decisions over the five NAS-Bench-201 operations."""

    name = "nb201"

    def declare(self, d: Decider) -> tuple[str, ...]:
        return tuple(str(d.choice(edge, OPS)) for edge in EDGES)

    @staticmethod
    def arch_str(ops: tuple[str, ...]) -> str:
        """The official NAS-Bench-201 string of a blueprint."""
        return arch_str(ops)
