"""What a tracking store already holds: a search's child runs, earlier searches' rewards.

* :func:`reconcile` matches the child runs of a parent run with the trials of the search's
  saved state, so that a resumed search records each child exactly once: a child whose run
  is complete is not logged again, a run whose logging was cut short (still RUNNING) is
  completed in place, and a RUNNING run that matches no finished child is marked KILLED
  (tag ``rlnas.stale``), so that no run stays RUNNING for ever.
* :func:`earlier_rewards` reads the rewards of completed children of earlier searches with
  the same evaluator fingerprint, task and space (``search.cache_across_searches``).

Child runs are found by their tags: ``rlnas.child`` (the trial number) under
``mlflow.parentRunId``; runs of children killed because their search stopped carry
``rlnas.interrupted`` and are history, not records of a finished child.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rlnas.cache import CachedReward
from rlnas.trial import Trial, TrialState

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from rlnas.search import Search

log = logging.getLogger("rlnas.tracking")

RUN_STATUS = {TrialState.COMPLETE: "FINISHED", TrialState.FAILED: "FAILED"}
"""MLflow status of a finished child's run (KILLED otherwise)."""


def run_status(trial: Trial) -> str:
    return RUN_STATUS.get(trial.state, "KILLED")


def search_runs(client: MlflowClient, experiment_ids: list[str], query: str) -> Iterator[Any]:
    """Every run matching ``query``, oldest first, page by page."""
    token = None
    while True:
        page = client.search_runs(
            experiment_ids,
            query,
            max_results=1000,
            order_by=["attributes.start_time ASC"],
            page_token=token,
        )
        yield from page
        token = page.token
        if not token:
            return


def child_runs(client: MlflowClient, experiment_id: str, parent: str) -> list[Any]:
    return list(search_runs(client, [experiment_id], f"tags.`mlflow.parentRunId` = '{parent}'"))


@dataclass
class Reconciled:
    """How the child runs in the store stand against the saved trials."""

    logged: dict[int, str] = field(default_factory=dict)
    """Trial number -> its complete run (not to be logged again)."""
    partial: dict[int, str] = field(default_factory=dict)
    """Trial number -> its run left RUNNING mid-logging (to be completed in place)."""
    stale: list[str] = field(default_factory=list)
    """Runs marked KILLED: RUNNING, and no finished child of the saved state is theirs."""


def reconcile(client: MlflowClient, runs: Iterable[Any], trials: Iterable[Trial]) -> Reconciled:
    finished = {t.number: t for t in trials if t.state.finished}
    out = Reconciled()
    for run in runs:
        tags = run.data.tags
        if tags.get("rlnas.interrupted") == "true" or "rlnas.child" not in tags:
            continue
        number, run_id, status = int(tags["rlnas.child"]), run.info.run_id, run.info.status
        trial = finished.get(number)
        if trial is not None and number not in out.logged:
            same = tags.get("rlnas.status") == trial.state.value
            if status == run_status(trial) and same:
                out.logged[number] = run_id
                continue
            if status == "RUNNING" and same and number not in out.partial:
                out.partial[number] = run_id
                continue
        if status == "RUNNING":
            out.stale.append(run_id)
    for number in list(out.partial):
        if number in out.logged:  # completed by a later attempt
            out.stale.append(out.partial.pop(number))
    for run_id in out.stale:
        log.warning("child run %s was left RUNNING by a crash; marking it KILLED", run_id)
        client.set_tag(run_id, "rlnas.stale", "true")
        client.set_terminated(run_id, "KILLED")
    return out


def unrecorded_trials(trials: Iterable[Trial], logged: Mapping[int, str]) -> list[Trial]:
    """The finished trials without a complete run in ``logged``, in the order they finished."""
    missing = [t for t in trials if t.state.finished and t.number not in logged]
    missing.sort(key=lambda t: (t.finished_at or 0.0, t.number))
    return missing


def unrecorded_updates(
    client: MlflowClient, run_id: str, search: Search
) -> list[tuple[dict[str, float], int, float]]:
    """The controller updates of ``search`` (metrics, step, time) that parent run ``run_id``
    lacks, judged by the steps logged of the last update's first metric."""
    if not search.updates:
        return []
    key = next(iter(search.updates[-1][1]))
    steps = {m.step for m in client.get_metric_history(run_id, key)}
    out = []
    for n, (stamp, metrics) in enumerate(search.updates, start=1):
        step = int(metrics.get("controller/step", n))
        if step not in steps:
            out.append((dict(metrics), step, stamp))
    return out


def earlier_rewards(
    client: MlflowClient, *, fingerprint: str, task: str, space: str, exclude_parent: str | None
) -> dict[str, CachedReward]:
    """Architecture hash -> reward of the first completed child with this fingerprint, task
    and space in any experiment of the store (cached re-uses excluded)."""
    ids = [e.experiment_id for e in client.search_experiments()]
    if not fingerprint or not ids:
        return {}
    query = (
        f"tags.`rlnas.kind` = 'child' and tags.`rlnas.fingerprint` = '{fingerprint}' and "
        "tags.`rlnas.status` = 'COMPLETE' and attributes.status = 'FINISHED'"
    )
    out: dict[str, CachedReward] = {}
    for run in search_runs(client, ids, query):
        tags, metrics = run.data.tags, run.data.metrics
        if (
            tags.get("rlnas.task") != task
            or tags.get("rlnas.space") != space
            or tags.get("mlflow.parentRunId") == exclude_parent
            or "rlnas.cached_from" in tags
            or "reward" not in metrics
        ):
            continue
        final = {
            k[len("child/") :]: v
            for k, v in metrics.items()
            if k.startswith("child/") and k != "child/train_seconds"
        }
        entry = CachedReward(float(metrics["reward"]), run.info.run_id, final)
        out.setdefault(tags["rlnas.architecture_hash"], entry)
    if out:
        log.info("%d rewards of earlier searches are in the cache", len(out))
    return out
