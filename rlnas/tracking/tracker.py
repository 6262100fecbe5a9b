"""The MLflow tracker: one parent run per search, one nested run per child.

:class:`MLflowTracker` is an observer of :class:`~rlnas.search.Search`; it talks to the
store through ``MlflowClient`` with explicit run ids (never the fluent "active run" stack),
so that only the search loop's driver writes and parallel executors need no access to it.

The parent run ``search-<space>-<task>-<strategy>[-warm|-cold]-<id4>`` (the names follow
:mod:`~rlnas.tracking.conventions`) holds the resolved config (``config.yaml``
and flattened params), the space (``space.json``) and tags ``rlnas.*``; per update the
``controller/*`` metrics (step = update number); per child ``child/reward`` and
``search/best_so_far`` (step = child number); at the end what
:mod:`~rlnas.tracking.results` logs (with the top-k table as the run's description) and
the tracker's :class:`~rlnas.tracking.results.ArtifactWriter` s add (the zoo's
:class:`~rlnas.zoo.ControllerSaver`: ``controller/``). Status FINISHED only when the search
ended normally (a weight-sharing search's shared phase leaves it RUNNING for its retrained
children: :attr:`MLflowTracker.keep_running`, :mod:`rlnas.shared_search`). Child runs are
written by :mod:`~rlnas.tracking.records` (the README's "MLflow layout" section lists both).

Each child is recorded exactly once, after the search's checkpoint holds it: events wait in
an outbox, in order, until the store has them, written in the background while the next
child trains (:mod:`~rlnas.tracking.writer`); the search's end waits for every event before
the parent run is closed. A store that stops answering mid-search does not stop the search
until ``patience`` seconds have passed; then it stops with its state saved, and ``rlnas
resume`` records the rest. Writes are idempotent (fixed timestamps, a half-written child run
is completed in place), and a resumed search first looks up what the store already holds
(:mod:`rlnas.tracking.history`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import rlnas
from rlnas import plots
from rlnas.config import Config, to_dict
from rlnas.errors import TrackingError
from rlnas.tracking import conventions, front, history, results, view
from rlnas.tracking.final_recorder import log_datasets
from rlnas.tracking.outbox import Outbox, transient
from rlnas.tracking.records import ChildRuns, describe_run, log_batch
from rlnas.tracking.results import ArtifactWriter
from rlnas.tracking.store import (
    DEFAULT_URI,
    connect,
    experiment_id,
    first_line,
    normalize_uri,
    redact,
)
from rlnas.tracking.writer import Writer
from rlnas.trial import Trial

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from rlnas.cache import CachedReward
    from rlnas.search import Search, SearchResult

log = logging.getLogger("rlnas.tracking")

_STATUS = {
    "budget": "FINISHED",
    "exhausted": "FINISHED",
    "converged": "FINISHED",
    "aborted": "FAILED",
}


class MLflowTracker:
    """Records a search in MLflow (an observer of :class:`~rlnas.search.Search`).

    Call :meth:`connect` before any work so that an unreachable store stops the command
    first; the parent run is created when the search starts. :meth:`abort` ends whatever
    is still open when the search itself crashed. ``artifacts`` add files to the parent
    run as the search ends.
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
        artifacts: Sequence[ArtifactWriter] = (),
    ) -> None:
        self.tracking_uri = normalize_uri(uri)
        self.experiment = experiment
        self.config = config
        self.task = task or (_task_name(config) if config is not None else "custom")
        self.top_k = top_k
        self.artifacts = list(artifacts)
        self.client: MlflowClient | None = None
        self.experiment_id: str | None = None
        self.run_id: str | None = None
        self.status: str | None = None  # the parent run's final MLflow status
        self.datasets: tuple[Mapping[str, tuple[Any, Any]], str] | None = None
        """The search's data as (split -> ``(x, y)``, source name): logged as the parent run's
        inputs when it starts (the test split is not the search's: final runs log it)."""
        self.log_children = True
        """Open a child run per child; False in shared mode, where
        :class:`rlnas.tracking.shared_log.SharedRunLog` records a table instead."""
        self.results_prefix = ""
        """Folder of the end-of-search tables and name of its ``<prefix>/*`` metrics (''
        means the run's root and ``search/*``); a weight-sharing search's shared phase logs
        under ``shared`` (:mod:`rlnas.shared_search`)."""
        self.keep_running = False
        """Leave the parent run RUNNING when the search ends normally (``status`` is then
        RUNNING): a weight-sharing search retrains its best children into it next."""
        self.resumed = False
        self.outbox = Outbox(patience)  # what the store does not have yet, in order
        self._children: ChildRuns | None = None  # the child runs, once the parent exists
        self._search: Search | None = None
        self._updates = 0
        self._open = False
        self._writer = Writer(self.outbox, self._record, self._gone)

    @classmethod
    def from_config(cls, config: Config, artifacts: Sequence[ArtifactWriter] = ()) -> MLflowTracker:
        t = config.tracking
        return cls(
            t.resolved_uri(),
            t.experiment,
            config=config,
            patience=t.retry_seconds,
            artifacts=artifacts,
        )

    @property
    def child_runs(self) -> dict[int, str]:
        """Trial number -> its complete child run."""
        return self._children.logged if self._children is not None else {}

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

    def earlier_rewards(self, search: Search) -> dict[str, CachedReward]:
        """Rewards of earlier searches' children with ``search``'s fingerprint, task and
        space (``search.cache_across_searches``)."""
        assert self.client is not None
        return history.earlier_rewards(
            self.client,
            fingerprint=search.fingerprint,
            task=self.task,
            space=search.strategy.space.name,
            exclude_parent=self.run_id,
        )

    # -- observer events -------------------------------------------------------------------
    def search_started(self, search: Search) -> None:
        plots.load_backend()  # the results' plot is drawn as the search ends
        self.connect()
        self._search = search
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
        tags = {
            "rlnas.kind": "search",
            "rlnas.space": space.name,
            "rlnas.task": self.task,
            "rlnas.strategy": search.strategy.name,
            "rlnas.seed": str(search.seed),
            "rlnas.version": rlnas.__version__,
            "mlflow.source.name": "rlnas",
            "mlflow.user": conventions.user(),
            **self._settings(search),
        }
        if search.fingerprint:
            tags["rlnas.fingerprint"] = search.fingerprint
        run = self.client.create_run(self.experiment_id, tags=tags)
        self.run_id = run.info.run_id
        self._children = self._child_runs(search)
        self._open = True
        save = getattr(search, "save", None)
        if save is not None:  # from now on a crash leaves a run that `rlnas resume` continues
            save()
        self._label(search)
        describe_run(self.client, self.run_id, search, self._logged_config(), logged={})
        if self.datasets is not None:
            log_datasets(self.client, self.run_id, *self.datasets)
        log.info("MLflow parent run %s in %s", self.run_id, self.tracking_uri)

    def _label(self, search: Search) -> None:
        """The parent run's name and the experiment's saved view of the space's children
        (:mod:`.conventions`, :mod:`.view`); written again by a resume (idempotent)."""
        assert self.client is not None and self.run_id and self.experiment_id
        space = search.strategy.space
        name = conventions.search_name(
            space=space.name,
            task=self.task,
            strategy=search.strategy.name,
            warm=conventions.is_warm(self.config, search.strategy.name),
            run_id=self.run_id,
        )
        self.client.update_run(self.run_id, name=name)
        view.save(self.client, self.experiment_id, space.name, [d.name for d in space.signature])

    def _settings(self, search: Search) -> dict[str, str]:
        return conventions.settings_tags(
            self.config,
            strategy=search.strategy.name,
            task=self.task,
            space=search.strategy.space.name,
        )

    def _child_runs(self, search: Search) -> ChildRuns:
        assert self.client is not None and self.experiment_id and self.run_id
        return ChildRuns(
            self.client, self.experiment_id, self.run_id, self.task, self._settings(search)
        )

    def trial_finished(self, search: Search, trial: Trial) -> None:
        if not self.log_children:
            return
        self.outbox.put("trial", trial)
        self._writer.kick()

    def controller_updated(self, search: Search, metrics: Mapping[str, float]) -> None:
        self._updates += 1
        step = int(metrics.get("controller/step", self._updates))
        stamp = search.updates[-1][0] if search.updates else time.time()
        self.outbox.put("update", front.with_hypervolume(search, metrics), step, stamp)
        self._writer.kick()

    def search_finished(self, search: Search, result: SearchResult) -> None:
        for trial in result.trials:  # children that were in flight when it stopped
            if trial.number in search.interrupted and self.log_children:
                self.outbox.put("trial", trial)
        self._writer.stop()
        self.outbox.put("results", result, time.time())
        status = _STATUS.get(result.stopped, "KILLED")
        hold = status == "FINISHED" and self.keep_running
        if not hold:
            self.outbox.put("end", status)
        backoff = self.outbox.backoff
        until = time.monotonic() + max(0.0, backoff.patience - backoff.down_for)
        try:
            self._writer.drain(until=until)
        except BaseException as exc:
            self.abort("KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
            raise
        if self.outbox:  # the store is gone: the parent run waits for `rlnas resume`
            self._open = False
            raise TrackingError(self._gone())
        if hold:
            self.status = "RUNNING"

    def search_crashed(self, search: Search, error: BaseException) -> None:
        """The search raised (not a stop it handles): finish the writes in hand, so that
        nothing is written behind the caller's back (a resume in this process would record
        those children twice), and end the parent run FAILED (KILLED on Ctrl-C)."""
        self.abort("KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED")

    # -- writing the outbox's events -------------------------------------------------------
    def _record(self, event: tuple) -> None:
        """Write one event of the outbox (called by the writer, in order)."""
        assert self.client is not None and self.run_id is not None
        assert self._children is not None and self._search is not None
        kind = event[0]
        if kind == "trial":
            self._children.log(self._search, event[1])
        elif kind == "update":
            _, metrics, step, stamp = event
            log_batch(self.client, self.run_id, metrics=metrics, step=step, timestamp=stamp)
        elif kind == "results":
            _, result, stamp = event
            results.log_results(
                self.client,
                self.run_id,
                self._search,
                result,
                self.summary(result),
                task=self.task,
                top_k=self.top_k,
                child_runs=self.child_runs,
                experiment_id=self.experiment_id or "0",
                writers=self.artifacts,
                timestamp=stamp,
                prefix=self.results_prefix,
            )
        else:
            self._end(event[1])

    def _gone(self) -> str:
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
        self._children = self._child_runs(search)
        self.client.update_run(self.run_id, status="RUNNING")
        self._open = True
        self._label(search)
        logged = run.data.params
        describe_run(self.client, self.run_id, search, self._logged_config(), logged=logged)
        found = history.Reconciled()  # shared mode: the search's children have no runs
        if self.log_children:
            runs = history.child_runs(self.client, self.experiment_id, self.run_id)
            found = history.reconcile(self.client, runs, search.trials)
        self._children.logged.update(found.logged)
        self._children.partial.update(found.partial)
        done = [t for t in search.trials if t.number in found.logged]
        self._children.best = max((t.reward for t in done if t.reward is not None), default=None)
        missing = history.unrecorded_trials(search.trials, found.logged)
        missing = missing if self.log_children else []  # shared mode: SharedRunLog has them
        for trial in missing:
            self.outbox.put("trial", trial)
        for metrics, step, stamp in history.unrecorded_updates(self.client, self.run_id, search):
            self.outbox.put("update", metrics, step, stamp)
        self._updates = len(search.updates)
        log.info(
            "resuming MLflow run %s: %d children recorded, %d to record",
            self.run_id,
            len(found.logged),
            len(missing),
        )
        self._writer.drain()

    # -- ending ----------------------------------------------------------------------------
    def __enter__(self) -> MLflowTracker:
        """``with MLflowTracker(...) as tracker:`` connects now and, should the search raise,
        ends its parent run FAILED (KILLED on Ctrl-C) instead of leaving it RUNNING."""
        self.connect()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort("KILLED" if issubclass(exc_type, KeyboardInterrupt) else "FAILED")

    def end(self, status: str = "FINISHED", *, by: MLflowTracker | None = None) -> None:
        """End the parent run :attr:`keep_running` left RUNNING with ``status``; given ``by``,
        another tracker of the same run that ended it, take its status instead."""
        if by is not None:
            self.status, self._open = by.status, False
        elif self._open:
            self._end(status)

    def abort(self, status: str = "FAILED") -> None:
        """End the parent run with ``status`` if it is still open (the search crashed)."""
        try:
            self._writer.stop()
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
        out = results.summary(
            result,
            run_id=self.run_id,
            tracking_uri=self.tracking_uri,
            experiment=self.experiment,
            experiment_id=self.experiment_id,
            status=self.status,
            child_runs=self.child_runs,
        )
        pareto = front.summary_front(self._search, self.child_runs)
        if pareto is not None:
            out["front"] = pareto
        return out

    def _logged_config(self) -> dict[str, Any] | None:
        """The resolved config as logged: plain data, no password in the tracking URI."""
        if self.config is None:
            return None
        return _loggable(self.config)


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
