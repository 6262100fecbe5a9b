"""Settings of the task: which data set children train on, how it is read and split.

A light module (no NumPy, no framework) so that :mod:`rlnas.config` and the data readers
can both import it; :func:`rlnas.tasks.load_task` reads a :class:`TaskConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from rlnas.errors import require
from rlnas.rules import OneOf, Range, check_fields

TASKS = (
    "digits",
    "mnist1d",
    "fashion_mnist",
    "mnist",
    "cifar10",
    "npz",
    "image_folder",
    "table",
    "nb201",
)
NB201_DATASETS = ("cifar10", "cifar100", "imagenet16_120")
USER_FILES = ("npz", "image_folder", "table")
"""Tasks that read the user's own file or folder (``task.path``)."""

SEED_RANGE = Range(ge=0, lt=2**32)
"""Seeds are what NumPy's legacy seeding takes: 0 <= seed < 2**32."""


@dataclass(frozen=True)
class TaskConfig:
    """The data set children are trained and validated on."""

    name: Annotated[str, OneOf(TASKS)] = "digits"
    """One of: digits, mnist1d, fashion_mnist, mnist, cifar10, npz, image_folder, table,
    nb201."""
    path: str | None = None
    """The ``.npz`` file (arrays ``x``, ``y``; optional ``x_test``, ``y_test``), the image
    folder (one sub-folder per class) or the table (``.csv``, or ``.parquet`` through pandas
    with pyarrow, which the ``table`` extra installs). Required by ``npz``, ``image_folder``
    and ``table``; a relative path is read from the current folder."""
    target: str | None = None
    """The column of a ``table`` that children predict; every other column is a feature.
    Required by ``table``."""
    kind: Literal["auto", "classification", "regression"] = "auto"
    """What the targets of an ``npz`` or a ``table`` are. ``auto``: text, booleans and
    integers with at most ``max_classes`` distinct values are classes; other numbers (a
    fraction among them, or more distinct integers) are regressed. The reading is logged.
    The built-in data sets are classification."""
    input_kind: Literal["auto", "image", "sequence", "flat"] = "auto"
    """How one example is read. ``auto``: 2-D ``x`` (N, F) is flat, 4-D (N, H, W, C) an
    image, 3-D (N, L, C) a sequence when C <= 4 (channels); a 3-D ``x`` whose last axis is
    longer, such as (N, 28, 28), is refused as ambiguous: say ``image`` (grayscale images,
    a channel axis is added) or ``sequence`` (L steps of C features). Given explicitly:
    ``flat`` flattens every example, ``sequence`` adds a channel axis to (N, L), ``image``
    to (N, H, W). Tables are flat. The reading is logged."""
    mirror: bool | None = None
    """Whether a horizontal mirror image keeps the label (photos, clothes; not digits or
    text): image augmentation flips only then. ``null``: the data set's own answer (true
    for fashion_mnist and cifar10, false for digits, mnist, an npz and an image folder)."""
    dataset: Annotated[str, OneOf(NB201_DATASETS)] = "cifar10"
    """NAS-Bench-201 column for ``nb201``: cifar10, cifar100 or imagenet16_120."""
    validation_fraction: Annotated[float, Range(gt=0, lt=0.5)] = 0.15
    """Share of the data held out for validation (the reward)."""
    test_fraction: Annotated[float, Range(gt=0, lt=0.5)] = 0.15
    """Share held out for the test split when the data set has none of its own."""
    train_subset: Annotated[int | None, Range(ge=10)] = None
    """Train children on this many training examples only (stratified for classes,
    random for regression); ``None``: all."""
    image_size: Annotated[tuple[int, int] | None, Range(ge=8, le=4096)] = None
    """Height and width the images of an ``image_folder`` are resized to. ``null``: their
    own size when all images share it, else 64x64 (the size is logged)."""
    max_classes: Annotated[int, Range(ge=2, le=1000)] = 100
    """``kind: auto``: integer targets with more distinct values than this are regressed."""
    max_categories: Annotated[int, Range(ge=2, le=10000)] = 100
    """Most categories (seen in the training split) a non-numeric column of a ``table`` may
    have; a column with more is refused (raise it for a column you mean to embed)."""
    categorical: Literal["auto", "onehot", "embedding"] = "auto"
    """How a ``table``'s non-numeric columns reach the children. ``onehot``: one feature per
    training category. ``embedding``: the category's integer code, which the child maps to
    a learnt vector with Keras preprocessing layers (``Discretization`` and ``Embedding``,
    part of the saved model). ``auto``: one-hot up to ``onehot_max`` categories, embedded
    above."""
    onehot_max: Annotated[int, Range(ge=1, le=10000)] = 10
    """``categorical: auto``: a column with at most this many training categories is one-hot
    encoded, one with more is embedded."""
    split_seed: Annotated[int, SEED_RANGE] = 0
    """Seed of the splits (stratified for classes, random for regression; fixed, so that
    runs are comparable)."""

    def __post_init__(self) -> None:
        check_fields(self)
        require(
            self.name not in USER_FILES or bool(self.path),
            "path",
            self.path,
            f"a file or folder for task {self.name!r}",
        )
        require(
            self.name != "table" or bool(self.target),
            "target",
            self.target,
            "the name of the column to predict for task 'table'",
        )
        builtin = self.name not in ("npz", "table")
        require(
            not builtin or self.kind in ("auto", "classification"),
            "kind",
            self.kind,
            f"auto or classification for task {self.name!r} (its labels are classes)",
        )
