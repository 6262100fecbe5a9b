"""The training decisions every Keras space shares: ``train/learning_rate`` ... ``train/augment``.

The `layers` and `nasnet` spaces search how a child is trained as well as its network. Both
declare the same six decisions, by the same names and in the same order, through
:func:`declare_training`, so a child of either space is compiled and augmented the same way
(:func:`rlnas.keras_build.compile_model`)::

    def declare(self, d):
        ...
        training = declare_training(d, self.cfg)  # cfg lists the values of each decision
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from rlnas.rules import OneOf, Range
from rlnas.space import Decider

OPTIMIZERS = ("adam", "sgd", "rmsprop", "adamw")
"""Optimizers a child may be trained with (see :func:`rlnas.keras_build.make_optimizer`)."""
AUGMENTATIONS = ("none", "light", "strong")
"""Data augmentation strengths (the family depends on the input kind)."""


@dataclass(frozen=True)
class TrainingSpec:
    """How a child is trained (its share of the decisions)."""

    learning_rate: float = 1e-3
    batch_size: int = 32
    optimizer: str = "adam"
    dropout: float = 0.0
    weight_decay: float = 0.0
    augment: str = "none"


@dataclass(frozen=True)
class TrainingChoices:
    """The values each training decision may take: the last fields of a Keras space's config.

    A space's config inherits them after its own fields, as ``class LayersConfig(
    TrainingChoices, _LayersNetwork)``: a dataclass lists the fields of its bases from the last
    base to the first, so these six come last (as in the config reference) and are written,
    checked and documented once for every space."""

    learning_rates: Annotated[tuple[float, ...], Range(gt=0)] = (3e-4, 1e-3, 3e-3)
    batch_sizes: Annotated[tuple[int, ...], Range(ge=1, le=65536)] = (32, 64, 128)
    optimizers: Annotated[tuple[str, ...], OneOf(OPTIMIZERS)] = ("adam", "rmsprop", "sgd")
    dropouts: Annotated[tuple[float, ...], Range(ge=0, lt=1)] = (0.0, 0.2, 0.4)
    weight_decays: Annotated[tuple[float, ...], Range(ge=0)] = (0.0, 1e-4, 1e-3)
    augmentations: Annotated[tuple[str, ...], OneOf(AUGMENTATIONS)] = AUGMENTATIONS
    """Data augmentation strength (the family depends on the input kind: random flips where
    the task allows, shifts, rotations)."""


def declare_training(d: Decider, choices: TrainingChoices) -> TrainingSpec:
    """Declare the six ``train/*`` decisions with ``d`` and return the child's training."""
    return TrainingSpec(
        learning_rate=float(d.choice("train/learning_rate", choices.learning_rates)),
        batch_size=int(d.choice("train/batch_size", choices.batch_sizes)),
        optimizer=str(d.choice("train/optimizer", choices.optimizers)),
        dropout=float(d.choice("train/dropout", choices.dropouts)),
        weight_decay=float(d.choice("train/weight_decay", choices.weight_decays)),
        augment=str(d.choice("train/augment", choices.augmentations)),
    )
