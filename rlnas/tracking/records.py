"""Records in an MLflow run: batched writes, the search's description, its child runs.

:func:`log_batch` is the one way rlnas writes metrics, params and tags (the search tracker
and the final runs alike); :func:`describe_run` logs a search's config and space on its
parent run; :class:`ChildRuns` writes the nested run of each finished child
of a search, idempotently, so that a write cut short by a store that went away is completed
in place when it is tried again (:mod:`rlnas.tracking.outbox`).

A child run ``<id4>-child-NNNN`` (nested under the search's parent run, whose run id starts
with ``id4``) holds every decision of the space as a param (``inactive`` where it does not
apply), tags (hash, controller step, status, cache, failure, and the search's settings:
strategy, task, space, ``controller.from``), per-epoch ``child/*`` metrics (step = epoch,
from 0, each at its epoch's end time), ``reward``, ``child/params``, ``child/mmacs``,
``child/train_seconds``, the artifacts ``architecture.json``, ``architecture.svg`` (a
drawing of the decisions) and the evaluator's texts (the Keras model summary). Its status is
FINISHED, FAILED or KILLED. The names and descriptions follow
:mod:`rlnas.tracking.conventions`.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from rlnas.tracking import conventions, diagram, history
from rlnas.tracking.outbox import transient
from rlnas.trial import Trial, TrialState

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from rlnas.search import Search


def param_text(value: Any) -> str:
    """A decision or config value as an MLflow param (strings as they are, else JSON)."""
    return value if isinstance(value, str) else json.dumps(value)


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested config mapping -> ``{"section.key": "value"}`` (MLflow params are strings)."""
    out: dict[str, str] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + "."))
        else:
            out[name] = param_text(value)
    return out


def log_batch(
    client: MlflowClient,
    run_id: str,
    *,
    metrics: Mapping[str, float] = {},  # noqa: B006 (read only)
    params: Mapping[str, str] = {},  # noqa: B006
    tags: Mapping[str, str] = {},  # noqa: B006
    curves: Mapping[str, Sequence[float]] = {},  # noqa: B006
    step: int = 0,
    timestamp: float | None = None,
    epoch_stamps: Sequence[float] = (),
) -> None:
    """One ``log_batch`` call per 100 entities (MLflow's limit for params per batch).

    Curves are logged as ``child/<key>`` by epoch (their step); one shorter than the others
    (validated only after the last epochs) is aligned to the end. A fixed ``timestamp``
    (seconds) makes logging the same metrics again a no-op; ``epoch_stamps`` (seconds, one per
    epoch) time each epoch's curve points at that epoch's end instead."""
    # lazy: importing rlnas.tracking (and so the CLI's parser) loads no MLflow
    from mlflow.entities import Metric, Param, RunTag

    now = int((time.time() if timestamp is None else timestamp) * 1000)
    items: list = [Metric(k, float(v), now, step) for k, v in metrics.items()]
    epochs = max((len(values) for values in curves.values()), default=0)
    for key, values in curves.items():
        first = epochs - len(values)  # a validation curve ends at the last epoch
        items += [
            Metric(f"child/{key}", float(v), _stamp(epoch_stamps, e, now), e)
            for e, v in enumerate(values, first)
        ]
    items += [Param(k, str(v)[:6000]) for k, v in params.items()]
    items += [RunTag(k, str(v)) for k, v in tags.items()]
    for i in range(0, len(items), 100):
        chunk = items[i : i + 100]
        client.log_batch(
            run_id,
            metrics=[x for x in chunk if isinstance(x, Metric)],
            params=[x for x in chunk if isinstance(x, Param)],
            tags=[x for x in chunk if isinstance(x, RunTag)],
        )


def _stamp(stamps: Sequence[float], epoch: int, default: int) -> int:
    return round(stamps[epoch] * 1000) if epoch < len(stamps) else default


def describe_run(
    client: MlflowClient,
    run_id: str,
    search: Search,
    config: Mapping[str, Any] | None,
    logged: Mapping[str, str],
) -> None:
    """Log a search's config (params and ``config.yaml``) and space (``space.json``) on its
    parent run, unless ``logged`` (the params a resumed run already has) shows they are
    there; settings changed for the resume are noted in the tag ``rlnas.resumed_with``."""
    params = {"seed": str(search.seed), "strategy": search.strategy.name}
    if config is not None:
        params.update(flatten(config))
    changed = {k: v[:6000] for k, v in params.items() if logged.get(k, v[:6000]) != v[:6000]}
    missing = {k: v for k, v in params.items() if k not in logged}
    tags = {"rlnas.resumed_with": json.dumps(changed)[:5000]} if changed else {}
    log_batch(client, run_id, params=missing, tags=tags)
    if logged and "space.json" in {a.path for a in client.list_artifacts(run_id)}:
        return
    with tempfile.TemporaryDirectory() as tmp:
        if config is not None:
            Path(tmp, "config.yaml").write_text(yaml.safe_dump(dict(config), sort_keys=False))
        space = search.strategy.space.describe()
        Path(tmp, "space.json").write_text(json.dumps(space, indent=1))
        client.log_artifacts(run_id, tmp)


