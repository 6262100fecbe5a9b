"""What the targets of a data set are: classes or numbers to regress (``task.kind``), and
class labels encoded as indices.

``auto`` reads text and booleans as classes; integers (or integer-valued floats) as classes
while there are at most ``task.max_classes`` distinct values, otherwise as numbers; any
other number (a fraction among them) as a regression target. A target array of several
columns is regressed only when ``task.kind: regression`` says so (a one-hot label matrix
looks the same). The caller logs the reading.
"""

from __future__ import annotations

import numpy as np

from rlnas.errors import DataError
from rlnas.raw_data import RawData
from rlnas.task_config import TaskConfig


def task_kind(y: np.ndarray, cfg: TaskConfig, where: str) -> tuple[str, str]:
    """``(kind, note)``: ``classification`` or ``regression`` for targets ``y``, and a note
    saying how it was decided."""
    if cfg.kind != "auto":
        return cfg.kind, f"kind {cfg.kind} (given)"
    if y.ndim == 2 and y.shape[1] > 1:
        return "classification", "kind auto: classification (a label matrix)"
    flat = y.reshape(len(y), -1)[:, 0] if y.ndim == 2 else y
    if flat.dtype.kind not in "iuf" or flat.size == 0:
        note = f"kind auto: classification ({flat.dtype.name} labels)"
    else:
        finite = flat[np.isfinite(flat)] if flat.dtype.kind == "f" else flat
        distinct = len(np.unique(finite))
        whole = bool(np.all(finite == np.round(finite)))
        if whole and distinct <= cfg.max_classes:
            note = f"kind auto: classification ({distinct} distinct whole numbers)"
        else:
            why = (
                f"{distinct} distinct values, more than max_classes {cfg.max_classes}"
                if whole
                else "fractional numbers"
            )
            note = f"kind auto: regression ({why}; set task.kind to override)"
            return "regression", note
    return "classification", note


def regression_targets(y: np.ndarray, where: str) -> np.ndarray:
    """``y`` as float32 of shape ``(N, T)``; refused unless finite numbers of float32's
    range, with at least 2 distinct values in every target."""
    if y.ndim not in (1, 2):
        raise DataError(f"{where}: regression targets of shape {y.shape}; expected (N,) or (N, T).")
    if y.dtype.kind not in "biuf":
        raise DataError(
            f"{where}: regression targets of dtype {y.dtype} are not numbers; expected "
            "numbers, or task.kind: classification for labels."
        )
    y = y.reshape(len(y), -1).astype(np.float64)
    bad = ~np.isfinite(y) | (np.abs(y) > np.finfo(np.float32).max)
    if bad.any():
        row = int(np.argwhere(bad)[0][0])
        raise DataError(
            f"{where}: targets hold {int(bad.sum())} NaN/inf values (first in row {row}); "
            "expected a finite number for every example."
        )
    for t in range(y.shape[1]):
        if len(y) and np.all(y[:, t] == y[0, t]):
            col = "" if y.shape[1] == 1 else f" (target {t})"
            raise DataError(
                f"{where}: every target{col} is {y[0, t]:g} ({len(y)} examples); expected at "
                "least 2 distinct values to regress."
            )
    return y.astype(np.float32)


def random_take(n: int, n_take: int, rng: np.random.Generator):
    """Indices of ``n_take`` of ``n`` examples drawn at random, and of the rest (sorted)."""
    order = rng.permutation(n)
    return np.sort(order[:n_take]), np.sort(order[n_take:])


def _decode(values: np.ndarray, what: str) -> np.ndarray:
    """Bytes (``S`` dtype) as UTF-8 text; everything else as it is."""
    if values.dtype.kind != "S":
        return values
    try:
        return np.char.decode(values, "utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{what} are bytes that are not UTF-8 ({exc.reason} at byte {exc.start}); "
            "expected UTF-8 text or integers."
        ) from None


def encode_labels(raw: RawData, where: str) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    """Class labels (and those of ``raw.y_test``) as indices ``0..K-1`` into the sorted
    classes, with the class names; refused below 2 classes or for unknown test labels."""
    y = _decode(raw.y.reshape(-1) if raw.y.ndim == 2 else raw.y, f"{where}: labels")
    classes, y_int = np.unique(y, return_inverse=True)
    if len(classes) < 2:
        raise DataError(
            f"{where}: every label is {classes[0].item()!r} ({len(y)} examples); "
            "expected at least 2 classes."
        )
    y_test = None
    if raw.y_test is not None:
        yt = raw.y_test.reshape(-1) if raw.y_test.ndim == 2 else raw.y_test
        yt = _decode(yt, f"{where}: y_test")
        if yt.dtype.kind != classes.dtype.kind and {yt.dtype.kind, classes.dtype.kind} & {"U"}:
            raise DataError(
                f"{where}: y_test holds {yt.dtype} labels but y holds {classes.dtype}; expected "
                "the same kind of labels."
            )
        pos = np.searchsorted(classes, yt).clip(0, len(classes) - 1)
        unknown = classes[pos] != yt
        if unknown.any():
            raise DataError(
                f"{where}: y_test: label {yt[unknown][0].item()!r} never occurs in the "
                f"training labels {classes[:10].tolist()}; expected the same classes."
            )
        y_test = pos.astype(np.int32)
    names = raw.class_names
    if names is None or len(names) != len(classes):
        names = [str(c) for c in classes]
    elif (
        np.issubdtype(classes.dtype, np.integer)
        and classes.min() >= 0
        and classes.max() < len(names)
    ):
        names = [names[int(c)] for c in classes]
    return y_int.astype(np.int32), y_test, names


def check_labels(y: np.ndarray, where: str) -> None:
    """Raise :class:`DataError` unless ``y`` holds class labels: integers, booleans, strings
    or integer-valued finite floats."""
    kind = y.dtype.kind
    if kind in "biuUS":
        return
    if kind == "f":
        bad = ~np.isfinite(y)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"{where}: labels hold {int(bad.sum())} NaN/inf values (first in row {row}); "
                "expected a class label for every example."
            )
        frac = y != np.round(y)
        if frac.any():
            row = int(np.flatnonzero(frac)[0])
            raise DataError(
                f"{where}: label {y[row].item()!r} in row {row} is not a whole number; "
                "expected class labels (integers or strings), or set task.kind: regression."
            )
        return
    raise DataError(
        f"{where}: labels of dtype {y.dtype} are not class labels; expected integers or strings."
    )
