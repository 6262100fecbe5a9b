"""Final training: retrain an architecture from scratch for longer, then test it once.

A search ranks children by a short training on (often a subset of) the training split. The
best architectures are then retrained from scratch on all of training + validation for
``final.epochs`` epochs with the child's own hyperparameters (and a cosine learning-rate
schedule by default), and evaluated once on the test split, which never took part in a
choice::

    data = final_data(task_data, FinalConfig(epochs=30), seed=0)
    model, history = train_final(blueprint, data, epochs=30, schedule="cosine", seed=1)
    report = score(predict(model, data.x_test), data.y_test, data.class_names)
    report.metrics()["test/accuracy"], report.write(folder)

``final.weighted`` ensembles keep the validation split out of training: it fits the
ensemble's weights, which needs examples the members never saw.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rlnas.config import FinalConfig
from rlnas.ensemble import max_shift
from rlnas.entry_points import callable_module
from rlnas.errors import ChildFailure, ConfigError
from rlnas.tasks import TaskData, TaskSpec, stratified_take


@dataclass(eq=False)
class FinalData:
    """What final training sees: a fit split, an optional hold-out, and the test split."""

    x_fit: np.ndarray
    y_fit: np.ndarray
    x_holdout: np.ndarray | None
    """Examples no final model trains on (the validation split, for ensemble weights)."""
    y_holdout: np.ndarray | None
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str]
    spec: TaskSpec
    fit_description: str
    """Which splits the final models train on, for the record."""
    encoding: dict | None = None
    """A table's feature encoding, logged with each final model (``TaskData.encoding``)."""


def check_test_time_views(cfg: FinalConfig, task: str, spec: TaskSpec) -> None:
    """Refuse test-time views that the task's inputs do not allow: ``final.test_time_flip``
    where a mirror image may change the label, ``final.test_time_shift`` on anything but
    images or by half the image or more. Said when the search starts (not hours later, when
    ``rlnas final`` runs) and again by ``rlnas final``, whose ``--set`` may turn them on."""
    if cfg.test_time_flip and not (spec.input_kind == "image" and spec.flip):
        if spec.input_kind == "image":
            kind = "images whose mirror images may be other classes"
        else:
            kind = f"{spec.input_kind} inputs"
        raise ConfigError(
            f"`final.test_time_flip`: expected false for task {task!r} ({kind}); true needs "
            "images whose horizontal mirror keeps the label (clothes, photos)."
        )
    if not cfg.test_time_shift:
        return
    if spec.input_kind != "image":
        raise ConfigError(
            f"`final.test_time_shift`: expected 0 for task {task!r} ({spec.input_kind} "
            f"inputs), got {cfg.test_time_shift}; shifted views need images."
        )
    limit = max_shift(spec.input_shape[0], spec.input_shape[1])
    if cfg.test_time_shift > limit:
        raise ConfigError(
            f"`final.test_time_shift`: expected fewer than {limit + 1} pixels for task "
            f"{task!r} ({spec.input_shape[0]}x{spec.input_shape[1]} images), got "
            f"{cfg.test_time_shift}."
        )


def final_data(data: TaskData, cfg: FinalConfig, seed: int) -> FinalData:
    """The fit split of ``cfg``: training + validation, or training only when weights of a
    weighted ensemble need the validation split; optionally a stratified subset."""
    if cfg.weighted:
        x, y, what = data.x_train, data.y_train, "training split"
        holdout = (data.x_val, data.y_val)
    else:
        x = np.concatenate([data.x_train, data.x_val])
        y = np.concatenate([data.y_train, data.y_val])
        what, holdout = "training + validation splits", (None, None)
    if cfg.train_subset is not None and cfg.train_subset < len(y):
        keep, _ = stratified_take(y, cfg.train_subset, np.random.default_rng(seed))
        x, y = x[keep], y[keep]
        what = f"{cfg.train_subset} examples of the {what}"
    names = data.class_names or [str(i) for i in range(data.num_classes)]
    return FinalData(
        x_fit=x,
        y_fit=y,
        x_holdout=holdout[0],
        y_holdout=holdout[1],
        x_test=data.x_test,
        y_test=data.y_test,
        class_names=list(names),
        spec=data.spec,
        fit_description=f"{what} ({len(y)} examples)",
        encoding=data.encoding,
    )


