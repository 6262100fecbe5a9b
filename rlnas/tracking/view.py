"""A saved view of the MLflow UI per space: the children by reward, the decisions as columns,
and a parallel-coordinates chart with the reward as its last axis.

MLflow's UI loads a view from the experiment tag ``mlflow.sharedViewState.<key>`` (what its
*Share* button writes) when the experiment page's URL carries ``viewStateShareKey=<key>``.
rlnas writes one such tag per space as a search starts, so that::

    http://127.0.0.1:5000/#/experiments/<id>/runs?viewStateShareKey=rlnas-layers
    http://127.0.0.1:5000/#/experiments/<id>/runs?viewStateShareKey=rlnas-layers&compareRunsMode=CHART

open the runs table (children of every search of that space, best first, with the search
settings, reward and decisions as columns) and the chart view.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlflow import MlflowClient

SHARED = "mlflow.sharedViewState."
"""The prefix of the experiment tags MLflow's UI reads shared views from."""
_SETTINGS = ("rlnas.strategy", "rlnas.controller_from", "rlnas.task")
_SECTION = "rlnas-reward-by-decisions"


def key(space: str) -> str:
    """The share key of the view of ``space``'s children."""
    return f"rlnas-{space}"


def state(space: str, decisions: Sequence[str]) -> dict:
    """The view state of ``space``: search facets and UI state as MLflow's UI keeps them."""
    columns = [f"tags.`{t}`" for t in _SETTINGS] + ["metrics.`reward`"]
    columns += [f"params.`{name}`" for name in decisions]
    chart = {
        "uuid": f"rlnas-parallel-{space}",
        "type": "PARALLEL",
        "runsCountToCompare": 100,
        "metricSectionId": _SECTION,
        "deleted": False,
        "isGenerated": False,
        "selectedParams": list(decisions)[:6],  # more axes than this do not fit the card
        "selectedMetrics": ["reward"],
    }
    return {
        "searchFilter": f"tags.`rlnas.kind` = 'child' and tags.`rlnas.space` = '{space}'",
        "orderByKey": "metrics.`reward`",
        "orderByAsc": False,
        "startTime": "ALL",
        "lifecycleFilter": "Active",
        "modelVersionFilter": "All Runs",
        "datasetsFilter": [],
        "selectedColumns": columns,
        "compareRunCharts": [chart],
        "compareRunSections": [
            {
                "uuid": _SECTION,
                "name": "reward by decisions (rlnas)",
                "display": True,
                "isReordered": False,
                "deleted": False,
                "isGenerated": False,
            }
        ],
        "isAccordionReordered": True,  # our section first; MLflow adds its own below it
        "hideEmptyCharts": True,
    }


def save(client: MlflowClient, experiment_id: str, space: str, decisions: Sequence[str]) -> str:
    """Write the view of ``space`` on the experiment; returns its share key."""
    name = key(space)
    client.set_experiment_tag(experiment_id, SHARED + name, json.dumps(state(space, decisions)))
    return name


def url(base: str, experiment_id: str, space: str, *, compare: bool = False) -> str:
    """The UI's address of the view (``base``: the server, e.g. ``http://127.0.0.1:5000``)."""
    tail = "&compareRunsMode=CHART" if compare else ""
    return (
        f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs?viewStateShareKey={key(space)}"
        + tail
    )
