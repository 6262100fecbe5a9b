"""A benchmark of search strategies recorded as ONE MLflow run (never one run per look-up).

``rlnas bench nb201`` decides what to record (params, summary metrics, artifacts) as plain
data; this module writes it::

    run_id = log_bench_run(
        uri, "rlnas-bench", run_name="bench-nb201-cifar10", tags={"rlnas.kind": "bench"},
        params={"bench.seeds": "300"}, metrics={"bench/wall_seconds": 61.2},
        dicts={"results.json": results}, texts={"table.md": table},
    )

The run ends FINISHED, or FAILED (and the error propagates) if any write fails.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from rlnas.tracking import connect, experiment_id

PARAM_LENGTH = 6000
"""Longest param value MLflow accepts (longer values are cut)."""
PARAMS_PER_BATCH = 100
METRICS_PER_BATCH = 500
"""MLflow's limits on one ``log_batch`` call."""


def log_bench_run(
    uri: str,
    experiment: str,
    *,
    run_name: str,
    tags: Mapping[str, str],
    params: Mapping[str, object],
    metrics: Mapping[str, float],
    dicts: Mapping[str, Any] | None = None,
    texts: Mapping[str, str] | None = None,
) -> str:
    """Create a run in ``experiment`` of the store at ``uri``, log everything at step 0 with
    one timestamp, and return the run's id. ``dicts`` are JSON artifacts, ``texts`` text
    artifacts, by artifact file name."""
    # MLflow loads here, when a run is written, so `rlnas bench --help` stays light
    from mlflow.entities import Metric, Param

    client = connect(uri)
    run = client.create_run(experiment_id(client, experiment, uri), run_name=run_name, tags=tags)
    run_id = run.info.run_id
    try:
        now = int(time.time() * 1000)
        items = [Param(k, str(v)[:PARAM_LENGTH]) for k, v in params.items()]
        for i in range(0, len(items), PARAMS_PER_BATCH):
            client.log_batch(run_id, params=items[i : i + PARAMS_PER_BATCH])
        points = [Metric(k, float(v), now, 0) for k, v in metrics.items()]
        for i in range(0, len(points), METRICS_PER_BATCH):
            client.log_batch(run_id, metrics=points[i : i + METRICS_PER_BATCH])
        for name, data in (dicts or {}).items():
            client.log_dict(run_id, data, name)
        for name, text in (texts or {}).items():
            client.log_text(run_id, text, name)
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id, "FINISHED")
    return run_id
