"""The HW-NAS-Bench table shipped with rlnas: latency and energy of every NAS-Bench-201 cell.

HW-NAS-Bench (Li et al., ICLR 2021) measured or estimated the inference cost of all 15,625
NAS-Bench-201 cells on six devices. The shipped copy holds the CIFAR-10 input size (the only
one available offline), one row per cell in NAS-Bench-201 index order, so a row joins the
:mod:`rlnas.nb201.vocabulary` row of the same index::

    lookup(("nor_conv_3x3",) * 6, "pixel3", "latency")   # milliseconds
    lookup("|avg_pool_3x3~0|+|...|", "edgegpu", "energy")  # millijoules

A cell key is either the six edge operations (in :data:`rlnas.nb201.vocabulary.EDGES` order) or
the official architecture string. Nothing is read until the first look-up; the file is parsed
once per process. Units: latency in ms, energy in mJ (batch 1, see the data's README).
HW-NAS-Bench has no Edge TPU latency for 4,699 cells (``-1`` in the source); those read as
NaN, which :func:`has_value` tells apart.
"""

from __future__ import annotations

import csv
import functools
import gzip
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rlnas.errors import ConfigError, DataError, did_you_mean
from rlnas.nb201.vocabulary import EDGES, N_CELLS, OPS, arch_str, cell_code, parse_arch_str

DATA_FILE = "hw_nb201_cifar10.csv.gz"
DATASET = "cifar10"
"""The input size the shipped measurements are for."""
DEVICE_METRICS: dict[str, tuple[str, ...]] = {
    "edgegpu": ("latency", "energy"),
    "raspi4": ("latency",),
    "edgetpu": ("latency",),
    "pixel3": ("latency",),
    "eyeriss": ("latency", "energy"),
    "fpga": ("latency", "energy"),
}
"""Devices and the metrics HW-NAS-Bench gives for each (column ``{device}_{metric}``)."""
UNITS = {"latency": "ms", "energy": "mJ"}

CellKey = str | tuple[str, ...]


def devices() -> tuple[str, ...]:
    """The devices the table has, e.g. ``("edgegpu", "raspi4", ...)``."""
    return tuple(DEVICE_METRICS)


def check_device(device: str, metric: str | None = None, *, field: str = "device") -> None:
    """Raise a one-line :class:`ConfigError` unless the table has ``device`` (and ``metric``)."""
    if device not in DEVICE_METRICS:
        known = ", ".join(DEVICE_METRICS)
        raise ConfigError(
            f"{field}: unknown HW-NAS-Bench device {device!r}; known devices: {known}."
            + did_you_mean(device, DEVICE_METRICS)
        )
    if metric is not None and metric not in DEVICE_METRICS[device]:
        known = ", ".join(DEVICE_METRICS[device])
        raise ConfigError(
            f"{field}: HW-NAS-Bench has no {metric!r} for device {device!r}; "
            f"its metrics: {known}." + did_you_mean(metric, DEVICE_METRICS[device])
        )


def metrics(device: str) -> tuple[str, ...]:
    """The metrics the table has for ``device`` (``latency``, and ``energy`` for some)."""
    check_device(device)
    return DEVICE_METRICS[device]


@dataclass(frozen=True)
class HwTable:
    """The whole table as arrays, one row per cell (row = NAS-Bench-201 index)."""

    arch_strs: tuple[str, ...]
    columns: dict[str, np.ndarray]
    """``{device}_{metric}`` -> one value per row."""
    row_by_code: np.ndarray
    """:func:`rlnas.nb201.vocabulary.cell_code` -> row."""

    def __len__(self) -> int:
        return len(self.arch_strs)

    def row_of(self, cell: CellKey) -> int:
        """The row of a cell given by its six operations or its architecture string."""
        ops = parse_arch_str(cell) if isinstance(cell, str) else tuple(cell)
        if len(ops) != len(EDGES) or not set(ops) <= set(OPS):
            raise DataError(
                f"cell {cell!r}: expected six operations out of {', '.join(OPS)} "
                "or an architecture string."
            )
        return int(self.row_by_code[cell_code(ops)])

    def column(self, device: str, metric: str) -> np.ndarray:
        """All cells' values of one device metric (read-only; NaN where not measured)."""
        check_device(device, metric)
        return self.columns[f"{device}_{metric}"]


def default_path() -> Path:
    """Where the shipped table lies (inside the installed package)."""
    return Path(__file__).parent / "data" / "hwnas" / DATA_FILE


def load_hw_table(path: str | Path | None = None) -> HwTable:
    """Read and check the table (cached: the file is parsed once per process and path)."""
    return _load(None if path is None else str(path))


def lookup(cell: CellKey, device: str, metric: str) -> float:
    """One device metric of one cell (latency in ms, energy in mJ; NaN where not measured)."""
    check_device(device, metric)
    table = load_hw_table()
    return float(table.columns[f"{device}_{metric}"][table.row_of(cell)])


def has_value(cell: CellKey, device: str, metric: str) -> bool:
    """Whether HW-NAS-Bench measured this metric for this cell (False: :func:`lookup` is NaN)."""
    return not np.isnan(lookup(cell, device, metric))


def expected_columns() -> list[str]:
    names = [f"{d}_{m}" for d, ms in DEVICE_METRICS.items() for m in ms]
    return ["index", "arch_str", *names]


@functools.lru_cache(maxsize=4)
def _load(path: str | None) -> HwTable:
    where = path or str(default_path())
    try:
        text = gzip.decompress(Path(where).read_bytes()).decode()
    except (OSError, EOFError) as exc:
        raise DataError(f"HW-NAS-Bench table {where}: cannot be read ({exc}).") from None
    reader = csv.reader(io.StringIO(text))
    header = next(reader, [])
    if header != expected_columns():
        raise DataError(
            f"HW-NAS-Bench table {where}: columns {header}, expected {expected_columns()}."
        )
    rows = list(reader)
    if len(rows) != N_CELLS or [r[0] for r in rows] != [str(i) for i in range(N_CELLS)]:
        raise DataError(
            f"HW-NAS-Bench table {where}: expected {N_CELLS} rows indexed 0..{N_CELLS - 1}."
        )
    row_by_code = np.full(N_CELLS, -1, np.int64)
    for i, r in enumerate(rows):
        ops = parse_arch_str(r[1])
        if arch_str(ops) != r[1] or row_by_code[cell_code(ops)] >= 0:
            raise DataError(f"HW-NAS-Bench table {where}: cell {r[1]} is malformed or repeated.")
        row_by_code[cell_code(ops)] = i
    values = np.array([[v or "nan" for v in r[2:]] for r in rows], np.float64)
    known = values[~np.isnan(values)]
    if not (np.all(np.isfinite(known)) and np.all(known > 0)):
        raise DataError(f"HW-NAS-Bench table {where}: every latency and energy must be > 0.")
    columns = {name: values[:, k] for k, name in enumerate(header[2:])}
    for array in (*columns.values(), row_by_code):
        array.setflags(write=False)
    return HwTable(tuple(r[1] for r in rows), columns, row_by_code)
