"""The MLflow tracker: one parent run per search, one nested run per child.

:class:`MLflowTracker` is an observer of :class:`~rlnas.search.Search`; it talks to the
store through ``MlflowClient`` with explicit run ids (never the fluent "active run" stack),
so that only the search loop's driver writes and parallel executors need no access to it.

What goes where (the README's "MLflow layout" section says the same):

* parent run ``search-<space>-<task>-<time>``: the resolved config (``config.yaml`` and
  flattened params), the space (``space.json``), tags ``rlnas.*``; per update the
  ``controller/*`` metrics (step = update number); per child ``child/reward`` and
  ``search/best_so_far`` (step = child number); at the end ``plots/rewards.png``,
  ``top_k.csv``/``top_k.md``, ``best_architecture.json``, the controller (``controller/``)
  and ``search/*`` summary metrics. Status FINISHED only when the search ended normally.
* child run ``child-NNNN`` (nested): every decision as a param, tags (hash, controller step,
  strategy, status, cache, failure), per-epoch ``child/*`` metrics (step = epoch, from 0),
  ``reward``, ``child/params``, ``child/mmacs``, ``child/train_seconds``, artifacts
  ``architecture.json`` and the evaluator's texts (the Keras model summary). Status FINISHED,
  FAILED or KILLED.

Each child is recorded exactly once, after the search's checkpoint holds it: events wait in
an outbox, in order, until the store has them. A background thread writes them while the
next child trains (the search loop does not wait for the store); the search's end waits for
every event to be written before the parent run is closed. A store that stops answering mid-search
does not stop the search: the outbox is retried with backoff and emptied when the store is
back; past ``patience`` seconds the search stops with its state saved, and ``rlnas resume``
records the rest. Writes are idempotent (fixed timestamps, a half-written child run is
completed in place), and a resumed search first looks up what the store already holds
(:mod:`rlnas.tracking.history`).
"""

from __future__ import annotations

import json
import logging
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

import rlnas
from rlnas import plots
from rlnas.config import Config, to_dict
from rlnas.errors import SearchAborted, TrackingError
from rlnas.tracking import history
from rlnas.tracking.outbox import Outbox, transient
from rlnas.tracking.store import (
    DEFAULT_URI,
    connect,
    experiment_id,
    first_line,
    normalize_uri,
    redact,
)
from rlnas.trial import Trial, TrialState

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from rlnas.search import Search, SearchResult

log = logging.getLogger("rlnas.tracking")

_STATUS = {
    "budget": "FINISHED",
    "exhausted": "FINISHED",
    "converged": "FINISHED",
    "aborted": "FAILED",
}


