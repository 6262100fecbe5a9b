"""Tasks: named data sets, checked and split into train / validation / test, all offline.

``load_task(cfg)`` returns a :class:`TaskData` with float32 features, integer labels
``0..K-1`` (classification) or float32 targets of shape ``(N, T)`` (regression), and a
:class:`TaskSpec` (input shape and kind, task) that search spaces use::

    data = load_task(TaskConfig(name="digits"))
    data.spec  # TaskSpec(input_shape=(8, 8, 1), input_kind='image', num_classes=10, ...)

Classification or regression (``task.kind``): the built-in data sets are classes; the targets
of an ``npz`` or a ``table`` are read as :func:`task_kind` says (``auto``: text, booleans and
at most ``task.max_classes`` distinct integers are classes, other numbers are regressed), and
the reading is logged. The input kind: :mod:`rlnas.input_kind`.

Splits: the data set's own test split where it has one (mnist1d, fashion_mnist, mnist,
cifar10, an ``npz`` with ``x_test``/``y_test``), otherwise a stratified ``test_fraction`` of
all examples (a seeded random one for regression). Validation is always carved out of the
training part, stratified for classes: a
``validation_fraction`` of all examples when the test split was carved here (70/15/15 by
default), of the training part when the data set brought its own test split. A
``train_subset`` keeps a stratified subset of what remains for training. Every split is seeded
with ``cfg.split_seed`` only, so searches with different seeds see the same data.

Rules every data set must meet (refused below them with one line, before any training):
finite features that fit float32, at least one feature per example, one class label per
example (integers, integer-valued floats, booleans or strings; never NaN/inf or a fraction),
at least 2 classes, every split non-empty, and every class with at least
:data:`MIN_TRAIN_PER_CLASS` examples in the training split (before ``train_subset``).
Regression targets are finite numbers with at least 2 distinct values per target.
Messages start with the file (``task.path '...'``) for the user's own data.

The readers of the data sets (all offline, never downloading) are in
:mod:`rlnas.task_readers`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from rlnas.errors import ConfigError, DataError
from rlnas.input_kind import arrange
from rlnas.targets import (
    check_labels,
    encode_labels,
    random_take,
    regression_targets,
    task_kind,
)
from rlnas.task_config import TaskConfig
from rlnas.task_readers import READERS, RawData

log = logging.getLogger(__name__)

MIN_TRAIN_PER_CLASS = 2
"""Fewest training examples of any class (a class seen once cannot be learnt, only recalled)."""
F32_MAX = float(np.finfo(np.float32).max)


@dataclass(frozen=True)
class TaskSpec:
    """What a search space needs to know about the inputs (hashable, framework-free)."""

    input_shape: tuple[int, ...]
    """Shape of one example: (H, W, C) images, (L, C) sequences, (F,) flat vectors."""
    input_kind: str
    """``image``, ``sequence`` or ``flat``."""
    num_classes: int
    """Classes of a classification; 0 for a regression."""
    flip: bool = False
    """Horizontal flips keep the label (photos, clothes; not digits): image augmentation."""
    feature_std: float = 1.0
    """Standard deviation of the training features: noise augmentation is relative to it."""
    value_range: tuple[float, float] = (0.0, 1.0)
    """Smallest and largest training feature: contrast augmentation clips to it."""
    task: str = "classification"
    """``classification`` (a softmax over ``num_classes``) or ``regression`` (a linear
    output per target)."""
    target_mean: tuple[float, ...] = ()
    """Regression: mean of each target over the training split (empty for classes)."""
    target_std: tuple[float, ...] = ()
    """Regression: standard deviation of each target over the training split; the output
    layer is initialised and the loss weighted with it, so that targets of any scale
    train alike."""
    embedded: tuple[tuple[int, int], ...] = ()
    """Tables: the last ``len(embedded)`` features are the codes of embedded categorical
    columns, each ``(categories, vector width)``: code ``1..categories`` a training category,
    0 one never seen (:mod:`rlnas.table_task`). Children map them to learnt vectors
    (:mod:`rlnas.keras_build.embed`); ``feature_std`` and ``value_range`` leave them out."""

    @property
    def outputs(self) -> int:
        """Units of the output layer: one per class, or one per regression target."""
        return self.num_classes if self.task == "classification" else len(self.target_mean)


@dataclass(eq=False)
class TaskData:
    """A data set split three ways; the test split is never used for a reward."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    class_names: list[str] | None
    spec: TaskSpec
    source: str
    """One line of provenance: where the examples came from."""
    encoding: dict | None = None
    """A table's feature encoding (:meth:`rlnas.table_task.TableEncoder.describe`), which
    ``rlnas final`` logs as ``table_encoding.json``; ``None`` for arrays and images."""
    notes: tuple[str, ...] = ()
    """How rlnas read the user's own data where it inferred something (the input kind,
    classes or regression, the image size, the cells filled): the search command prints
    them once every check has passed (:func:`rlnas.factory.make_space`)."""


