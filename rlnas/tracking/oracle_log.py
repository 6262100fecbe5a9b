"""MLflow records of a search driven from outside rlnas's search loop (a KerasTuner oracle).

:class:`~rlnas.tracking.tracker.MLflowTracker` observes a :class:`~rlnas.search.Search`;
a KerasTuner tuner runs its own loop, so :class:`rlnas.keras_tuner.ReinforceOracle` logs
through this small writer instead, into the same layout:

* parent run ``search-<space>-<task>-<time>`` with tags ``rlnas.kind=search``,
  ``rlnas.space``, ``rlnas.task``, ``rlnas.strategy``; the space (``space.json``); per
  update the ``controller/*`` metrics (step = update number); per child ``child/reward`` and
  ``search/best_so_far`` (step = child number); at the end ``best_architecture.json``, the
  controller (``controller/``, which ``warm_start="runs:/<run_id>/controller"`` reads) and
  ``search/children``, ``search/best_reward``;
* child run ``child-NNNN`` (nested, tag ``mlflow.parentRunId``): every decision as a param,
  ``reward``, the trial's metrics as ``child/<name>``, tags ``rlnas.kind=child``,
  ``rlnas.child``, ``rlnas.status``, ``rlnas.architecture_hash``, ``rlnas.controller_step``.

Writes go straight to the store (no outbox): the tuner waits for them between trials.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import rlnas
from rlnas.tracking.store import connect, experiment_id, normalize_uri


def _param(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


class OracleLog:
    """One parent run and its child runs, written as the oracle's trials end."""

    def __init__(self, uri: str, experiment: str, *, task: str = "keras_tuner") -> None:
        self.tracking_uri = normalize_uri(uri)
        self.experiment = experiment
        self.task = task
        self.client = connect(self.tracking_uri)  # an unreachable store fails here, first
        self.experiment_id = experiment_id(self.client, experiment, self.tracking_uri)
        self.run_id: str | None = None
        self.best: float | None = None
        self.children = 0

    def start(self, space: Mapping[str, Any], *, strategy: str, seed: int) -> str:
        """Create the parent run and log the space; returns its run id."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        tags = {
            "rlnas.kind": "search",
            "rlnas.space": str(space["space"]),
            "rlnas.task": self.task,
            "rlnas.strategy": strategy,
            "rlnas.seed": str(seed),
            "rlnas.version": rlnas.__version__,
            "mlflow.source.name": "rlnas.keras_tuner",
        }
        run = self.client.create_run(
            self.experiment_id, tags=tags, run_name=f"search-{space['space']}-{self.task}-{stamp}"
        )
        self.run_id = run.info.run_id
        self.client.log_batch(self.run_id, params=_params({"seed": seed, "strategy": strategy}))
        self._artifact("space.json", json.dumps(dict(space), indent=1))
        return self.run_id

    def reopen(self, run_id: str, best: float | None, children: int) -> None:
        """Continue the parent run ``run_id`` (a resumed tuner)."""
        self.run_id, self.best, self.children = run_id, best, children
        self.client.update_run(run_id, status="RUNNING")

    def child(
        self,
        number: int,
        decisions: Mapping[str, Any],
        *,
        reward: float | None,
        metrics: Mapping[str, float],
        status: str,
        controller_step: int,
        architecture_hash: str,
        started: float,
    ) -> str:
        """One finished child run; then the parent's per-child curves."""
        assert self.run_id is not None
        tags = {
            "mlflow.parentRunId": self.run_id,
            "rlnas.kind": "child",
            "rlnas.child": str(number),
            "rlnas.status": status,
            "rlnas.architecture_hash": architecture_hash,
            "rlnas.controller_step": str(controller_step),
            "rlnas.task": self.task,
        }
        run = self.client.create_run(
            self.experiment_id,
            start_time=int(started * 1000),
            tags=tags,
            run_name=f"child-{number:04d}",
        )
        child_id = run.info.run_id
        values = {f"child/{k}": float(v) for k, v in metrics.items()}
        if reward is not None:
            values["reward"] = float(reward)
        self._metrics(child_id, values)
        params = _params(decisions)
        for i in range(0, len(params), 100):  # MLflow's batch limit
            self.client.log_batch(child_id, params=params[i : i + 100])
        self.client.set_terminated(child_id, "FINISHED" if status == "COMPLETE" else "FAILED")
        self.children += 1
        parent: dict[str, float] = {}
        if reward is not None:
            parent["child/reward"] = float(reward)
            self.best = reward if self.best is None else max(self.best, reward)
        if self.best is not None:
            parent["search/best_so_far"] = self.best
        self._metrics(self.run_id, parent, step=number)
        return child_id

    def update(self, metrics: Mapping[str, float]) -> None:
        """The controller's metrics after one policy update."""
        step = int(metrics.get("controller/step", 0))
        self._metrics(self.run_id, metrics, step=step)

    def finish(
        self,
        best: Mapping[str, Any] | None,
        save_controller: Callable[[Path], Any] | None = None,
        status: str = "FINISHED",
    ) -> None:
        """Log the best architecture and the controller, then end the parent run."""
        assert self.run_id is not None
        with tempfile.TemporaryDirectory() as tmp:
            if best is not None:
                Path(tmp, "best_architecture.json").write_text(json.dumps(dict(best), indent=1))
            if save_controller is not None:
                save_controller(Path(tmp, "controller"))
            self.client.log_artifacts(self.run_id, tmp)
        summary = {"search/children": float(self.children)}
        if self.best is not None:
            summary["search/best_reward"] = float(self.best)
        self._metrics(self.run_id, summary)
        self.client.set_terminated(self.run_id, status)

    def _metrics(self, run_id: str | None, metrics: Mapping[str, float], step: int = 0) -> None:
        from mlflow.entities import Metric

        assert run_id is not None
        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, step) for k, v in metrics.items()]
        for i in range(0, len(items), 100):  # MLflow's batch limit
            self.client.log_batch(run_id, metrics=items[i : i + 100])

    def _artifact(self, name: str, text: str) -> None:
        assert self.run_id is not None
        with tempfile.TemporaryDirectory() as tmp:
            Path(tmp, name).write_text(text)
            self.client.log_artifact(self.run_id, str(Path(tmp, name)))


def _params(values: Mapping[str, Any]) -> list:
    from mlflow.entities import Param

    return [Param(k, _param(v)[:6000]) for k, v in values.items()]