def final_blueprint(space: Any, decisions: Mapping[str, Any], cfg: FinalConfig) -> Any:
    """The blueprint a final model of ``decisions`` trains: the searched child with final
    training's own augmentation, optimizer, learning rate and weight decay (``final.augment``
    ... ``final.weight_decay``, where set) and width (``final.width_multiplier``)."""
    blueprint = space.blueprint(decisions)
    recipe = {
        name: value
        for name in ("augment", "optimizer", "learning_rate", "weight_decay")
        if (value := getattr(cfg, name)) is not None
    }
    if recipe:
        training = dataclasses.replace(blueprint.training, **recipe)
        blueprint = dataclasses.replace(blueprint, training=training)
    return space.widen(blueprint, cfg.width_multiplier)


# -- training -----------------------------------------------------------------------------
def cosine(base: float, progress: Callable[[int], float]) -> Callable[[int], float]:
    """Learning rate of epoch ``e``: ``base`` decayed towards 0 by a half cosine over the
    training's ``progress(e)`` (0 at the start, 1 at the end)."""
    return lambda e: base * 0.5 * (1 + math.cos(math.pi * min(1.0, progress(e))))


class _EpochBudget:
    """Fits a training into a wall-clock budget (Li et al., ICLR 2020, "Budgeted training":
    decay the learning rate over the budget, not over a fixed epoch count).

    After every epoch the epochs that still fit are planned again from the mean epoch time so
    far (the first, with its tracing, included): down when the machine slows, up again
    (never past ``epochs``) when it recovers, so neither an overrun nor an unused budget
    follows from one slow stretch. The schedule's progress at the start of an epoch is the
    larger of the fraction of ``epochs`` done and the fraction of the budget used, so the
    learning rate only falls, whatever the plan becomes, and is near 0 in the last epoch."""

    def __init__(self, epochs: int, seconds: float | None) -> None:
        self.limit = epochs
        self.epochs = epochs
        """The epochs planned (after every epoch, what fits the budget)."""
        self.seconds = seconds
        self._start = 0.0
        self._used = 0.0  # seconds since the start, at the end of the last epoch

    def progress(self, epoch: int) -> float:
        """Fraction of the training done when ``epoch`` (0-based) starts (the schedule asks
        as it starts, right after the previous epoch ended)."""
        done = epoch / self.limit
        if self.seconds is None or epoch == 0:
            return done
        return max(done, self._used / self.seconds)

    def callback(self):
        import keras  # lazy: keras loads TensorFlow; `rlnas final`'s checks need none

        budget = self

        class _Plan(keras.callbacks.Callback):
            def on_train_begin(self, logs=None):
                budget._start = time.perf_counter()
                budget._used = 0.0

            def on_epoch_end(self, epoch, logs=None):
                used = budget._used = time.perf_counter() - budget._start
                if budget.seconds is not None:
                    mean = max(used, 1e-9) / (epoch + 1)
                    fit = epoch + 1 + int(max(0.0, budget.seconds - used) // mean)
                    # a new plan reaches the caller through on_epoch's ``planned``
                    budget.epochs = max(epoch + 1, min(budget.limit, fit))
                if epoch + 1 >= budget.epochs:
                    self.model.stop_training = True

        return _Plan()


FINAL_CALIBRATION_EXAMPLES = 2048
"""Training examples whose statistics a final model's batch-norm layers keep."""


def train_final(
    blueprint: Any,
    data: FinalData,
    *,
    epochs: int,
    schedule: str,
    seed: int,
    on_epoch: Callable[[int, dict[str, float], int], None] | None = None,
    budget_seconds: float | None = None,
    label_smoothing: float = 0.0,
):
    """Build ``blueprint`` afresh and train it on the fit split; returns the model and its
    per-epoch history. With ``budget_seconds``, the epochs are planned again after each one:
    what fits the budget at the mean epoch time so far, at most ``epochs`` (the history says
    how many ran), and the cosine schedule runs over the budget (see :class:`_EpochBudget`).
    ``on_epoch(epoch, logs, planned)`` hears of every finished epoch, ``planned`` being the
    epochs that will run as now planned. Batch-norm statistics are re-estimated with the
    trained weights at the end. A NaN or infinite loss raises :class:`ChildFailure`
    (``nan_loss``)."""
    # lazy: keras (and the Keras builders) load TensorFlow; `rlnas final`'s checks need none
    import keras

    from rlnas.keras_build import (
        batches,
        build_model,
        calibration_sample,
        compile_model,
        recalibrate_batch_norm,
    )

    keras.utils.set_random_seed(seed)
    training = blueprint.training
    model = build_model(blueprint, data.spec)
    compile_model(model, training, label_smoothing, spec=data.spec)
    targets = data.y_fit
    if label_smoothing:
        targets = keras.utils.to_categorical(data.y_fit, data.spec.num_classes)
    budget = _EpochBudget(epochs, budget_seconds)
    callbacks: list = [keras.callbacks.TerminateOnNaN(), budget.callback()]
    if schedule == "cosine":
        rate = cosine(training.learning_rate, budget.progress)
        callbacks.append(keras.callbacks.LearningRateScheduler(rate))
    if on_epoch is not None:
        callbacks.append(
            keras.callbacks.LambdaCallback(
                on_epoch_end=lambda e, logs: on_epoch(e, dict(logs), budget.epochs)
            )
        )
    feed = batches(data.x_fit, targets, batch_size=training.batch_size, shuffle=True, seed=seed)
    history = model.fit(feed, epochs=epochs, callbacks=callbacks, shuffle=False, verbose=0)
    curves = {k: [float(v) for v in vals] for k, vals in history.history.items()}
    losses = curves.get("loss", [])
    if len(losses) < budget.epochs or not all(math.isfinite(v) for v in losses):
        raise ChildFailure(
            "nan_loss",
            f"final training diverged: the loss became {losses[-1] if losses else 'NaN'} in "
            f"epoch {len(losses)} of {budget.epochs} (optimizer={training.optimizer}, "
            f"learning_rate={training.learning_rate}).",
        )
    # the moving averages mix statistics of weights long gone (all of them after a short
    # training): the statistics of the trained weights replace them, as before validation
    recalibrate_batch_norm(model, calibration_sample(data.x_fit, FINAL_CALIBRATION_EXAMPLES))
    if label_smoothing:  # the plain loss for whoever evaluates the saved model
        compile_model(model, training, spec=data.spec)
    return model, curves


def predict(model, x: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Class probabilities (or regression predictions) of ``model`` on ``x`` (inference
    mode: no augmentation)."""
    from rlnas.keras_build import batches

    probs = model.predict(batches(x, batch_size=batch_size), verbose=0)
    return np.asarray(probs, dtype=np.float64)


def accuracy(probs: np.ndarray, y: np.ndarray) -> float:
    """The fraction of ``y`` that the most probable class of ``probs`` gets right (NaN for
    regression targets, which have no accuracy: see :class:`RegressionReport`)."""
    if y.dtype.kind == "f":
        return math.nan
    return float(np.mean(np.argmax(probs, axis=1) == y))


@dataclass(frozen=True)
class RegressionReport:
    """Test-split figures of a regression, in the targets' units: MAE, MSE, RMSE and R²
    (averaged over the targets). ``accuracy`` and ``macro_f1`` are NaN (no classes)."""

    mae: float
    mse: float
    rmse: float
    r2: float
    examples: int
    accuracy: float = math.nan
    macro_f1: float = math.nan

    def metrics(self, prefix: str = "test/") -> dict[str, float]:
        """Flat MLflow metrics: ``<prefix>mae``, ``mse``, ``rmse``, ``r2``."""
        return {f"{prefix}{k}": getattr(self, k) for k in ("mae", "mse", "rmse", "r2")}

    def write(self, folder: str | Path, title: str = "") -> list[Path]:
        """``test_metrics.json`` in ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "test_metrics.json"
        summary = {**self.metrics(prefix=""), "examples": self.examples}
        path.write_text(json.dumps({"title": title, **summary}, indent=1))
        return [path]


def score_regression(pred: np.ndarray, y: np.ndarray) -> RegressionReport:
    """The :class:`RegressionReport` of predictions ``pred`` for targets ``y`` ((N, T))."""
    pred = np.asarray(pred, dtype=np.float64).reshape(len(y), -1)
    y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
    err = pred - y
    mse = float(np.mean(err**2))
    unexplained = np.sum(err**2, axis=0)
    total = np.sum((y - y.mean(axis=0)) ** 2, axis=0)
    r2 = float(np.mean(1 - unexplained / np.where(total > 0, total, 1.0)))
    return RegressionReport(
        mae=float(np.mean(np.abs(err))), mse=mse, rmse=math.sqrt(mse), r2=r2, examples=len(y)
    )


# -- test metrics -------------------------------------------------------------------------
@dataclass(frozen=True)
class ScoreReport:
    """Test-split figures of one model: accuracy, macro and per-class scores, confusion."""

    accuracy: float
    macro_precision: float
    macro_recall: float
    macro_f1: float
    per_class: list[dict[str, Any]]
    """One row per class: index, name, precision, recall, f1, support."""
    confusion: np.ndarray
    """``confusion[i, j]``: test examples of class ``i`` predicted as ``j``."""
    class_names: list[str]
    examples: int

    def metrics(self, prefix: str = "test/") -> dict[str, float]:
        """Flat MLflow metrics: the overall figures and ``<prefix>class_<i>/<figure>``."""
        out = {
            f"{prefix}accuracy": self.accuracy,
            f"{prefix}macro_precision": self.macro_precision,
            f"{prefix}macro_recall": self.macro_recall,
            f"{prefix}macro_f1": self.macro_f1,
        }
        for row in self.per_class:
            for key in ("precision", "recall", "f1"):
                out[f"{prefix}class_{row['index']}/{key}"] = row[key]
        return out

    def write(self, folder: str | Path, title: str = "") -> list[Path]:
        """``test_metrics.json``, ``per_class.csv`` and ``confusion_matrix.png`` in ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        summary = {
            k.removeprefix("test/"): v for k, v in self.metrics().items() if "/" not in k[5:]
        }
        summary.update(examples=self.examples, per_class=self.per_class)
        summary["confusion"] = self.confusion.tolist()
        paths = [folder / "test_metrics.json", folder / "per_class.csv"]
        paths[0].write_text(json.dumps(summary, indent=1))
        with open(paths[1], "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(self.per_class[0]))
            writer.writeheader()
            writer.writerows(self.per_class)
        paths.append(
            plot_confusion(self.confusion, self.class_names, folder / "confusion_matrix.png", title)
        )
        return paths


def score(
    probs: np.ndarray, y: np.ndarray, class_names: list[str]
) -> ScoreReport | RegressionReport:
    """The :class:`ScoreReport` of predicted class probabilities ``probs`` for labels ``y``;
    for regression targets (float ``y``), the :class:`RegressionReport` of predictions."""
    if y.dtype.kind == "f":
        return score_regression(probs, y)
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    labels = np.arange(len(class_names))
    pred = np.argmax(probs, axis=1)
    p, r, f, support = precision_recall_fscore_support(
        y, pred, labels=labels, average=None, zero_division=0
    )
    rows = [
        {
            "index": int(i),
            "name": class_names[i],
            "precision": float(p[i]),
            "recall": float(r[i]),
            "f1": float(f[i]),
            "support": int(support[i]),
        }
        for i in labels
    ]
    return ScoreReport(
        accuracy=accuracy(probs, y),
        macro_precision=float(np.mean(p)),
        macro_recall=float(np.mean(r)),
        macro_f1=float(np.mean(f)),
        per_class=rows,
        confusion=confusion_matrix(y, pred, labels=labels),
        class_names=list(class_names),
        examples=int(len(y)),
    )


def plot_confusion(matrix: np.ndarray, names: list[str], path: str | Path, title: str = "") -> Path:
    """A PNG of the confusion matrix, counts written in the cells (matplotlib's Agg canvas)."""
    # lazy: matplotlib is slow to import and only a report draws
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    k = len(names)
    size = max(4.0, 0.5 * k + 2)
    fig = Figure(figsize=(size + 1, size), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    image = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(k), labels=names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(k), labels=names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or "confusion matrix (test split)", fontsize=10)
    if k <= 20:
        high = matrix.max() / 2 if matrix.size else 0
        for i in range(k):
            for j in range(k):
                color = "white" if matrix[i, j] > high else "black"
                ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=7, color=color)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    return path


callable_module(__name__, "final")  # rlnas.final(run_id, ...): rlnas.api.final
