"""The NAS-Bench-201 table shipped with rlnas: load it once per process and check it.

NAS-Bench-201 (Dong & Yang, ICLR 2020) trained every one of the 15,625 cells of its search
space; looking a cell up replaces training it, so strategies can be compared in seconds.
Cells are named as in :mod:`rlnas.nb201.vocabulary` (six edges, five operations)::

    table = load_table()
    row = table.row_of(("nor_conv_3x3",) * 6)
    table.test_acc["cifar10"][row], table.epoch_seconds["cifar10"][row]

Loading checks what the data's README verifies (15,625 distinct cells, indices 0..15624,
CIFAR-10 maximum 94.3733) and raises :class:`~rlnas.errors.DataError` otherwise.
"""

from __future__ import annotations

import csv
import functools
import gzip
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rlnas.errors import DataError
from rlnas.nb201.vocabulary import DATASETS, N_CELLS, arch_str, cell_code, parse_arch_str

CIFAR10_MAX = 94.3733  # the paper's optimum (94.37); the table holds 94.37333...
DATA_FILE = "nb201_tss_200ep.csv.gz"


@dataclass(frozen=True)
class Nb201Table:
    """The whole table as arrays, one row per cell (row = NAS-Bench-201 index)."""

    arch_strs: tuple[str, ...]
    test_acc: dict[str, np.ndarray]
    """200-epoch test accuracy in %, per data set."""
    epoch_seconds: dict[str, np.ndarray]
    """Training seconds of one epoch, per data set."""
    row_by_code: np.ndarray
    """:func:`cell_code` -> row."""

    def __len__(self) -> int:
        return len(self.arch_strs)

    def row_of(self, ops: tuple[str, ...]) -> int:
        """The row (NAS-Bench-201 index) of the cell with these six edge operations."""
        return int(self.row_by_code[cell_code(ops)])

    def optimum(self, dataset: str) -> float:
        """The best test accuracy of any cell on ``dataset``."""
        return float(self.test_acc[dataset].max())


def default_path() -> Path:
    """Where the shipped table lies (inside the installed package)."""
    return Path(__file__).parent / "data" / DATA_FILE


def load_table(path: str | Path | None = None) -> Nb201Table:
    """Read and check the table (cached: the file is parsed once per process and path)."""
    return _load(None if path is None else str(path))


def read_cell_rows(
    where: str, title: str, columns: list[str]
) -> tuple[list[list[str]], np.ndarray]:
    """The rows of a gzipped CSV table with one row per cell (``index`` 0..15624, ``arch_str``,
    then the values) and, per cell code, its row. Shared by this table and HW-NAS-Bench's;
    any fault is a :class:`DataError` naming ``title`` and the file ``where``."""
    try:
        text = gzip.decompress(Path(where).read_bytes()).decode()
    except (OSError, EOFError) as exc:
        raise DataError(f"{title} {where}: cannot be read ({exc}).") from None
    reader = csv.reader(io.StringIO(text))
    header = next(reader, [])
    if header != columns:
        raise DataError(f"{title} {where}: columns {header}, expected {columns}.")
    rows = list(reader)
    if len(rows) != N_CELLS:
        raise DataError(f"{title} {where}: {len(rows)} rows, expected {N_CELLS}.")
    if [r[0] for r in rows] != [str(i) for i in range(N_CELLS)]:
        raise DataError(f"{title} {where}: the index column is not 0..{N_CELLS - 1}.")
    row_by_code = np.full(N_CELLS, -1, np.int64)
    for i, r in enumerate(rows):
        ops = parse_arch_str(r[1])
        if arch_str(ops) != r[1] or row_by_code[cell_code(ops)] >= 0:
            raise DataError(f"{title} {where}: cell {r[1]} is malformed or appears twice.")
        row_by_code[cell_code(ops)] = i
    return rows, row_by_code


@functools.lru_cache(maxsize=4)
def _load(path: str | None) -> Nb201Table:
    where = path or str(default_path())
    columns = ["index", "arch_str"] + [
        f"{ds}_{c}" for ds in DATASETS for c in ("test_acc", "train_time_per_epoch_s")
    ]
    rows, row_by_code = read_cell_rows(where, "NAS-Bench-201 table", columns)
    values = np.array([r[2:] for r in rows], np.float64)
    test_acc = {ds: values[:, 2 * k] for k, ds in enumerate(DATASETS)}
    seconds = {ds: values[:, 2 * k + 1] for k, ds in enumerate(DATASETS)}
    best = float(test_acc["cifar10"].max())
    if abs(best - CIFAR10_MAX) > 1e-4:
        raise DataError(
            f"NAS-Bench-201 table {where}: CIFAR-10 maximum {best:.4f}, expected {CIFAR10_MAX}."
        )
    if not all(np.all(np.isfinite(s)) and np.all(s > 0) for s in seconds.values()):
        raise DataError(f"NAS-Bench-201 table {where}: training times must be positive.")
    for array in (*test_acc.values(), *seconds.values(), row_by_code):
        array.setflags(write=False)
    return Nb201Table(tuple(r[1] for r in rows), test_acc, seconds, row_by_code)