class ChildRuns:
    """The nested runs of a search's children, each written complete exactly once.

    ``logged`` maps trial numbers to their complete runs; ``partial`` to runs created but
    not complete (a write cut short); ``best`` is the best reward logged so far (the parent's
    ``search/best_so_far`` curve).
    """

    def __init__(
        self,
        client: MlflowClient,
        experiment_id: str,
        parent: str,
        task: str,
        settings: Mapping[str, str] = {},  # noqa: B006 (read only)
    ) -> None:
        self.client = client
        self.experiment_id = experiment_id
        self.parent = parent
        self.task = task
        self.settings = dict(settings)
        """Tags every child carries: the search's settings (:mod:`.conventions`)."""
        self.logged: dict[int, str] = {}
        self.partial: dict[int, str] = {}
        self.best: float | None = None
        self._uncertain: set[int] = set()  # children whose create_run may have worked

    def tags(self, search: Search, trial: Trial) -> dict[str, str]:
        """The tags of ``trial``'s run."""
        tags = {
            "mlflow.parentRunId": self.parent,
            "rlnas.kind": "child",
            "rlnas.child": str(trial.number),
            "rlnas.architecture_hash": trial.architecture.hash,
            "rlnas.controller_step": str(trial.controller_step),
            "rlnas.strategy": search.strategy.name,
            "rlnas.status": trial.state.value,
            "rlnas.seed": str(trial.seed),
            "rlnas.task": self.task,
            "rlnas.space": search.strategy.space.name,
            "mlflow.user": conventions.user(),
            **self.settings,
        }
        if search.fingerprint:
            tags["rlnas.fingerprint"] = search.fingerprint
        if trial.number in search.interrupted:  # history: a resumed search runs it again
            tags["rlnas.interrupted"] = "true"
        if trial.cached_from is not None:
            source = trial.cached_from  # a child of this search, or a run of an earlier one
            tags["rlnas.cached_from"] = str(source)
            tags["rlnas.cached_from_run"] = (
                source if isinstance(source, str) else self.logged.get(source, "")
            )
        if trial.failure_reason:
            tags["rlnas.failure_reason"] = trial.failure_reason
        if trial.message:
            tags["rlnas.message"] = trial.message[:5000]
        return tags

    def log(self, search: Search, trial: Trial) -> None:
        """One child run, complete; then the parent's per-child metrics. Run again after a
        failure, it completes the same run (every write is idempotent)."""
        end = trial.finished_at or time.time()
        run_id = self._run(trial, self.tags(search, trial))
        status = history.run_status(trial)
        names = [d.name for d in search.strategy.space.signature]
        interrupted = trial.number in search.interrupted
        try:
            best = self._write(run_id, trial, end, names, interrupted=interrupted)
        except Exception as exc:
            if not transient(exc):  # our bug or a refused write: end the run, say why
                self.client.set_terminated(run_id, status, end_time=int(end * 1000))
            raise
        self.client.set_terminated(run_id, status, end_time=int(end * 1000))
        self.partial.pop(trial.number, None)
        self.logged[trial.number] = run_id
        self.best = best

    def _write(
        self, run_id: str, trial: Trial, end: float, names: list[str], *, interrupted: bool
    ) -> float | None:
        """The child's params, metrics and artifacts, then the parent's curves; returns the
        best reward so far. ``names``: every decision of the space, in order."""
        params = conventions.decision_params(names, trial.architecture, param_text)
        final: dict[str, float] = {"child/train_seconds": trial.cost}
        final.update({f"child/{k}": v for k, v in trial.metrics.items() if k not in trial.history})
        if trial.reward is not None:
            final["reward"] = trial.reward
        epochs = max((len(v) for v in trial.history.values()), default=0)
        stamps = conventions.epoch_times(end - trial.cost, end, epochs, trial.epoch_ends)
        log_batch(
            self.client,
            run_id,
            metrics=final,
            params=params,
            curves=trial.history,
            timestamp=end,
            epoch_stamps=stamps,
        )
        with tempfile.TemporaryDirectory() as tmp:
            record = {"child": trial.number, "hash": trial.architecture.hash}
            record["decisions"] = dict(trial.architecture)
            Path(tmp, "architecture.json").write_text(json.dumps(record, indent=1))
            drawing = diagram.svg(params, title=f"child {trial.number}")
            Path(tmp, "architecture.svg").write_text(drawing)
            for name, text in trial.texts.items():
                Path(tmp, name if "." in name else name + ".txt").write_text(text)
            for name, data in trial.files.items():
                Path(tmp, name).write_bytes(data)
            self.client.log_artifacts(run_id, tmp)
        best = self.best
        if not interrupted:  # the parent's curves: before the child is complete
            metrics: dict[str, float] = {}
            if trial.state is TrialState.COMPLETE and trial.reward is not None:
                metrics["child/reward"] = trial.reward
                best = trial.reward if best is None else max(best, trial.reward)
            if best is not None:
                metrics["search/best_so_far"] = best
            log_batch(self.client, self.parent, metrics=metrics, step=trial.number, timestamp=end)
        return best

    def _run(self, trial: Trial, tags: Mapping[str, str]) -> str:
        """The run of ``trial``: the one a cut-short attempt left, else a new one."""
        number = trial.number
        if number in self._uncertain and number not in self.partial:  # did it get created?
            for run in history.child_runs(self.client, self.experiment_id, self.parent):
                t = run.data.tags
                mine = t.get("rlnas.interrupted") == tags.get("rlnas.interrupted")
                if t.get("rlnas.child") == str(number) and run.info.status == "RUNNING" and mine:
                    self.partial[number] = run.info.run_id
        if number not in self.partial:
            self._uncertain.add(number)
            run = self.client.create_run(
                self.experiment_id,
                start_time=int(trial.started_at * 1000),
                tags=dict(tags),
                run_name=conventions.child_name(self.parent, number),
            )
            self.partial[number] = run.info.run_id
        self._uncertain.discard(number)
        return self.partial[number]