def _param(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested config mapping -> ``{"section.key": "value"}`` (MLflow params are strings)."""
    out: dict[str, str] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + "."))
        else:
            out[name] = _param(value)
    return out


# -- the observer -------------------------------------------------------------------------
class MLflowTracker:
    """Records a search in MLflow (an observer of :class:`~rlnas.search.Search`).

    Call :meth:`connect` before any work so that an unreachable store stops the command
    first; the parent run is created when the search starts. :meth:`abort` ends whatever
    is still open when the search itself crashed.
    """

    def __init__(
        self,
        uri: str = DEFAULT_URI,
        experiment: str = "rlnas",
        *,
        config: Config | None = None,
        task: str | None = None,
        top_k: int = 10,
        patience: float = 300.0,
    ) -> None:
        self.tracking_uri = normalize_uri(uri)
        self.experiment = experiment
        self.config = config
        self.task = task or (_task_name(config) if config is not None else "custom")
        self.top_k = top_k
        self.client: MlflowClient | None = None
        self.experiment_id: str | None = None
        self.run_id: str | None = None
        self.child_runs: dict[int, str] = {}  # trial number -> run id
        self.log_children = True
        """Open a child run per child; False in shared mode, where
        :class:`rlnas.tracking.shared_log.SharedRunLog` records a table instead."""
        self.controller_card: Any = None  # the saved controller's card, if any
        self._best: float | None = None
        self.status: str | None = None  # the parent run's final MLflow status
        self._updates = 0
        self._open = False
        self.resumed = False
        self.outbox = Outbox(patience)  # what the store does not have yet, in order
        self._partial: dict[int, str] = {}  # child runs created but not complete
        self._uncertain: set[int] = set()  # children whose create_run may have worked
        # the background writer of the outbox (see _kick); _lock: one writer at a time
        self._writer: threading.Thread | None = None
        self._wake = threading.Event()
        self._stopping = False
        self._lock = threading.Lock()
        self._writer_error: BaseException | None = None

    @classmethod
    def from_config(cls, config: Config) -> MLflowTracker:
        t = config.tracking
        return cls(t.resolved_uri(), t.experiment, config=config, patience=t.retry_seconds)

    def resume(self, run_id: str) -> None:
        """Record into the existing parent run ``run_id`` (``rlnas resume``): it is reopened
        when the search starts and given whatever of the search's state it lacks."""
        self.run_id = run_id
        self.resumed = True

    def connect(self) -> None:
        """Check that the store answers and the experiment is usable, before any work
        (a SQLite store is created on first use; the experiment when the search starts)."""
        if self.client is None:
            client = connect(self.tracking_uri)
            exp = client.get_experiment_by_name(self.experiment)
            if exp is not None and exp.lifecycle_stage == "deleted":
                experiment_id(client, self.experiment, self.tracking_uri)  # raises, says why
            self.client = client

    # -- observer events -------------------------------------------------------------------
    def search_started(self, search: Search) -> None:
        plots.load_backend()  # the results' plot is drawn as the search ends
        self.connect()
        try:
            if self.resumed:
                self._reopen(search)
            else:
                self._start(search)
        except Exception as exc:
            if not transient(exc):
                raise
            raise TrackingError(
                f"tracking.uri: the MLflow store {redact(self.tracking_uri)!r} stopped "
                f"answering as the search started: {first_line(exc)}"
            ) from None

    def _start(self, search: Search) -> None:
        assert self.client is not None
        self.experiment_id = experiment_id(self.client, self.experiment, self.tracking_uri)
        space = search.strategy.space
        stamp = time.strftime("%Y%m%d-%H%M%S")
        tags = {
            "rlnas.kind": "search",
            "rlnas.space": space.name,
            "rlnas.task": self.task,
            "rlnas.strategy": search.strategy.name,
            "rlnas.seed": str(search.seed),
            "rlnas.version": rlnas.__version__,
            "mlflow.source.name": "rlnas",
        }
        if search.fingerprint:
            tags["rlnas.fingerprint"] = search.fingerprint
        run = self.client.create_run(
            self.experiment_id, tags=tags, run_name=f"search-{space.name}-{self.task}-{stamp}"
        )
        self.run_id = run.info.run_id
        self._open = True
        save = getattr(search, "save", None)
        if save is not None:  # from now on a crash leaves a run that `rlnas resume` continues
            save()
        self._describe(search, logged={})
        log.info("MLflow parent run %s in %s", self.run_id, self.tracking_uri)

    def _describe(self, search: Search, logged: Mapping[str, str]) -> None:
        """Log the config (params and ``config.yaml``) and the space, unless ``logged``
        (the params a resumed run already has) shows they are there; settings changed for
        the resume are noted in the tag ``rlnas.resumed_with``."""
        assert self.client is not None and self.run_id is not None
        params = {"seed": str(search.seed), "strategy": search.strategy.name}
        config = _loggable(self.config) if self.config is not None else None
        if config is not None:
            params.update(flatten(config))
        changed = {k: v[:6000] for k, v in params.items() if logged.get(k, v[:6000]) != v[:6000]}
        missing = {k: v for k, v in params.items() if k not in logged}
        tags = {"rlnas.resumed_with": json.dumps(changed)[:5000]} if changed else {}
        self._log(self.run_id, params=missing, tags=tags)
        if logged and "space.json" in {a.path for a in self.client.list_artifacts(self.run_id)}:
            return
        with tempfile.TemporaryDirectory() as tmp:
            if config is not None:
                Path(tmp, "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
            space = search.strategy.space.describe()
            Path(tmp, "space.json").write_text(json.dumps(space, indent=1))
            self.client.log_artifacts(self.run_id, tmp)

    def trial_finished(self, search: Search, trial: Trial) -> None:
        if not self.log_children:
            return
        self.outbox.put("trial", trial)
        self._kick(search)

    def controller_updated(self, search: Search, metrics: Mapping[str, float]) -> None:
        self._updates += 1
        step = int(metrics.get("controller/step", self._updates))
        stamp = search.updates[-1][0] if search.updates else time.time()
        self.outbox.put("update", dict(metrics), step, stamp)
        self._kick(search)

    def search_finished(self, search: Search, result: SearchResult) -> None:
        for trial in result.trials:  # children that were in flight when it stopped
            if trial.number in search.interrupted and self.log_children:
                self.outbox.put("trial", trial)
        self._stop_writer()
        self.outbox.put("results", result, time.time())
        self.outbox.put("end", _STATUS.get(result.stopped, "KILLED"))
        backoff = self.outbox.backoff
        until = time.monotonic() + max(0.0, backoff.patience - backoff.down_for)
        try:
            self._drain(search, until=until)
        except BaseException as exc:
            self.abort("KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
            raise
        if self.outbox:  # the store is gone: the parent run waits for `rlnas resume`
            self._open = False
            raise TrackingError(self._gone(search))

    def search_crashed(self, search: Search, error: BaseException) -> None:
        """The search raised (not a stop it handles): finish the writes in hand, so that
        nothing is written behind the caller's back (a resume in this process would record
        those children twice), and end the parent run FAILED (KILLED on Ctrl-C)."""
        self.abort("KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED")

    # -- the outbox ------------------------------------------------------------------------
    def _drain(self, search: Search, until: float | None = None) -> None:
        """Record the waiting events now, in this thread; a store silent for longer than
        the patience stops the search (its state is saved)."""
        with self._lock:
            self.outbox.drain(lambda event: self._record(search, event), until)
            if self.outbox and until is None and self.outbox.backoff.exhausted:
                raise SearchAborted(self._gone(search))

    def _kick(self, search: Search) -> None:
        """Have the background writer record the waiting events. A write the store refused
        there is raised here; a store silent for longer than the patience stops the search.
        The search never waits here for a write in progress (a slow or silent store): the
        patience is read from the writer's backoff, which only the writer changes."""
        if self._writer_error is not None:
            error, self._writer_error = self._writer_error, None
            raise error
        if self.outbox and self.outbox.backoff.exhausted:
            raise SearchAborted(self._gone(search))
        if self._writer is None:
            self._stopping = False
            self._writer = threading.Thread(
                target=self._write_loop, args=(search,), name="rlnas-tracking", daemon=True
            )
            self._writer.start()
        self._wake.set()

    def _write_loop(self, search: Search) -> None:
        while not self._stopping:
            self._wake.wait(timeout=max(0.05, min(self.outbox.backoff.wait(), 1.0)))
            self._wake.clear()
            try:
                with self._lock:
                    self.outbox.drain(lambda event: self._record(search, event))
            except BaseException as exc:  # refused by the store: the search loop raises it
                self._writer_error = exc
                return

    def _stop_writer(self) -> None:
        """Wait for the background writer to finish the write in hand and stop."""
        writer, self._writer = self._writer, None
        if writer is not None:
            self._stopping = True
            self._wake.set()
            writer.join()
        if self._writer_error is not None:
            error, self._writer_error = self._writer_error, None
            raise error

    def _record(self, search: Search, event: tuple) -> None:
        kind = event[0]
        if kind == "trial":
            self._log_child(search, event[1])
        elif kind == "update":
            _, metrics, step, stamp = event
            self._log(self.run_id, metrics=metrics, step=step, timestamp=stamp)
        elif kind == "results":
            self._log_results(search, event[1], timestamp=event[2])
        else:
            self._end(event[1])

    def _gone(self, search: Search) -> str:
        waiting = sum(e[0] == "trial" for e in self.outbox)
        backoff = self.outbox.backoff
        return (
            f"the tracking store {redact(self.tracking_uri)!r} has not answered for "
            f"{backoff.down_for:.0f} s ({backoff.error}); the search stopped with "
            f"its state saved ({waiting} children not yet in MLflow): run `rlnas resume "
            f"{self.run_id}` once the store is back."
        )

    def _reopen(self, search: Search) -> None:
        """Set the parent run RUNNING again and queue what the store lacks of the state."""
        assert self.client is not None and self.run_id is not None
        run = self.client.get_run(self.run_id)
        self.experiment_id = run.info.experiment_id
        self.client.update_run(self.run_id, status="RUNNING")
        self._open = True
        self._describe(search, logged=run.data.params)
        runs = history.child_runs(self.client, self.experiment_id, self.run_id)
        found = history.reconcile(self.client, runs, search.trials)
        self.child_runs.update(found.logged)
        self._partial.update(found.partial)
        done = [t for t in search.trials if t.number in found.logged]
        self._best = max((t.reward for t in done if t.reward is not None), default=None)
        missing = [t for t in search.trials if t.state.finished and t.number not in found.logged]
        missing = missing if self.log_children else []  # shared mode: SharedRunLog has them
        missing.sort(key=lambda t: (t.finished_at or 0.0, t.number))
        for trial in missing:
            self.outbox.put("trial", trial)
        steps = self._logged_steps(search)
        for n, (stamp, metrics) in enumerate(search.updates, start=1):
            step = int(metrics.get("controller/step", n))
            if step not in steps:
                self.outbox.put("update", dict(metrics), step, stamp)
        self._updates = len(search.updates)
        log.info(
            "resuming MLflow run %s: %d children recorded, %d to record",
            self.run_id,
            len(found.logged),
            len(missing),
        )
        self._drain(search)

    def _logged_steps(self, search: Search) -> set[int]:
        if not search.updates:
            return set()
        assert self.client is not None and self.run_id is not None
        key = next(iter(search.updates[-1][1]))
        return {m.step for m in self.client.get_metric_history(self.run_id, key)}

    # -- ending ----------------------------------------------------------------------------
    def __enter__(self) -> MLflowTracker:
        """``with MLflowTracker(...) as tracker:`` connects now and, should the search raise,
        ends its parent run FAILED (KILLED on Ctrl-C) instead of leaving it RUNNING."""
        self.connect()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort("KILLED" if issubclass(exc_type, KeyboardInterrupt) else "FAILED")

    def abort(self, status: str = "FAILED") -> None:
        """End the parent run with ``status`` if it is still open (the search crashed)."""
        try:
            self._stop_writer()
        except Exception as exc:  # the first error is the one that counts
            log.error("MLflow run %s: %s", self.run_id, first_line(exc))
        if self._open:
            try:
                self._end(status)
            except Exception as exc:  # the store itself is gone; say so, keep the first error
                log.error("could not end MLflow run %s: %s", self.run_id, first_line(exc))

    def _end(self, status: str) -> None:
        assert self.client is not None and self.run_id is not None
        self.client.set_terminated(self.run_id, status)
        self._open = False
        self.status = status

    def summary(self, result: SearchResult) -> dict[str, Any]:
        """What ``--summary`` writes: where the run is and what the search found."""
        evaluated = [
            t
            for t in result.trials
            if t.cached_from is None and t.state in (TrialState.COMPLETE, TrialState.FAILED)
        ]
        best = result.best
        return {
            "run_id": self.run_id,
            "tracking_uri": self.tracking_uri,
            "experiment": self.experiment,
            "experiment_id": self.experiment_id,
            "status": self.status,
            "stopped": result.stopped,
            "message": result.message,
            "children": len(evaluated),
            "failed": result.failed,
            "cached": sum(t.cached_from is not None for t in result.trials),
            "killed": sum(t.state is TrialState.KILLED for t in result.trials),
            "best_reward": best.reward if best else None,
            "best_decisions": dict(best.architecture) if best else None,
            "best_child": best.number if best else None,
            "best_run_id": self.child_runs.get(best.number) if best else None,
            "cost_seconds": sum(t.cost for t in evaluated),
            "wall_seconds": result.wall_seconds,
        }

    # -- helpers ---------------------------------------------------------------------------
    def _log_child(self, search: Search, trial: Trial) -> None:
        """One child run, complete; then the parent's per-child metrics. Run again after a
        failure, it completes the same run (every write is idempotent)."""
        assert self.client is not None and self.experiment_id is not None
        tags = {
            "mlflow.parentRunId": self.run_id,
            "rlnas.kind": "child",
            "rlnas.child": str(trial.number),
            "rlnas.architecture_hash": trial.architecture.hash,
            "rlnas.controller_step": str(trial.controller_step),
            "rlnas.strategy": search.strategy.name,
            "rlnas.status": trial.state.value,
            "rlnas.seed": str(trial.seed),
            "rlnas.task": self.task,
            "rlnas.space": search.strategy.space.name,
        }
        if search.fingerprint:
            tags["rlnas.fingerprint"] = search.fingerprint
        interrupted = trial.number in search.interrupted
        if interrupted:  # history: a resumed search runs this child again
            tags["rlnas.interrupted"] = "true"
        if trial.cached_from is not None:
            source = trial.cached_from  # a child of this search, or a run of an earlier one
            tags["rlnas.cached_from"] = str(source)
            tags["rlnas.cached_from_run"] = (
                source if isinstance(source, str) else self.child_runs.get(source, "")
            )
        if trial.failure_reason:
            tags["rlnas.failure_reason"] = trial.failure_reason
        if trial.message:
            tags["rlnas.message"] = trial.message[:5000]
        end = trial.finished_at or time.time()
        run_id = self._child_run(trial, tags)
        status = history.run_status(trial)
        try:
            params = {name: _param(v) for name, v in trial.architecture.items()}
            final: dict[str, float] = {"child/train_seconds": trial.cost}
            final.update(
                {f"child/{k}": v for k, v in trial.metrics.items() if k not in trial.history}
            )
            if trial.reward is not None:
                final["reward"] = trial.reward
            self._log(run_id, metrics=final, params=params, curves=trial.history, timestamp=end)
            with tempfile.TemporaryDirectory() as tmp:
                record = {"child": trial.number, "hash": trial.architecture.hash}
                record["decisions"] = dict(trial.architecture)
                Path(tmp, "architecture.json").write_text(json.dumps(record, indent=1))
                for name, text in trial.texts.items():
                    Path(tmp, name if "." in name else name + ".txt").write_text(text)
                self.client.log_artifacts(run_id, tmp)
            best = self._best
            if not interrupted:  # the parent's curves: before the child is complete
                metrics: dict[str, float] = {}
                if trial.state is TrialState.COMPLETE and trial.reward is not None:
                    metrics["child/reward"] = trial.reward
                    best = trial.reward if best is None else max(best, trial.reward)
                if best is not None:
                    metrics["search/best_so_far"] = best
                self._log(self.run_id, metrics=metrics, step=trial.number, timestamp=end)
        except Exception as exc:
            if not transient(exc):  # our bug or a refused write: end the run, say why
                self.client.set_terminated(run_id, status, end_time=int(end * 1000))
            raise
        self.client.set_terminated(run_id, status, end_time=int(end * 1000))
        self._partial.pop(trial.number, None)
        self.child_runs[trial.number] = run_id
        self._best = best

    def _child_run(self, trial: Trial, tags: Mapping[str, str]) -> str:
        """The run of ``trial``: the one a cut-short attempt left, else a new one."""
        assert self.client is not None and self.experiment_id is not None
        number = trial.number
        if number in self._uncertain and number not in self._partial:  # did it get created?
            for run in history.child_runs(self.client, self.experiment_id, str(self.run_id)):
                t = run.data.tags
                mine = t.get("rlnas.interrupted") == tags.get("rlnas.interrupted")
                if t.get("rlnas.child") == str(number) and run.info.status == "RUNNING" and mine:
                    self._partial[number] = run.info.run_id
        if number not in self._partial:
            self._uncertain.add(number)
            run = self.client.create_run(
                self.experiment_id,
                start_time=int(trial.started_at * 1000),
                tags=dict(tags),
                run_name=f"child-{number:04d}",
            )
            self._partial[number] = run.info.run_id
        self._uncertain.discard(number)
        return self._partial[number]

    def _log_results(self, search: Search, result: SearchResult, timestamp: float) -> None:
        assert self.client is not None and self.run_id is not None
        evaluated = self.summary(result)
        with tempfile.TemporaryDirectory() as tmp:
            title = f"{search.strategy.space.name} / {self.task} / {search.strategy.name}"
            plots.plot_rewards(result.trials, Path(tmp, "plots", "rewards.png"), title)
            rows = plots.top_k_rows(result.trials, self.child_runs, self.top_k)
            plots.write_csv(rows, Path(tmp, "top_k.csv"))
            Path(tmp, "top_k.md").write_text(plots.markdown_table(rows))
            if result.best is not None:
                best = {"reward": result.best.reward, "run_id": evaluated["best_run_id"]}
                best.update(child=result.best.number, decisions=dict(result.best.architecture))
                Path(tmp, "best_architecture.json").write_text(json.dumps(best, indent=1))
            self.controller_card = self._save_controller(search, result, Path(tmp, "controller"))
            self.client.log_artifacts(self.run_id, tmp)
        metrics = {
            f"search/{k}": float(evaluated[k])
            for k in ("children", "failed", "cached", "killed", "cost_seconds", "wall_seconds")
        }
        if result.best is not None:
            metrics["search/best_reward"] = float(result.best.reward)
        tags = {"rlnas.stopped": result.stopped, "rlnas.message": result.message[:5000]}
        if evaluated["best_run_id"]:
            tags["rlnas.best_run_id"] = evaluated["best_run_id"]
        self._log(self.run_id, metrics=metrics, tags=tags, timestamp=timestamp)

    def _save_controller(self, search: Search, result: SearchResult, folder: Path):
        from rlnas import zoo

        if not zoo.can_save(search.strategy):
            return None
        best = result.best.reward if result.best else None
        children = sum(t.cached_from is None and t.state.finished for t in result.trials)
        card = zoo.save_controller(
            search.strategy,
            folder,
            task=self.task,
            children=children,
            best_reward=best,
            run_id=self.run_id,
        )
        return card

    def _log(
        self,
        run_id: str | None,
        *,
        metrics: Mapping[str, float] = {},  # noqa: B006 (read only)
        params: Mapping[str, str] = {},  # noqa: B006
        tags: Mapping[str, str] = {},  # noqa: B006
        curves: Mapping[str, Sequence[float]] = {},  # noqa: B006
        step: int = 0,
        timestamp: float | None = None,
    ) -> None:
        """One ``log_batch`` call per 100 entities (MLflow's limit for params per batch).
        Curves are logged by epoch (their step); one shorter than the others (validated only
        after the last epochs) is aligned to the end. A fixed ``timestamp`` (seconds) makes
        logging the same metrics again a no-op."""
        from mlflow.entities import Metric, Param, RunTag

        assert self.client is not None and run_id is not None
        now = int((time.time() if timestamp is None else timestamp) * 1000)
        items: list = [Metric(k, float(v), now, step) for k, v in metrics.items()]
        epochs = max((len(values) for values in curves.values()), default=0)
        for key, values in curves.items():
            first = epochs - len(values)  # a validation curve ends at the last epoch
            items += [Metric(f"child/{key}", float(v), now, e) for e, v in enumerate(values, first)]
        items += [Param(k, v[:6000]) for k, v in params.items()]
        items += [RunTag(k, str(v)) for k, v in tags.items()]
        for i in range(0, len(items), 100):
            chunk = items[i : i + 100]
            self.client.log_batch(
                run_id,
                metrics=[x for x in chunk if isinstance(x, Metric)],
                params=[x for x in chunk if isinstance(x, Param)],
                tags=[x for x in chunk if isinstance(x, RunTag)],
            )


def _loggable(config: Config) -> dict[str, Any]:
    """The resolved config as logged: plain data, no password in the tracking URI."""
    data = to_dict(config)
    if data["tracking"].get("uri"):
        data["tracking"]["uri"] = redact(data["tracking"]["uri"])
    return data


def _task_name(config: Config) -> str:
    if config.task.name == "nb201":
        return f"nb201-{config.task.dataset}"
    return config.task.name
