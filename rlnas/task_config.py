"""Settings of the task: which data set children train on and how it is split.

A light module (no NumPy, no framework) so that :mod:`rlnas.config` and the data readers
can both import it; :func:`rlnas.tasks.load_task` reads a :class:`TaskConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

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
    "nb201",
)
NB201_DATASETS = ("cifar10", "cifar100", "imagenet16_120")

SEED_RANGE = Range(ge=0, lt=2**32)
"""Seeds are what NumPy's legacy seeding takes: 0 <= seed < 2**32."""


@dataclass(frozen=True)
class TaskConfig:
    """The data set children are trained and validated on."""

    name: Annotated[str, OneOf(TASKS)] = "digits"
    """One of: digits, mnist1d, fashion_mnist, mnist, cifar10, npz, image_folder, nb201."""
    path: str | None = None
    """The ``.npz`` file (arrays ``x``, ``y``; optional ``x_test``, ``y_test``) or the image
    folder (one sub-folder per class). Required by ``npz`` and ``image_folder``."""
    dataset: Annotated[str, OneOf(NB201_DATASETS)] = "cifar10"
    """NAS-Bench-201 column for ``nb201``: cifar10, cifar100 or imagenet16_120."""
    validation_fraction: Annotated[float, Range(gt=0, lt=0.5)] = 0.15
    """Share of the data held out for validation (the reward)."""
    test_fraction: Annotated[float, Range(gt=0, lt=0.5)] = 0.15
    """Share held out for the test split when the data set has none of its own."""
    train_subset: Annotated[int | None, Range(ge=10)] = None
    """Train children on this many training examples only (stratified); ``None``: all."""
    image_size: Annotated[tuple[int, int], Range(ge=8, le=4096)] = (64, 64)
    """Height and width images of an ``image_folder`` are resized to."""
    split_seed: Annotated[int, SEED_RANGE] = 0
    """Seed of the stratified splits (fixed, so that runs are comparable)."""

    def __post_init__(self) -> None:
        check_fields(self)
        require(
            self.name not in ("npz", "image_folder") or bool(self.path),
            "path",
            self.path,
            f"a file or folder for task {self.name!r}",
        )
