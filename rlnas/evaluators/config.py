"""Settings of child training, read by the Keras child evaluator (a light module: no Keras).

The reward is a validation metric (``child.metric``): ``val_`` and a metric name Keras
knows. :data:`METRICS` lists the names rlnas knows the direction and the task of; another
name Keras resolves (``keras.metrics.get``) is accepted with ``child.metric_mode`` given,
and checked against Keras before any child trains (:func:`check_metric`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Literal

from rlnas.errors import ConfigError, FieldError, did_you_mean, require
from rlnas.evaluators.latency import LatencyConfig
from rlnas.rules import Range, check_fields

METRICS: dict[str, tuple[str, str]] = {
    "loss": ("min", "any"),
    "accuracy": ("max", "classification"),
    "auc": ("max", "classification"),
    "precision": ("max", "classification"),
    "recall": ("max", "classification"),
    "mae": ("min", "regression"),
    "mse": ("min", "regression"),
    "rmse": ("min", "regression"),
    "mape": ("min", "regression"),
    "msle": ("min", "regression"),
    "r2_score": ("max", "regression"),
}
"""Metric name -> (direction, task it fits). ``auc``, ``precision`` and ``recall`` of a
classifier are micro-averaged over one-hot targets (children then train on one-hot labels)."""


@dataclass(frozen=True)
class ChildConfig:
    """How each child is trained (its learning rate, batch size etc. are decisions)."""

    epochs: Annotated[int, Range(ge=1)] = 1
    """Training epochs per child."""
    steps_per_epoch: Annotated[int | None, Range(ge=1)] = None
    """Cap on the batches per epoch (a step budget); ``None``: the whole training set."""
    metric: str = "auto"
    """Reward: a validation metric, ``val_`` and a name Keras knows: ``val_loss`` (any
    task), ``val_accuracy``, ``val_auc``, ``val_precision``, ``val_recall``
    (classification), ``val_mae``, ``val_mse``, ``val_rmse``, ``val_mape``, ``val_msle``,
    ``val_r2_score`` (regression). A metric to minimise is rewarded as its negative
    (``val_loss`` earns ``-val_loss``). ``auto``: ``val_accuracy`` for classification,
    ``val_loss`` for regression. A metric that does not fit the task, or that Keras does
    not know, stops the command before any child trains."""
    metric_mode: Literal["auto", "max", "min"] = "auto"
    """Whether a larger (``max``) or a smaller (``min``) metric is better; ``auto``: known
    for the names above, required (max or min) for any other metric Keras knows."""
    target_mmacs: Annotated[
        float | None, Range(gt=0, unit="MMACs", note="millions of multiply-adds per example")
    ] = None
    """Soft compute target in millions of multiply-adds per example (MnasNet's soft
    constraint, Tan et al. 2019): a child above it is rewarded ``val_accuracy x
    (mmacs / target_mmacs) ** cost_exponent``; ``None``: accuracy alone."""
    cost_exponent: Annotated[float, Range(ge=-1, lt=0, note="MnasNet uses -0.07")] = -0.07
    """How hard the target bites: -0.07 (MnasNet's value) costs a child twice the target
    about 5% of its reward; -1 is nearly a hard limit."""
    validate: Literal["last", "every_epoch"] = "last"
    """When a child is validated: after its ``last`` epoch only (the reward needs no more),
    or after ``every_epoch`` for validation curves in MLflow (one pass over the validation
    split per epoch more)."""
    mixed_precision: bool = False
    """Train children in mixed precision (Keras's ``mixed_float16`` policy: float16 compute,
    float32 weights and output layer); faster on GPUs with tensor cores, not on CPUs."""
    train: str | None = None
    """Your own training loop: the import path ``package.module:function`` of
    ``train(model, data, decisions) -> float``, which replaces fit and validation; the float
    it returns is the reward. ``None``: rlnas trains the child."""
    keep_weights: bool = False
    """Keep the trained weights of each child that is the best so far (in its MLflow run,
    ``weights.weights.h5``), so the best model comes back trained without a retrain."""
    latency: LatencyConfig = field(default_factory=LatencyConfig)
    """How ``latency_ms`` is measured when ``search.objectives`` names ``latency`` (batch 1,
    median of ``runs`` after ``warmup``; :mod:`rlnas.evaluators.latency`)."""

    def __post_init__(self) -> None:
        check_fields(self)
        name = self.metric.removeprefix("val_")
        require(
            self.metric == "auto" or (self.metric.startswith("val_") and name.isidentifier()),
            "metric",
            self.metric,
            "a validation metric: val_ and a metric name, such as val_accuracy or val_loss",
            did_you_mean(f"val_{self.metric}", [f"val_{m}" for m in METRICS]),
        )
        require(
            name in METRICS or self.metric == "auto" or self.metric_mode != "auto",
            "metric_mode",
            self.metric_mode,
            f"max or min for metric {self.metric!r} (rlnas knows the direction of "
            + ", ".join(f"val_{m}" for m in METRICS)
            + ")",
            did_you_mean(self.metric, [f"val_{m}" for m in METRICS]),
        )
        require(
            self.target_mmacs is None or self.metric in ("auto", "val_accuracy"),
            "metric",
            self.metric,
            "val_accuracy when target_mmacs is set (the cost factor scales an accuracy)",
        )

    @property
    def metric_name(self) -> str:
        """The metric without its ``val_`` prefix (``accuracy``, ``mae``, ``loss``); call
        it on a config resolved by :func:`reward_metric`."""
        return self.metric.removeprefix("val_")

    @property
    def maximise(self) -> bool:
        """True when a larger metric is better (the reward is the metric, not its negative);
        call it on a config resolved by :func:`reward_metric`."""
        if self.metric_mode != "auto":
            return self.metric_mode == "max"
        return METRICS[self.metric_name][0] == "max"


def reward_metric(child: ChildConfig, task: str) -> ChildConfig:
    """``child`` with its metric resolved for a task of kind ``task``: ``auto`` becomes
    ``val_accuracy`` (classification) or ``val_loss`` (regression)."""
    if child.metric != "auto":
        return child
    from dataclasses import replace

    return replace(child, metric="val_accuracy" if task == "classification" else "val_loss")


def check_metric(child: ChildConfig, task: str) -> None:
    """Raise :class:`ConfigError` unless ``child.metric`` fits a task of kind ``task``
    (``classification`` or ``regression``) and, for a name outside :data:`METRICS`, Keras
    knows it (this imports Keras)."""
    if child.target_mmacs is not None and task != "classification":
        raise FieldError(
            "child.target_mmacs",
            child.target_mmacs,
            f"null for a {task} (the cost factor scales an accuracy)",
        )
    child = reward_metric(child, task)
    name = child.metric_name
    if name in METRICS:
        fits = METRICS[name][1]
        if fits not in ("any", task):
            fitting = [f"val_{m}" for m, (_, t) in METRICS.items() if t in ("any", task)]
            raise FieldError(
                "child.metric",
                child.metric,
                f"a {task} metric: " + ", ".join(fitting),
                f" ({child.metric} needs a {fits} task.)",
            )
        return
    import keras

    try:
        keras.metrics.get(name)
    except (ValueError, TypeError):
        raise ConfigError(
            f"`child.metric`: {child.metric!r} names no metric Keras knows ({name!r}); "
            "expected val_ and a Keras metric name, such as "
            + ", ".join(f"val_{m}" for m in METRICS)
            + "."
            + did_you_mean(child.metric, [f"val_{m}" for m in METRICS])
        ) from None
