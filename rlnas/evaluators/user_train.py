"""Children trained by the user's own loop: ``train(model, data, decisions) -> float``.

``child.train: my_pkg.loops:train`` (or ``rlnas.search(..., train=train)``) replaces the
evaluator's fit and validation with the user's function, as KerasTuner users override
``run_trial``::

    def train(model, data, decisions):
        model.fit(data.x_train, data.y_train, epochs=2, class_weight={0: 1.0, 1: 3.0}, verbose=0)
        return model.evaluate(data.x_val, data.y_val, return_dict=True, verbose=0)["accuracy"]

``model`` is the child built and compiled as usual (recompile it freely), ``data`` the
task's :class:`~rlnas.tasks.TaskData` (never reward with its test split) and ``decisions``
the child's architecture (name -> value). The float returned is the reward. An exception in
the function, or a reward that is not a finite number, fails the child, with the traceback
in ``traceback.txt`` of its MLflow run. Subclass :class:`UserTrainEvaluator` and override
:meth:`~UserTrainEvaluator.train` for the same from a class.
"""

from __future__ import annotations

import math
import time
import traceback
from collections.abc import Callable, Mapping
from typing import Any

from rlnas.errors import ChildFailure
from rlnas.evaluators.keras_child import KerasEvaluator, weights_bytes
from rlnas.keras_build import build_model, compile_model
from rlnas.keras_build.summary import summary_text
from rlnas.trial import Outcome

Train = Callable[[Any, Any, Mapping[str, Any]], float]


class UserTrainEvaluator(KerasEvaluator):
    """A Keras evaluator whose fit and validation are ``train_fn`` (or :meth:`train`)."""

    def __init__(self, space, data, child, train_fn: Train | None = None) -> None:
        super().__init__(space, data, child)
        self.train_fn = train_fn

    def train(self, model: Any, data: Any, decisions: Mapping[str, Any]) -> float:
        """Train ``model`` and return its reward (the user's function by default)."""
        if self.train_fn is None:
            raise NotImplementedError("give train_fn or override UserTrainEvaluator.train")
        return self.train_fn(model, data, decisions)

    def _train(self, blueprint, seed: int, number: int) -> Outcome:
        try:
            model = build_model(blueprint, self.data.spec)
            compile_model(model, blueprint.training)
        except Exception as exc:
            raise _failure("unbuildable", number, "cannot be built", exc) from None
        decisions = dict(getattr(blueprint, "decisions", {}))
        start = time.perf_counter()
        try:
            reward = float(self.train(model, self.data, decisions))
        except Exception as exc:
            raise _failure("exception", number, "train raised", exc) from None
        seconds = time.perf_counter() - start
        if not math.isfinite(reward):
            raise ChildFailure("nan_loss", f"child {number}: train returned {reward}.")
        metrics = {"params": float(model.count_params()), "train_seconds": seconds}
        weights = weights_bytes(model) if self.child.keep_weights else None
        return Outcome(
            reward=reward,
            metrics=metrics,
            cost=seconds,
            texts={"model_summary.txt": summary_text(model)},
            files=self.keep(weights, reward),
        )


def _failure(reason: str, number: int, what: str, exc: Exception) -> ChildFailure:
    """One line for the console; the whole traceback as the child's artifact."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    return ChildFailure(
        reason,
        f"child {number} {what} {type(exc).__name__}: {first} (traceback.txt in the child's run)",
        texts={"traceback.txt": "".join(traceback.format_exception(exc))},
    )
