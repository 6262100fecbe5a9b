"""The Pareto front of a multi-objective search in its parent run.

What a search with ``search.objectives`` adds to its parent run (:mod:`rlnas.front` computes
it, this module writes it):

* ``search/hypervolume`` with every controller update (step = the update) and at the end,
  against the reference point logged as the param ``search.hypervolume_reference``;
* ``pareto_front.json`` and ``pareto_front.csv``: the non-dominated children (number, child
  run id, decisions, reward, each objective's value), best first by the first objective;
* ``plots/pareto_front.png``: every child of the first two objectives, the front
  highlighted;
* in ``--summary``, ``front``: ``[{number, run_id, objectives}]``.

:func:`read_front` reads ``pareto_front.json`` back (``rlnas final --pareto``).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rlnas import plots
from rlnas.errors import TrackingError
from rlnas.front import Member, front, hypervolume_of, reference_point, scored
from rlnas.objectives import Objective

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from rlnas.search import Search

FRONT_JSON = "pareto_front.json"
HYPERVOLUME = "search/hypervolume"


def with_hypervolume(search: Search, metrics: Mapping[str, float]) -> dict[str, float]:
    """A controller update's metrics, plus the hypervolume so far (multi-objective only)."""
    out = dict(metrics)
    if search.objectives:
        out[HYPERVOLUME] = hypervolume_of(search.trials, search.objectives)
    return out


def front_rows(search: Search, child_runs: Mapping[int, str]) -> list[dict[str, Any]]:
    """The front as plain rows (``pareto_front.json``)."""
    return [_row(m, search.objectives, child_runs) for m in front(search.trials, search.objectives)]


def _row(m: Member, objectives: Sequence[Objective], runs: Mapping[int, str]) -> dict[str, Any]:
    return {
        "number": m.trial.number,
        "run_id": runs.get(m.trial.number),
        "reward": m.trial.reward,
        "objectives": m.objectives(objectives),
        "decisions": dict(m.trial.architecture),
    }


def summary_front(search: Search | None, child_runs: Mapping[int, str]) -> list[dict] | None:
    """``front`` of ``--summary``: ``[{number, run_id, objectives}]`` (None: single objective)."""
    if search is None or not search.objectives:
        return None
    keys = ("number", "run_id", "objectives")
    return [{k: row[k] for k in keys} for row in front_rows(search, child_runs)]


def final_record(search: Search, child_runs: Mapping[int, str], folder: Path) -> dict[str, Any]:
    """Write the front's files into ``folder``; return the metrics and params to log."""
    objectives = search.objectives
    rows = front_rows(search, child_runs)
    Path(folder, FRONT_JSON).write_text(json.dumps(rows, indent=1) + "\n")
    flat = [
        {"number": r["number"], "run_id": r["run_id"], "reward": r["reward"], **r["objectives"]}
        for r in rows
    ]
    plots.write_csv(flat, Path(folder, "pareto_front.csv"))
    plot_front(search, Path(folder, "plots", "pareto_front.png"))
    reference = reference_point(search.trials, objectives)
    params = {"search.hypervolume_reference": _show(reference)}
    metrics = {HYPERVOLUME: hypervolume_of(search.trials, objectives, reference)}
    metrics["search/front_size"] = float(len(rows))
    return {"metrics": metrics, "params": params}


def _show(reference: Sequence[float] | None) -> str:
    return "none" if reference is None else ",".join(f"{v:.6g}" for v in reference)


def plot_front(search: Search, path: Path) -> Path:
    """PNG: every child on the first two objectives, the front highlighted."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # lazy, as rlnas.plots
    from matplotlib.figure import Figure

    objectives = search.objectives[:2]
    everyone = scored(search.trials, search.objectives)
    best = front(search.trials, search.objectives)
    fig = Figure(figsize=(6, 4.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.scatter(
        [m.values[0] for m in everyone],
        [m.values[1] for m in everyone],
        s=14,
        color="tab:blue",
        alpha=0.5,
        label="children",
    )
    pts = sorted((m.values[0], m.values[1]) for m in best)
    ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", color="tab:red", label="front")
    ax.set_xlabel(_label(objectives[0]))
    ax.set_ylabel(_label(objectives[1]))
    more = f" (first two of {len(search.objectives)})" if len(search.objectives) > 2 else ""
    ax.set_title(f"Pareto front: {len(best)} of {len(everyone)} children{more}")
    ax.grid(alpha=0.3)
    ax.legend(loc="best")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def _label(o: Objective) -> str:
    arrow = "higher is better" if o.maximize else "lower is better"
    return f"{o.name}" + (f" ({o.unit}, {arrow})" if o.unit else f" ({arrow})")


def read_front(client: MlflowClient, run_id: str) -> list[dict[str, Any]]:
    """The rows of a search's ``pareto_front.json``."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = client.download_artifacts(run_id, FRONT_JSON, tmp)
            return json.loads(Path(path).read_text())
        except Exception as exc:
            raise TrackingError(
                f"RUN_ID: search {run_id} has no readable {FRONT_JSON} ({exc}); was it a "
                "multi-objective search that finished?"
            ) from None
