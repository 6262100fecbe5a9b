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
from typing import Protocol

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


class TrainingChoices(Protocol):
    """The values each training decision may take (fields of a space's config)."""

    learning_rates: tuple[float, ...]
    batch_sizes: tuple[int, ...]
    optimizers: tuple[str, ...]
    dropouts: tuple[float, ...]
    weight_decays: tuple[float, ...]
    augmentations: tuple[str, ...]


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
