"""Settings of child training, read by the Keras child evaluator (a light module: no Keras)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Literal

from rlnas.errors import require
from rlnas.evaluators.latency import LatencyConfig
from rlnas.rules import OneOf, Range, check_fields


@dataclass(frozen=True)
class ChildConfig:
    """How each child is trained (its learning rate, batch size etc. are decisions)."""

    epochs: Annotated[int, Range(ge=1)] = 1
    """Training epochs per child."""
    steps_per_epoch: Annotated[int | None, Range(ge=1)] = None
    """Cap on the batches per epoch (a step budget); ``None``: the whole training set."""
    metric: Annotated[str, OneOf(("val_accuracy", "val_loss"))] = "val_accuracy"
    """Reward: ``val_accuracy`` or ``val_loss`` (rewarded as its negative)."""
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
    latency: LatencyConfig = field(default_factory=LatencyConfig)
    """How ``latency_ms`` is measured when ``search.objectives`` names ``latency`` (batch 1,
    median of ``runs`` after ``warmup``; :mod:`rlnas.evaluators.latency`)."""

    def __post_init__(self) -> None:
        check_fields(self)
        require(
            self.target_mmacs is None or self.metric == "val_accuracy",
            "metric",
            self.metric,
            "val_accuracy when target_mmacs is set (the cost factor scales an accuracy)",
        )
