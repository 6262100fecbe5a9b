"""Settings of ``rlnas final`` (:mod:`rlnas.final`): retraining and testing the best
architectures of a search. A light module: it imports neither NumPy nor Keras."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from rlnas.errors import require
from rlnas.rules import NonEmpty, OneOf, Range, check_fields
from rlnas.spaces.training import AUGMENTATIONS, OPTIMIZERS


@dataclass(frozen=True)
class FinalConfig:
    """How ``rlnas final`` retrains the best architectures of a search and tests them."""

    top_k: Annotated[int, Range(ge=1, le=20)] = 3
    """Best distinct architectures of the search (by reward) retrained from scratch."""
    epochs: Annotated[int, Range(ge=1)] = 30
    """Training epochs of each final model (children train for ``child.epochs`` only)."""
    schedule: Literal["cosine", "constant"] = "cosine"
    """Learning rate over the final epochs: ``cosine`` decays the child's learning rate to 0
    (Loshchilov & Hutter 2017), ``constant`` keeps it."""
    budget_seconds: Annotated[float | None, Range(gt=0, unit="seconds")] = None
    """Wall-clock seconds for each final model's training: after every epoch the epochs are
    planned again, to what fits at the mean epoch time so far (down when the machine slows,
    up again when it recovers, never more than ``epochs``), and the cosine schedule decays
    over the budget (the larger of the fractions of epochs and of seconds used); ``None``:
    always ``epochs``."""
    train_subset: Annotated[int | None, Range(ge=10)] = None
    """Train final models on this many examples (stratified); ``None``: all of them (the
    search's ``task.train_subset`` does not apply to final training)."""
    augment: Annotated[str | None, OneOf(AUGMENTATIONS)] = None
    """Data augmentation of final training (none, light, strong); ``None``: each child's own
    ``train/augment``. A few epochs of a child rarely reward augmentation, long training does."""
    optimizer: Annotated[str | None, OneOf(OPTIMIZERS)] = None
    """Optimizer of final training (adam, sgd: Nesterov momentum 0.9, rmsprop, adamw);
    ``None``: each child's own ``train/optimizer``. The search picks what learns fastest in
    a child's few epochs; the papers' final trainings (NASNet, ENAS, DARTS) used SGD with
    momentum and a cosine schedule whatever they searched with."""
    learning_rate: Annotated[float | None, Range(gt=0)] = None
    """Peak learning rate of final training (the cosine schedule decays it); ``None``: each
    child's own ``train/learning_rate``. Set it with ``optimizer``: a rate that suits Adam
    (about 1e-3) is far too small for SGD (about 0.05)."""
    weight_decay: Annotated[float | None, Range(ge=0)] = None
    """Weight decay of final training (decoupled for adamw, an L2 penalty otherwise, as in
    the search); ``None``: each child's own ``train/weight_decay``."""
    width_multiplier: Annotated[float, Range(gt=0, le=16, note="1: as searched")] = 1.0
    """Train final models with this many times the searched filters in every layer
    (``layers``: each conv and sepconv layer's, rounded; ``nasnet``: the stem's and the
    cells'): searched small, trained wide, as NASNet and ENAS trained theirs. Time per epoch
    grows about as the square of the factor, so within ``budget_seconds`` fewer epochs run."""
    label_smoothing: Annotated[float, Range(ge=0, lt=1, note="0: the plain labels")] = 0.0
    """Train final models against targets that give this much of the probability mass to the
    other classes, evenly (Szegedy et al. 2016; NASNet's final training used 0.1); 0: the
    plain labels. The saved model is compiled with the plain loss either way."""
    test_time_flip: bool = False
    """Make each final model average its class probabilities over the image and its
    horizontal mirror (test-time augmentation; the saved, exported and registered model does
    it, in one graph that loads in safe mode). Only for image tasks whose mirror images keep
    the label (the task's ``flip``: clothes, photos; not digits) and best with augmentation
    that flips."""
    test_time_shift: Annotated[
        int, Range(ge=0, le=8, unit="pixels", note="0: no shifted views")
    ] = 0
    """Pixels: also average over the image (and, with ``test_time_flip``, its mirror) shifted
    by this many pixels up, down, left and right, the edge repeated into the gap (5 or 10
    views in all; 0: none). Images only; best with augmentation that shifts, such as
    ``light``. Prediction costs as many forward passes as there are views."""
    ensemble: bool = False
    """Also evaluate one Keras model averaging the top-k final models."""
    weighted: bool = False
    """Weight the ensemble's members by weights fitted on the validation split. The members
    then train on the training split only (the weights need examples they never saw);
    unweighted final models train on training + validation."""
    register: bool = True
    """Register each final model (and the ensemble) in the MLflow Model Registry."""
    model_name: Annotated[str | None, NonEmpty("name")] = None
    """Registered model name; ``None``: ``rlnas-<task>-<space>`` (``-ensemble`` appended for
    the ensemble)."""

    def __post_init__(self) -> None:
        check_fields(self)
        require(
            not self.ensemble or self.top_k >= 2,
            "top_k",
            self.top_k,
            "at least 2 for an ensemble (final.ensemble: true)",
        )
        require(
            self.ensemble or not self.weighted,
            "weighted",
            self.weighted,
            "false unless final.ensemble is true",
        )