def load_task(cfg: TaskConfig, seed: int | None = None) -> TaskData:
    """Load, check and split the task of ``cfg``.

    ``seed`` (the search's seed) is accepted for symmetry and deliberately unused: splits
    depend on ``cfg.split_seed`` only, so searches with different seeds stay comparable.
    """
    if cfg.name == "table":
        from rlnas.table_task import load_table

        return load_table(cfg, split_indices, assemble)
    if cfg.name not in READERS:
        raise ConfigError(f"task.name: {cfg.name!r} is a lookup table and has no data to load.")
    return _split(cfg, READERS[cfg.name](cfg))


# -- checks ---------------------------------------------------------------------------------
def check_arrays(x: np.ndarray, y: np.ndarray, where: str, task: str = "classification") -> None:
    """Raise :class:`DataError` unless ``x``/``y`` pair up, ``x`` holds finite numbers that
    fit float32 with at least one per example, and ``y`` holds one class label per row (or,
    for a regression, finite targets)."""
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if task == "regression" and y.ndim == 2:
        y = y[:, 0]  # targets are checked by _regression_targets
    if y.ndim != 1:
        hint = "; one-hot labels: save y.argmax(axis=1)" if y.ndim == 2 else ""
        raise DataError(
            f"{where}: labels must be 1-D (one class per example), got {y.shape}{hint}."
        )
    if len(x) != len(y):
        raise DataError(
            f"{where}: features have {len(x)} rows but labels have {len(y)}; expected one "
            "label per row."
        )
    if len(x) == 0:
        raise DataError(f"{where}: no examples (0 rows); expected at least one per class.")
    if x.size == 0:
        raise DataError(
            f"{where}: examples of shape {x.shape[1:]} hold no values; expected at least "
            "one feature per example (no axis of size 0)."
        )
    if x.dtype != bool and (
        not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating)
    ):
        raise DataError(f"{where}: features must be real numbers, got dtype {x.dtype}.")
    if np.issubdtype(x.dtype, np.floating):
        # NaN, inf and (for wider floats) what float32 would turn into inf
        bad = ~np.isfinite(x) if x.itemsize <= 4 else ~(np.abs(x) <= F32_MAX)
        if bad.any():
            row = int(np.argwhere(bad)[0][0])
            big = np.isfinite(x[bad]).any()
            raise DataError(
                f"{where}: features hold {int(bad.sum())} NaN/inf values (first in row "
                f"{row}); expected finite numbers"
                + (f" within float32's range (|x| <= {F32_MAX:.3g})." if big else ".")
            )
    if task == "classification":
        check_labels(y, where)


# -- splitting ------------------------------------------------------------------------------
def stratified_take(y: np.ndarray, n_take: int, rng: np.random.Generator):
    """Indices of ``n_take`` examples drawn per class in proportion, and of the rest.

    Classes get their share by largest remainder, so the total is exactly ``n_take``.
    Float targets (a regression) have no classes: they are drawn at random.
    """
    if y.dtype.kind == "f":
        return random_take(len(y), n_take, rng)
    classes, counts = np.unique(y, return_counts=True)
    quota = n_take * counts / counts.sum()
    take = np.floor(quota).astype(int)
    left = n_take - take.sum()
    take[np.argsort(-(quota - take), kind="stable")[:left]] += 1
    chosen = []
    for c, k in zip(classes, take):
        idx = np.flatnonzero(y == c)
        chosen.append(rng.permutation(idx)[:k])
    picked = np.sort(np.concatenate(chosen))
    rest = np.setdiff1d(np.arange(len(y)), picked, assume_unique=True)
    return picked, rest


def _check_per_class(y, train, names, where: str, cfg: TaskConfig) -> None:
    counts = np.bincount(y[train], minlength=len(names))
    if counts.min() < MIN_TRAIN_PER_CLASS:
        c = int(counts.argmin())
        raise DataError(
            f"{where}: class {names[c]!r} has {counts[c]} in the training split "
            f"({int((y == c).sum())} in all); expected at least {MIN_TRAIN_PER_CLASS} examples "
            "per class there: add examples of it or lower validation_fraction/test_fraction "
            f"({cfg.validation_fraction}/{cfg.test_fraction})."
        )


