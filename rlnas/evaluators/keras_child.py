"""Train one Keras child briefly and reward it with its validation accuracy.

:class:`KerasEvaluator` replays the architecture through the space (the one decoder), builds
and compiles the model, fits it on the training split for ``child.epochs`` epochs (at most
``child.steps_per_epoch`` batches each), validates on the validation split after the last
epoch (or after every epoch, ``child.validate``; with batch-norm statistics re-estimated
first, see :mod:`rlnas.keras_build.batchnorm`), and returns an :class:`~rlnas.trial.Outcome`::

    evaluator = KerasEvaluator(space, load_task(TaskConfig("digits")), ChildConfig(epochs=1))
    outcome = evaluator.evaluate(architecture, seed=7, number=0)
    outcome.reward, outcome.metrics["params"], outcome.history["val_accuracy"]

The reward is the final epoch's ``child.metric`` (by default ``val_accuracy`` for classes,
``val_loss`` for a regression; any metric of :data:`rlnas.evaluators.config.METRICS` or
another Keras knows), a metric to minimise rewarded as its negative (``-val_loss``,
``-val_mae``). With ``child.target_mmacs`` a child whose forward pass costs more
multiply-adds than the target has its accuracy scaled down by MnasNet's soft-constraint
factor ``(mmacs / target) ** cost_exponent`` (:func:`cost_factor`), so the search ranks
architectures by what they are worth for their final-training and inference cost. The test
split is never touched. A NaN or infinite loss stops training at once and fails the child
(``nan_loss``); a model that cannot be built fails it (``unbuildable``). Keras state is
cleared after every child, so memory does not grow.
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import math
import time
import traceback
from collections.abc import Sequence
from dataclasses import asdict, is_dataclass

import keras
import numpy as np

from rlnas.config import ChildConfig
from rlnas.errors import ChildFailure, SpaceError
from rlnas.evaluators import latency
from rlnas.evaluators.config import check_metric, reward_metric
from rlnas.keras_build import batches, build_model, compile_model
from rlnas.keras_build.batchnorm import calibration_sample, recalibrate_batch_norm
from rlnas.keras_build.cost import multiply_adds
from rlnas.keras_build.head import metric_names, targets_for
from rlnas.keras_build.summary import summary_text
from rlnas.keras_build.tf_state import forget_child_gradients
from rlnas.space import Architecture, Space
from rlnas.tasks import TaskData
from rlnas.trial import Outcome

log = logging.getLogger(__name__)

BUILDER_VERSION = 4
"""Part of the fingerprint: raise it when the builder or the training changes what a given
architecture's reward means, so that cached rewards of the old code are not reused."""
CURVES = ("loss", "accuracy", "val_loss", "val_accuracy")
"""The curves of a classifier rewarded by accuracy or loss (other tasks and metrics add
theirs: :attr:`KerasEvaluator.curves`)."""
CALIBRATION_EXAMPLES = 256
"""Training examples whose batch-norm statistics a child uses when it is validated: one
batch, so re-estimating costs one eager forward pass per validation."""
_frozen = False  # set once the first child's survivors are frozen (see _free_keras_state)


def cost_factor(mmacs: float, child: ChildConfig) -> float:
    """MnasNet's soft constraint: 1 up to ``child.target_mmacs``, then
    ``(mmacs / target) ** child.cost_exponent`` (below 1, falling as the cost grows)."""
    if child.target_mmacs is None or mmacs <= child.target_mmacs:
        return 1.0
    return (mmacs / child.target_mmacs) ** child.cost_exponent


class _FiniteLoss(keras.callbacks.Callback):
    """Stop training after the first epoch whose mean loss is NaN or infinite (a NaN batch
    makes its epoch's mean NaN). Checked per epoch, not per batch: a per-batch hook makes
    Keras copy every batch's loss to the host, which slows training."""

    def __init__(self) -> None:
        super().__init__()
        self.bad: tuple[int, float] | None = None

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.bad = (epoch, float(loss))
            self.model.stop_training = True


class _Validate(keras.callbacks.Callback):
    """After each epoch: re-estimate batch-norm statistics, then validate into the logs."""

    def __init__(self, evaluator: KerasEvaluator, guard: _FiniteLoss, batch_size: int) -> None:
        super().__init__()
        self.data = evaluator.data
        self.calibration = evaluator.calibration
        self.guard = guard
        self.batch_size = batch_size
        self.y_val = evaluator.targets(evaluator.data.y_val)
        self.every_epoch = evaluator.child.validate == "every_epoch"
        self.epochs = evaluator.child.epochs

    def on_epoch_end(self, epoch, logs=None):
        if self.guard.bad is not None or logs is None:
            return
        if not self.every_epoch and epoch + 1 < self.epochs:
            return
        recalibrate_batch_norm(self.model, self.calibration)
        feed = batches(self.data.x_val, self.y_val, batch_size=self.batch_size)
        result = self.model.evaluate(feed, verbose=0, return_dict=True)
        for key, value in result.items():
            logs[f"val_{key}"] = value


