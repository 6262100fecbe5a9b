"""The output layer of every child and what it is compiled with, per task.

* **Classification:** ``Dense(num_classes, softmax)`` named ``classifier``, trained with
  sparse categorical cross-entropy on integer labels, reporting ``accuracy``. A reward metric
  that needs one-hot targets (``auc``, ``precision``, ``recall``: micro-averaged over the
  classes) switches the loss to categorical cross-entropy on one-hot labels
  (:func:`targets_for`).
* **Regression:** a linear ``Dense(T)`` named ``regressor`` followed by a fixed
  ``Normalization(invert=True)`` with the training targets' mean and variance, so that the
  model predicts in the targets' own units while its weights work at unit scale. The loss is
  the mean squared error weighted by ``1 / variance`` (``loss_weights``): ``loss`` and
  ``val_loss`` read as the share of the variance left unexplained (1.0: predicting the mean),
  and the gradients are those of standardised targets, whatever the targets' scale. Metrics
  ``mae`` and ``mse`` are in the targets' units.

Both are float32 under a mixed-precision policy too (float16 probabilities round small ones
to zero in the loss) and use built-in layers only (safe-mode loading).
"""

from __future__ import annotations

import keras
import numpy as np

from rlnas.tasks import TaskSpec

ONE_HOT_METRICS = ("auc", "precision", "recall")
"""Classification metrics Keras computes on one-hot targets only."""
_OBJECTS = {
    "auc": lambda: keras.metrics.AUC(name="auc"),
    "precision": lambda: keras.metrics.Precision(name="precision"),
    "recall": lambda: keras.metrics.Recall(name="recall"),
    "rmse": lambda: keras.metrics.RootMeanSquaredError(name="rmse"),
    "r2_score": lambda: keras.metrics.R2Score(name="r2_score"),
}


def head(x, spec: TaskSpec, regularizer):
    """The output of a child whose last hidden tensor is ``x``."""
    if spec.task != "regression":
        return classifier(spec.num_classes, regularizer)(x)
    out = keras.layers.Dense(
        spec.outputs, kernel_regularizer=regularizer, dtype="float32", name="regressor"
    )(x)
    return keras.layers.Normalization(
        mean=list(spec.target_mean),
        variance=[s * s for s in spec.target_std],
        invert=True,
        dtype="float32",
        name="regressor_scale",
    )(out)


def classifier(num_classes: int, regularizer) -> keras.layers.Dense:
    """The softmax output layer of a classifier, float32 under mixed precision."""
    return keras.layers.Dense(
        num_classes,
        activation="softmax",
        kernel_regularizer=regularizer,
        dtype="float32",
        name="classifier",
    )


def metric_names(spec: TaskSpec | None, metric: str = "loss") -> list[str]:
    """The metrics a child reports besides its loss: the task's own and the reward's."""
    base = ["mae", "mse"] if spec is not None and spec.task == "regression" else ["accuracy"]
    return base + ([metric] if metric not in base and metric != "loss" else [])


def loss_and_metrics(spec: TaskSpec | None, metric: str, label_smoothing: float) -> dict:
    """``model.compile`` keywords (loss, loss_weights, metrics) of a task and its reward."""
    metrics = [_OBJECTS[m]() if m in _OBJECTS else m for m in metric_names(spec, metric)]
    if spec is not None and spec.task == "regression":
        weight = 1.0 / float(np.mean(np.square(spec.target_std)))
        return {"loss": "mse", "loss_weights": weight, "metrics": metrics}
    if label_smoothing or metric in ONE_HOT_METRICS:
        loss = keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing)
        return {"loss": loss, "metrics": metrics}
    return {"loss": "sparse_categorical_crossentropy", "metrics": metrics}


def targets_for(y: np.ndarray, spec: TaskSpec, metric: str) -> np.ndarray:
    """``y`` as the compiled loss wants it: one-hot for :data:`ONE_HOT_METRICS`."""
    if spec.task == "classification" and metric in ONE_HOT_METRICS:
        return keras.utils.to_categorical(y, spec.num_classes).astype(np.float32)
    return y