def split_indices(
    cfg: TaskConfig, y: np.ndarray, own_test: bool, where: str, names, label: str = ""
):
    """``(train, val, test)`` row indices of ``y`` (``test`` empty when the data set brings
    its own test split): stratified for class labels, random for float targets, seeded with
    ``cfg.split_seed``; ``train_subset`` applied. Errors start with ``where`` (too few
    examples: with ``label`` where given)."""
    rng = np.random.default_rng(cfg.split_seed)
    regression = y.dtype.kind == "f"
    n = len(y)
    test, rest = np.arange(0), np.arange(n)
    if not own_test:
        test, rest = stratified_take(y, round(cfg.test_fraction * n), rng)
    n_val = round(cfg.validation_fraction * n)
    val = train = np.arange(0)
    if 1 <= n_val < len(rest):
        val_pos, train_pos = stratified_take(y[rest], n_val, rng)
        val, train = rest[val_pos], rest[train_pos]
    enough = len(train) >= 2 if regression else len(np.unique(y[train])) >= 2
    if len(val) < 1 or (not own_test and len(test) < 1) or not enough:
        raise DataError(
            f"{label or where}: {n} examples are too few to split with validation_fraction="
            f"{cfg.validation_fraction} and test_fraction={cfg.test_fraction}; expected "
            "examples in every split and "
            + (
                "2 or more training examples."
                if regression
                else "2 classes or more in the training split."
            )
        )
    if not regression:
        _check_per_class(y, train, names, where, cfg)
    if cfg.train_subset is not None:
        if cfg.train_subset < len(train):
            keep, _ = stratified_take(y[train], cfg.train_subset, rng)
            train = train[keep]
        else:
            log.info(
                "train_subset %d >= %d training examples: all kept", cfg.train_subset, len(train)
            )
    return train, val, test


def _split(cfg: TaskConfig, raw: RawData) -> TaskData:
    file = f"task.path {cfg.path!r}: " if cfg.name in ("npz", "image_folder") else ""
    where = f"{file}{cfg.name} (training data)"
    kind, kind_note = "classification", ""  # the built-in data sets and image folders
    if cfg.name == "npz":
        kind, kind_note = task_kind(raw.y, cfg, where)
    x, x_test, input_kind, input_note = arrange(raw.x, raw.x_test, cfg.input_kind, where)
    check_arrays(x, raw.y, where, kind)
    if x_test is not None:
        check_arrays(x_test, raw.y_test, f"{file}{cfg.name} (test data)", kind)
        if x_test.shape[1:] != x.shape[1:]:
            raise DataError(
                f"{file}x_test: examples of shape {x_test.shape[1:]} differ from x's "
                f"{x.shape[1:]}; expected the same shape."
            )
    if kind == "regression":
        y = regression_targets(raw.y, where)
        y_test = None if raw.y_test is None else regression_targets(raw.y_test, where)
        names: list[str] | None = None
    else:
        y, y_test, names = encode_labels(raw, where)
    label = f"{file}{cfg.name}"
    train, val, test = split_indices(cfg, y, x_test is not None, where, names, label)
    if x_test is None:
        x_test, y_test = x[test], y[test]
    notes = list(raw.notes)
    if cfg.name == "npz":  # the user's own arrays: say how they were read
        auto = [n for n in (input_note, kind_note) if n.split(":")[0].endswith("auto")]
        notes += [f"{file.rstrip(': ')}: {n}" for n in auto]
    return assemble(
        cfg, (x[train], y[train]), (x[val], y[val]), (x_test, y_test), names, raw.flip,
        input_kind, raw.source, tuple(notes),
    )  # fmt: skip


def assemble(
    cfg: TaskConfig,
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    names: list[str] | None,
    flip: bool,
    input_kind: str,
    source: str,
    notes: tuple[str, ...] = (),
    embedded: tuple[tuple[int, int], ...] = (),
) -> TaskData:
    """The :class:`TaskData` of split arrays (``names`` None: a regression; ``embedded``:
    see :attr:`TaskSpec.embedded`)."""
    x_train = np.ascontiguousarray(train[0], dtype=np.float32)
    plain = x_train[:, : x_train.shape[1] - len(embedded)] if embedded else x_train
    mirror = flip if cfg.mirror is None else cfg.mirror
    if mirror and input_kind != "image":
        raise DataError(
            f"task.mirror: true needs image inputs, but task {cfg.name!r} has {input_kind} "
            "inputs; expected false or null."
        )
    regression = names is None
    dtype = np.float32 if regression else np.int32
    y_train = np.asarray(train[1], dtype=dtype)
    spec = TaskSpec(
        input_shape=tuple(int(s) for s in x_train.shape[1:]),
        input_kind=input_kind,
        num_classes=0 if regression else len(names),
        flip=bool(mirror),
        feature_std=(float(plain.std()) if plain.size else 0.0) or 1.0,
        value_range=(float(plain.min()), float(plain.max())) if plain.size else (0.0, 1.0),
        task="regression" if regression else "classification",
        target_mean=tuple(float(m) for m in y_train.mean(axis=0)) if regression else (),
        target_std=tuple(float(s) or 1.0 for s in y_train.std(axis=0)) if regression else (),
        embedded=tuple(embedded),
    )
    return TaskData(
        name=cfg.name,
        x_train=x_train,
        y_train=y_train,
        x_val=np.ascontiguousarray(val[0], dtype=np.float32),
        y_val=np.asarray(val[1], dtype=dtype),
        x_test=np.ascontiguousarray(test[0], dtype=np.float32),
        y_test=np.asarray(test[1], dtype=dtype),
        num_classes=spec.num_classes,
        class_names=names,
        spec=spec,
        source=source,
        notes=notes,
    )