class _EpochClock(keras.callbacks.Callback):
    """The wall-clock time at which each epoch ended (after its validation, so it runs
    last), for the child's per-epoch metrics in MLflow."""

    def __init__(self) -> None:
        super().__init__()
        self.ends: list[float] = []

    def on_epoch_end(self, epoch, logs=None):
        self.ends.append(time.time())


class KerasEvaluator:
    """Evaluates architectures of ``space`` by training Keras children on ``data``."""

    def __init__(
        self, space: Space, data: TaskData, child: ChildConfig, measure: Sequence[str] = ()
    ) -> None:
        check_metric(child, data.spec.task)
        self.space = space
        self.data = data
        self.child = child = reward_metric(child, data.spec.task)
        names = metric_names(data.spec, child.metric_name)
        self.curves = ("loss", *names, "val_loss", *(f"val_{m}" for m in names))
        """The per-epoch figures a child reports (its history and final metrics)."""
        self.measure = tuple(m for m in measure if m in latency.MEASURED)
        """Cost metrics to measure on each trained child (``latency_ms``, ``tflite_bytes``)."""
        if child.mixed_precision:  # this process's children compute in float16 from now on
            keras.mixed_precision.set_global_policy("mixed_float16")
        self._fingerprint: str | None = None
        self._best: float | None = None  # best reward of this evaluator (child.keep_weights)
        self.calibration = calibration_sample(data.x_train, CALIBRATION_EXAMPLES)
        """Training examples that re-estimate batch-norm statistics before validation."""

    def fingerprint(self) -> str:
        """Hash of the task (name, provenance, spec, split contents), the space's settings and
        the child settings: equal fingerprints mean an architecture earns the same reward."""
        if self._fingerprint is None:
            d = self.data
            digest = hashlib.sha256()
            for a in (d.y_train, d.y_val, _rows(d.x_train), _rows(d.x_val)):
                digest.update(np.ascontiguousarray(a).tobytes())
            payload = {
                "builder": BUILDER_VERSION,
                "space": self.space.name,
                "space_config": _config_of(self.space),
                "task": d.name,
                "source": d.source,
                "spec": _spec_settings(d.spec),
                "sizes": [len(d.y_train), len(d.y_val)],
                "data": digest.hexdigest(),
                "child": _child_settings(self.child),
            }
            if self.measure:  # what a child's metrics hold, not its reward
                payload.update(measure=self.measure, latency=asdict(self.child.latency))
            text = json.dumps(payload, sort_keys=True, default=str)
            self._fingerprint = hashlib.sha256(text.encode()).hexdigest()[:16]
        return self._fingerprint

    def evaluate(self, architecture: Architecture, *, seed: int, number: int) -> Outcome:
        """Train the child of ``architecture`` with ``seed``; raise ChildFailure if it fails."""
        try:
            blueprint = self.space.blueprint(architecture)
        except SpaceError as exc:
            raise ChildFailure("unbuildable", str(exc)) from None
        keras.utils.set_random_seed(seed)
        try:
            with forget_child_gradients():
                return self._train(blueprint, seed, number)
        finally:
            _free_keras_state()

    def _train(self, blueprint, seed: int, number: int) -> Outcome:
        model = history = None
        try:
            try:
                model = build_model(blueprint, self.data.spec)
                compile_model(
                    model, blueprint.training, spec=self.data.spec, metric=self.child.metric_name
                )
            except Exception as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                raise ChildFailure(
                    "unbuildable",
                    f"child {number} cannot be built: {type(exc).__name__}: {first} "
                    "(traceback.txt in the child's run)",
                    texts={"traceback.txt": traceback.format_exc()},
                ) from None
            guard, clock = _FiniteLoss(), _EpochClock()
            start = time.perf_counter()
            history = self._fit(model, blueprint.training.batch_size, seed, guard, clock)
            seconds = time.perf_counter() - start
            if guard.bad is not None:
                epoch, loss = guard.bad
                t = blueprint.training
                raise ChildFailure(
                    "nan_loss",
                    f"child {number}: loss became {loss} in epoch {epoch + 1} "
                    f"(optimizer={t.optimizer}, learning_rate={t.learning_rate}); "
                    "training stopped.",
                )
            curves = {k: [float(v) for v in history.history.get(k, [])] for k in self.curves}
            final = {k: v[-1] for k, v in curves.items() if v}
            if not all(math.isfinite(final.get(k, math.nan)) for k in self.curves):
                raise ChildFailure(
                    "nan_loss", f"child {number}: final metrics are not finite: {final}."
                )
            params = int(model.count_params())
            mmacs = multiply_adds(model) / 1e6
            summary = summary_text(model)
            weights = weights_bytes(model) if self.child.keep_weights else None
            costs = latency.measure(model, self.measure, self.child.latency, seed)
        finally:
            model = history = None  # also when a failure's traceback keeps this frame alive
        value = final[self.child.metric]
        if self.child.metric == "val_accuracy":
            reward = value * cost_factor(mmacs, self.child)
        else:
            reward = value if self.child.maximise else -value
        metrics = {**final, "params": float(params), "mmacs": mmacs, "train_seconds": seconds}
        metrics.update(costs)
        log.debug("child %d: reward %.4f in %.1fs", number, reward, seconds)
        return Outcome(
            reward=float(reward),
            metrics=metrics,
            history=curves,
            cost=seconds,
            epoch_ends=clock.ends,
            texts={"model_summary.txt": summary},
            files=self.keep(weights, reward),
        )

    def keep(self, weights: bytes | None, reward: float) -> dict[str, bytes]:
        """The child's weights as a file to log, if kept and the best of this evaluator so
        far (each worker keeps its own best, so the search's best always has its weights)."""
        if weights is None or (self._best is not None and reward <= self._best):
            return {}
        self._best = reward
        return {WEIGHTS_FILE: weights}

    def targets(self, y: np.ndarray) -> np.ndarray:
        """``y`` as the compiled loss wants it (one-hot for one-hot metrics)."""
        return targets_for(y, self.data.spec, self.child.metric_name)

    def _fit(
        self,
        model: keras.Model,
        batch_size: int,
        seed: int,
        guard: _FiniteLoss,
        clock: _EpochClock,
    ):
        d, child = self.data, self.child
        y_train = self.targets(d.y_train)
        validate = _Validate(self, guard, batch_size=max(batch_size, 256))
        callbacks = [guard, validate, clock]
        # shuffle=False: the feed shuffles (Keras would warn that it cannot)
        fit = dict(epochs=child.epochs, callbacks=callbacks, shuffle=False, verbose=0)
        per_pass = math.ceil(len(d.y_train) / batch_size)
        if child.steps_per_epoch is None or child.steps_per_epoch >= per_pass:
            feed = batches(d.x_train, y_train, batch_size=batch_size, shuffle=True, seed=seed)
            return model.fit(feed, **fit)
        # a step budget: an endless shuffled stream, so each epoch continues where the last
        # stopped (a single pass would run out of batches after the first epoch)
        stream = batches(
            d.x_train, y_train, batch_size=batch_size, shuffle=True, seed=seed, repeat=True
        )
        return model.fit(stream, steps_per_epoch=child.steps_per_epoch, **fit)


