"""The words of NAS-Bench-201: its operations, edges and data sets, and the cell's string.

NAS-Bench-201 (Dong & Yang, ICLR 2020) defines a cell of four nodes whose six edges
``j -> k`` (j < k) each carry one of five operations, so it has 5**6 = 15,625 cells. The
space, the table and the evaluator all take these names from here::

    ops = ("nor_conv_3x3",) * 6
    arch_str(ops)  # '|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|...|'
    parse_arch_str(arch_str(ops)) == ops

This module imports nothing heavier than :mod:`rlnas.errors`, so a config can check a data
set name against :data:`DATASETS` without loading the table.
"""

from __future__ import annotations

from rlnas.errors import DataError

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
"""The five operations of an edge, in the order the ``nb201`` space offers them."""
EDGES = ("edge_0_1", "edge_0_2", "edge_1_2", "edge_0_3", "edge_1_3", "edge_2_3")
"""The six edges (node j -> node k) in the order of the official architecture string."""
DATASETS = ("cifar10", "cifar100", "imagenet16_120")
"""The data sets the table has a column for (the ``task.dataset`` of an ``nb201`` task)."""
N_CELLS = len(OPS) ** len(EDGES)  # 15,625


def arch_str(ops: tuple[str, ...]) -> str:
    """The official string of a cell, e.g. ``|nor_conv_3x3~0|+|...~0|...~1|+|...|``."""
    groups, i = [], 0
    for k in range(1, 4):
        groups.append("|" + "|".join(f"{ops[i + j]}~{j}" for j in range(k)) + "|")
        i += k
    return "+".join(groups)


def parse_arch_str(text: str) -> tuple[str, ...]:
    """The six edge operations of an official string, in :data:`EDGES` order."""
    ops: list[str] = []
    for k, group in enumerate(text.split("+"), start=1):
        parts = [p for p in group.split("|") if p]
        if len(parts) != k:
            raise DataError(f"NAS-Bench-201 string {text!r}: node {k} must have {k} inputs.")
        for j, part in enumerate(parts):
            op, _, source = part.partition("~")
            if op not in OPS or source != str(j):
                raise DataError(f"NAS-Bench-201 string {text!r}: bad edge {part!r}.")
            ops.append(op)
    if len(ops) != len(EDGES):
        raise DataError(f"NAS-Bench-201 string {text!r}: expected 6 edges, got {len(ops)}.")
    return tuple(ops)


def cell_code(ops: tuple[str, ...]) -> int:
    """A cell as a base-5 number over :data:`OPS` (0..15624); used to index the table."""
    code = 0
    for op in ops:
        code = code * len(OPS) + OPS.index(op)
    return code
