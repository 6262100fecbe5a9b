"""The end of a search in its parent run: the summary, plots, tables and summary metrics.

:func:`summary` is what ``rlnas search --summary`` writes; :func:`log_results` logs, as the
search ends, ``plots/rewards.png``, ``top_k.csv``/``top_k.md``, ``best_architecture.json``,
the run's description (a short top-k table with links to the child runs,
``mlflow.note.content``), whatever the tracker's :class:`ArtifactWriter` s add (the zoo's
controller saver adds ``controller/``), the ``search/*`` metrics and the ``rlnas.stopped`` tags.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from rlnas import plots
from rlnas.tracking import conventions, front
from rlnas.tracking.records import log_batch
from rlnas.trial import TrialState

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from rlnas.search import Search, SearchResult


class ArtifactWriter(Protocol):
    """Adds files to a search's parent run as the search ends (``folder`` is logged as the
    run's artifacts after every writer wrote into it). It may be called again with a fresh
    folder when the store failed to take the first attempt."""

    def write_artifacts(
        self, folder: Path, search: Search, result: SearchResult, *, run_id: str | None, task: str
    ) -> None: ...


def summary(
    result: SearchResult,
    *,
    run_id: str | None,
    tracking_uri: str,
    experiment: str,
    experiment_id: str | None,
    status: str | None,
    child_runs: Mapping[int, str],
) -> dict[str, Any]:
    """Where the run is and what the search found (``--summary``)."""
    evaluated = [
        t
        for t in result.trials
        if t.cached_from is None and t.state in (TrialState.COMPLETE, TrialState.FAILED)
    ]
    best = result.best
    return {
        "run_id": run_id,
        "tracking_uri": tracking_uri,
        "experiment": experiment,
        "experiment_id": experiment_id,
        "status": status,
        "stopped": result.stopped,
        "message": result.message,
        "children": len(evaluated),
        "failed": result.failed,
        "cached": sum(t.cached_from is not None for t in result.trials),
        "killed": sum(t.state is TrialState.KILLED for t in result.trials),
        "best_reward": best.reward if best else None,
        "best_decisions": dict(best.architecture) if best else None,
        "best_child": best.number if best else None,
        "best_run_id": child_runs.get(best.number) if best else None,
        "cost_seconds": sum(t.cost for t in evaluated),
        "wall_seconds": result.wall_seconds,
    }


def log_results(
    client: MlflowClient,
    run_id: str,
    search: Search,
    result: SearchResult,
    evaluated: Mapping[str, Any],
    *,
    task: str,
    top_k: int,
    child_runs: Mapping[int, str],
    experiment_id: str = "0",
    writers: Sequence[ArtifactWriter] = (),
    timestamp: float | None = None,
    prefix: str = "",
) -> None:
    """Log the results' artifacts, metrics and tags on the parent run ``run_id``;
    ``evaluated`` is the search's :func:`summary`. A ``prefix`` (a weight-sharing search's
    shared phase: ``shared``) puts the plot and the tables in that folder and names the
    metrics ``<prefix>/children`` instead of ``search/children``, so that the search's own
    results, logged afterwards, do not replace them."""
    with tempfile.TemporaryDirectory() as tmp:
        own = Path(tmp, prefix)
        own.mkdir(exist_ok=True)
        title = f"{search.strategy.space.name} / {task} / {search.strategy.name}"
        plots.plot_rewards(result.trials, own / "plots" / "rewards.png", title)
        rows = plots.top_k_rows(result.trials, child_runs, top_k)
        plots.write_csv(rows, own / "top_k.csv")
        (own / "top_k.md").write_text(plots.markdown_table(rows))
        if result.best is not None:
            best = {"reward": result.best.reward, "run_id": evaluated["best_run_id"]}
            best.update(child=result.best.number, decisions=dict(result.best.architecture))
            (own / "best_architecture.json").write_text(json.dumps(best, indent=1))
        for writer in writers:
            writer.write_artifacts(Path(tmp), search, result, run_id=run_id, task=task)
        pareto = front.final_record(search, child_runs, Path(tmp)) if search.objectives else {}
        client.log_artifacts(run_id, tmp)
    name = prefix or "search"
    metrics = {
        f"{name}/{k}": float(evaluated[k])
        for k in ("children", "failed", "cached", "killed", "cost_seconds", "wall_seconds")
    }
    if result.best is not None:
        metrics[f"{name}/best_reward"] = float(result.best.reward)
    tags = {"rlnas.stopped": result.stopped, "rlnas.message": result.message[:5000]}
    title = f"{task} / {search.strategy.space.name} / {search.strategy.name}: top {top_k}"
    tags[conventions.NOTE] = conventions.note(rows, experiment_id=experiment_id, title=title)
    if evaluated["best_run_id"]:
        tags["rlnas.best_run_id"] = evaluated["best_run_id"]
    metrics.update(pareto.get("metrics", {}))
    params = pareto.get("params", {})
    log_batch(client, run_id, metrics=metrics, params=params, tags=tags, timestamp=timestamp)