WEIGHTS_FILE = "weights.weights.h5"
"""The artifact of a child's trained weights (``child.keep_weights``)."""


def weights_bytes(model: keras.Model) -> bytes:
    """The model's weights in Keras's ``.weights.h5`` format."""
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, WEIGHTS_FILE)
        model.save_weights(path)
        return path.read_bytes()


def _free_keras_state() -> None:
    """Clear Keras's global state and collect the child's reference cycles.

    A full collection scans every object of the process, and TensorFlow makes that a long
    scan, so after the first child the survivors are frozen (:func:`gc.freeze`): later
    collections scan only what was created since. Frozen objects are never collected, which
    only matters for reference cycles that were alive after the first child and die later.
    The collection runs after every child because a child trains more slowly among the
    previous child's garbage (``benchmarks/overhead.py`` measures the overhead).
    """
    global _frozen
    keras.backend.clear_session(free_memory=False)
    gc.collect()
    if not _frozen:
        gc.freeze()
        _frozen = True


def _child_settings(child: ChildConfig) -> dict:
    """The child settings that a fingerprint holds (the metric resolved); ``mixed_precision``,
    ``train`` and ``metric_mode`` only when set, so that searches from before these settings
    existed keep their fingerprints (``keep_weights`` never changes a reward)."""
    settings = asdict(child)
    settings.pop("keep_weights", None)
    settings.pop("latency", None)  # in the fingerprint only when measured (see fingerprint)
    for key in ("mixed_precision", "train"):
        if not settings.get(key):
            settings.pop(key, None)
    if settings.get("metric_mode") == "auto":
        settings.pop("metric_mode", None)
    return settings


def _spec_settings(spec) -> dict:
    """The task spec as a fingerprint holds it: the regression fields only for a regression
    (classification fingerprints stay as they were before regression existed)."""
    settings = asdict(spec)
    if spec.task == "classification":
        for key in ("task", "target_mean", "target_std"):
            settings.pop(key, None)
    return settings


def _config_of(space: Space) -> dict | None:
    """The space's settings (a fixed reduction, a stem width, N: they change the network an
    architecture builds without changing its decisions), as plain data."""
    cfg = getattr(space, "cfg", None)
    return asdict(cfg) if cfg is not None and is_dataclass(cfg) else None


def _rows(x: np.ndarray) -> np.ndarray:
    """At most about 256 evenly spaced rows: enough to tell data sets apart, cheap to hash."""
    return x[:: max(1, len(x) // 256)]