def load_given_validation(cfg: TaskConfig) -> TaskData | None:
    """An ``npz`` task that brings its own validation split (arrays ``x_val`` and ``y_val``,
    as :func:`rlnas.search` writes for ``validation_data``), else ``None``.

    Validation is the given rows. The test split is ``x_test``/``y_test`` if present, else a
    ``test_fraction`` of the rows of ``x`` (stratified for classes, seeded with
    ``split_seed``) held out from training, so that the search never trains on it and the
    validation rows that chose the architecture never test it. Training is the rest of
    ``x`` (``train_subset`` applies). The same checks and readings as :func:`load_task`
    apply (input kind, classes or regression).
    """
    if cfg.name != "npz" or not cfg.path or not str(cfg.path).endswith(".npz"):
        return None
    try:
        with np.load(cfg.path, allow_pickle=False) as f:
            if "x_val" not in f.files or "y_val" not in f.files:
                return None
            x_val, y_val = f["x_val"], f["y_val"]
    except (OSError, ValueError):
        return None  # the npz reader says what is wrong with the file
    raw = READERS["npz"](cfg)
    where = f"task.path {cfg.path!r}: npz"
    x_val = x_val / np.float32(255) if x_val.dtype == np.uint8 else x_val
    kind, _ = task_kind(raw.y, cfg, f"{where} (training data)")
    x, x_v, input_kind, _ = arrange(raw.x, x_val, cfg.input_kind, where)
    check_arrays(x, raw.y, f"{where} (training data)", kind)
    check_arrays(x_v, y_val, f"{where} (validation data)", kind)
    if x_v.shape[1:] != x.shape[1:]:
        raise DataError(
            f"{where}: validation examples of shape {x_v.shape[1:]} differ from x's "
            f"{x.shape[1:]}; expected the same shape."
        )
    names: list[str] | None = None
    if kind == "regression":
        y, y_v = regression_targets(raw.y, where), regression_targets(y_val, where)
    else:
        y, y_v, names = encode_labels(
            RawData(raw.x, raw.y, x_val, y_val, raw.class_names, raw.source), where
        )
    rng = np.random.default_rng(cfg.split_seed)
    train = np.arange(len(y))
    if raw.x_test is not None:
        x_t, _, _, _ = arrange(raw.x_test, None, cfg.input_kind, where)
        check_arrays(x_t, raw.y_test, f"{where} (test data)", kind)
        if kind == "regression":
            test = (x_t, regression_targets(raw.y_test, where))
        else:
            _, y_t, _ = encode_labels(raw, where)
            test = (x_t, y_t)
    else:  # no test split given: hold one out of x
        held, train = stratified_take(y, round(cfg.test_fraction * len(y)), rng)
        enough = len(train) >= 2 if kind == "regression" else len(np.unique(y[train])) >= 2
        if len(held) < 1 or not enough:
            raise DataError(
                f"{where}: {len(y)} training examples are too few to hold out a test split "
                f"with test_fraction={cfg.test_fraction}; expected examples in both (or give "
                "x_test and y_test: test_data in rlnas.search)."
            )
        if names is not None:
            _check_per_class(y, train, names, where, cfg)
        test = (x[held], y[held])
    if cfg.train_subset is not None and cfg.train_subset < len(train):
        keep, _ = stratified_take(y[train], cfg.train_subset, rng)
        train = train[keep]
    return assemble(
        cfg, (x[train], y[train]), (x_v, y_v), test, names, raw.flip, input_kind,
        raw.source + " (with its own validation split)",
    )  # fmt: skip


def load_splits(cfg: TaskConfig) -> TaskData:
    """The task's splits as every command reads them: an ``npz`` that brings its own
    validation split (:func:`load_given_validation`), else :func:`load_task`'s."""
    given = load_given_validation(cfg)
    return given if given is not None else load_task(cfg)
