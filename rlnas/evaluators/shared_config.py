"""The ``shared`` config section: weight sharing (ENAS, Pham et al. 2018). No TensorFlow here.

With ``shared.enabled: true`` every child is a path through one super-network
(:mod:`rlnas.keras_build.supernet` for the `layers` space,
:mod:`rlnas.keras_build.nasnet_supernet` for `nasnet`) whose weights all children share.
Evaluating a child trains the shared weights for ``train_steps`` mini-batches on that
child's path, then rewards it with its accuracy on ``eval_batches`` validation mini-batches
(:class:`rlnas.evaluators.shared.SharedEvaluator`). The strategy asks children from its
current policy, so the shared weights train on samples of the current policy, as in ENAS.

ENAS's schedule (Pham et al. 2018, Sec. 2.2 and 3): each epoch alternates one pass of the
training data over the shared weights (one child sampled per mini-batch) with controller
training rewarded on validation mini-batches (the paper: 2,000 controller steps; the
authors' macro-search script, ``scripts/cifar10_macro_search.sh``: 50 steps of 20 children,
1,000 rewards per epoch, for 310 epochs); the shared weights are trained with Nesterov
momentum 0.9, a cosine learning rate from 0.05 (down to 0.001 in the paper, 0.0005 in the
script), L2 weight decay 1e-4 (script: 2.5e-4), gradients clipped to norm 5, batch 128.
Here ``train_steps`` shared steps precede each reward (one pass of CIFAR-10 at batch 128 is
about 350 steps per 1,000 rewards in the script: 0.35 per reward), and ``warmup_steps``
trains uniformly sampled paths before the first child. The learning rate is constant by
default; ``lr_schedule: cosine`` follows ENAS's cosine schedule with warm restarts
(Loshchilov & Hutter 2017, SGDR): from ``learning_rate`` down to ``lr_min`` over
``lr_period`` shared steps, then again over a period ``lr_period_mult`` times longer, and so
on (the script: 0.05 to 0.0005, a first period of 10 epochs, each next one twice as long;
10 epochs of CIFAR-10 at batch 128 are about 3,500 steps).

The ``train/*`` decisions (learning rate, batch size, optimizer, ...) cannot share weights:
the shared phase gives each the first value of its list (:func:`shared_phase`). When a
list has several values, ``retrain_trials`` > 1 searches them when the best children are
retrained: each retrained architecture is trained with the shared phase's values and with
``retrain_trials - 1`` other settings (:func:`rlnas.shared_search.with_training`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from rlnas.errors import FieldError, require, require_one_of

SCHEDULES = ("constant", "cosine")
"""Learning-rate schedules of the shared weights."""
SPACES = ("layers", "nasnet")
"""Spaces the super-network supports."""
TRAINING_LISTS = (
    "learning_rates",
    "batch_sizes",
    "optimizers",
    "dropouts",
    "weight_decays",
    "augmentations",
)
"""The ``train/*`` decisions' choice lists: cut to their first value in the shared phase."""


@dataclass(frozen=True)
class SharedConfig:
    """Weight sharing: one super-network trained a few mini-batches per child."""

    enabled: bool = False
    """Reward children with shared weights instead of training each one alone."""
    train_steps: int = 2
    """Shared-weight training mini-batches on each child's path before it is rewarded."""
    eval_batches: int = 1
    """Validation mini-batches each child is rewarded on (ENAS: one)."""
    batch_size: int = 64
    """Mini-batch size of shared training and of the reward's validation batches."""
    learning_rate: float = 0.05
    """Learning rate of the shared weights (SGD with Nesterov momentum; ENAS: 0.05)."""
    momentum: float = 0.9
    """Nesterov momentum of the shared weights' SGD (ENAS: 0.9)."""
    weight_decay: float = 1e-4
    """L2 penalty ``wd/2 * |w|^2`` on the shared kernels (ENAS: 1e-4)."""
    grad_clip: float = 5.0
    """Global gradient norm the shared gradients are clipped to (ENAS: 5)."""
    lr_schedule: str = "constant"
    """``constant`` (``learning_rate`` throughout) or ``cosine``: cosine decay from
    ``learning_rate`` to ``lr_min`` with warm restarts, counted in shared steps (warm-up
    included; ENAS: cosine)."""
    lr_min: float = 0.0005
    """Lowest learning rate of the cosine schedule (ENAS: 0.001 in the paper, 0.0005 in
    the authors' scripts)."""
    lr_period: int = 3500
    """Shared steps of the cosine schedule's first period (ENAS: 10 epochs, about 3,500
    steps of CIFAR-10 at batch 128)."""
    lr_period_mult: float = 2.0
    """Each next period is this many times longer than the one before (ENAS: 2)."""
    warmup_steps: int = 0
    """Shared-weight steps on uniformly sampled paths before the first child."""
    checkpoint_every: int = 100
    """Children between saves of the shared weights (atomic; a resume restores them)."""
    rescore_top: int = 20
    """Best children by shared reward re-scored on the whole validation split at the end."""
    retrain_top: int = 3
    """Best re-scored children trained from scratch as ordinary children."""
    retrain_trials: int = 1
    """Training settings tried per retrained child: the shared phase's (the first value of
    each ``train/*`` list), then ``retrain_trials - 1`` other settings drawn (seeded) from the
    ``train/*`` lists, each an ordinary child. Above 1 only when a list has several values."""

    def __post_init__(self) -> None:
        for name in (
            "train_steps",
            "eval_batches",
            "batch_size",
            "checkpoint_every",
            "retrain_trials",
        ):
            v = getattr(self, name)
            require(v >= 1, name, v, "an integer >= 1")
        for name in ("warmup_steps", "rescore_top", "retrain_top"):
            v = getattr(self, name)
            require(v >= 0, name, v, "an integer >= 0")
        require(self.learning_rate > 0, "learning_rate", self.learning_rate, "a number > 0")
        require(0 <= self.momentum < 1, "momentum", self.momentum, "a number in [0, 1)")
        require(self.weight_decay >= 0, "weight_decay", self.weight_decay, "a number >= 0")
        require(self.grad_clip > 0, "grad_clip", self.grad_clip, "a number > 0")
        require_one_of("lr_schedule", self.lr_schedule, SCHEDULES)
        require(self.lr_period >= 1, "lr_period", self.lr_period, "an integer >= 1")
        require(self.lr_period_mult >= 1, "lr_period_mult", self.lr_period_mult, "a number >= 1")
        require(self.lr_min >= 0, "lr_min", self.lr_min, "a number >= 0")
        require(
            self.lr_schedule == "constant" or self.lr_min < self.learning_rate,
            "lr_min",
            self.lr_min,
            f"below learning_rate ({self.learning_rate}) with lr_schedule: cosine",
        )
        require(
            self.retrain_top <= self.rescore_top,
            "retrain_top",
            self.retrain_top,
            f"at most rescore_top ({self.rescore_top}): only re-scored children are retrained",
        )
        require(
            self.retrain_trials == 1 or self.retrain_top >= 1,
            "retrain_trials",
            self.retrain_trials,
            "1 with retrain_top 0 (no child is retrained, so no training setting is tried)",
        )

    def learning_rate_at(self, step: int) -> float:
        """The shared weights' learning rate at shared step ``step`` (from 0)."""
        if self.lr_schedule == "constant":
            return self.learning_rate
        period, t = float(self.lr_period), float(step)
        while t >= period:  # the restarts before this step
            t, period = t - period, period * self.lr_period_mult
        cosine = 0.5 * (1.0 + math.cos(math.pi * t / period))
        return self.lr_min + (self.learning_rate - self.lr_min) * cosine


def check_shared(config: Any) -> None:
    """The pairings shared mode refuses, one line each (``config`` is the root Config)."""
    if not config.shared.enabled:
        return
    space = config.space
    if space not in SPACES:
        raise FieldError(
            "space", space, f"{' or '.join(SPACES)} with shared.enabled (no super-network for it)"
        )
    if config.executor.kind != "inline":
        raise FieldError(
            "executor.kind",
            config.executor.kind,
            "inline with shared.enabled (the shared weights live in one process)",
        )
    check_retraining(getattr(config, space), space, config.shared.retrain_trials)
    if space == "layers":
        check_network(config.layers)


def check_retraining(choices: Any, section: str, trials: int) -> None:
    """Several values in a ``train/*`` list only when the retraining searches them
    (``trials``: ``shared.retrain_trials``), and no more trials than settings to try
    (``choices``: the ``section`` space's config)."""
    if trials == 1:
        check_training(
            choices,
            section,
            "with shared.enabled",
            " To search several, set shared.retrain_trials > 1: the shared phase uses the "
            "first value, the retraining of the best children tries the others.",
        )
        return
    settings = math.prod(len(getattr(choices, name)) for name in TRAINING_LISTS)
    require(
        settings > 1,
        "shared.retrain_trials",
        trials,
        f"1 when every train/* list of `{section}` has one value (no training setting to search)",
    )
    require(
        trials <= settings,
        "shared.retrain_trials",
        trials,
        f"at most {settings}, the training settings the train/* lists of `{section}` make",
    )


def shared_phase(config: Any) -> Any:
    """``config`` (the root Config) as the shared phase searches it: every ``train/*`` list of
    its space's section cut to its first value (the retraining searches the whole lists), so
    ``shared.retrain_trials`` 1."""
    section = config.space
    choices = getattr(config, section)
    first = {name: tuple(getattr(choices, name))[:1] for name in TRAINING_LISTS}
    return dataclasses.replace(
        config,
        **{section: dataclasses.replace(choices, **first)},
        shared=dataclasses.replace(config.shared, retrain_trials=1),
    )


def check_training(
    choices: Any, section: str, where: str = "in the shared phase", hint: str = ""
) -> None:
    """One value per ``train/*`` decision, as a super-network needs (``choices``: the
    ``section`` space's config, the shared phase's: :func:`shared_phase`); ``hint`` ends
    the message."""
    for name in TRAINING_LISTS:
        values = list(getattr(choices, name))
        require(
            len(values) == 1,
            f"{section}.{name}",
            values,
            f"one value {where} (train/* decisions cannot share weights)",
            hint,
        )


def check_layers(layers: Any) -> None:
    """The `layers` choices one super-network can hold (``layers`` is a LayersConfig)."""
    check_training(layers, "layers")
    check_network(layers)


def check_network(layers: Any) -> None:
    """The `layers` network choices one super-network can hold."""
    require(
        list(layers.strides) == [1],
        "layers.strides",
        list(layers.strides),
        "[1] with shared.enabled (downsample with layers.reduce_after instead)",
    )
    require(
        list(layers.merges) == ["add"],
        "layers.merges",
        list(layers.merges),
        "[add] with shared.enabled (concat changes the widths a super-network holds)",
    )
