"""MLflow records of a weight-sharing search: curves and one table, not thousands of runs.

A shared search rewards thousands of children in minutes; a child run each would swamp the
store and the UI. In shared mode the search command sets ``MLflowTracker.log_children`` to
False (the tracker then opens no child runs) and attaches :class:`SharedRunLog`, which
records on the parent run:

* per child, in batches of ``every`` (step = child number): ``shared/reward``,
  ``shared/best_so_far``, ``shared/train_loss``, ``shared/val_loss``, ``shared/train_accuracy``
  (the shared network's training curve); the controller's ``controller/*`` metrics per update
  stay with the tracker;
* at the end, ``shared_children.csv``: one row per sampled child (number, architecture hash,
  state, shared reward, shared metrics, controller step, decisions as JSON), readable in the
  UI and by ``pandas.read_csv``;
* the shared phase's end-of-search results, which the tracker logs under ``shared/``
  (``MLflowTracker.results_prefix``): ``shared/top_k.csv``, ``shared/top_k.md``,
  ``shared/best_architecture.json``, ``shared/plots/rewards.png`` and the metrics
  ``shared/children``, ``shared/best_reward``, ``shared/wall_seconds``, ...;
* :func:`log_rescored`: ``shared_rescored.csv``, the best children re-scored on the whole
  validation split with the shared weights, which of them were retrained and as which
  retrained child (``retrained_child``; the first of ``shared.retrain_trials`` children).

The children retrained from scratch afterwards are the search's children: ordinary child
runs, and the run's own ``top_k.csv``, ``best_architecture.json``, ``search/*`` metrics and
description are theirs, as after a normal search (:mod:`rlnas.shared_search`).
"""

from __future__ import annotations

import csv
import json
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mlflow.entities import Metric

CURVES = ("shared/train_loss", "shared/val_loss", "shared/train_accuracy")
TABLE = "shared_children.csv"
RESCORED = "shared_rescored.csv"


class SharedRunLog:
    """A search observer writing the shared children to the parent run of ``tracker``."""

    def __init__(self, tracker: Any, every: int = 100) -> None:
        self.tracker = tracker
        self.every = every
        self.seen = 0
        self._pending: list[Metric] = []
        self._best: float | None = None

    def search_started(self, search: Any) -> None:
        """A resumed search: queue the points of finished children the run lacks (those
        waiting in a batch when the process was killed)."""
        client, run_id = self.tracker.client, self.tracker.run_id
        if client is None or run_id is None or not search.trials:
            return
        logged = {m.step for m in client.get_metric_history(run_id, "shared/reward")}
        rewards = [t.reward for t in search.trials if t.reward is not None]
        self._best = max(rewards, default=None)
        for trial in search.trials:
            if trial.state.finished and trial.number not in logged:
                self._queue(trial)

    def trial_finished(self, search: Any, trial: Any) -> None:
        self.seen += 1
        self._queue(trial)
        if self.seen % self.every == 0:
            self.flush()

    def _queue(self, trial: Any) -> None:
        stamp = int((trial.finished_at or time.time()) * 1000)
        step = trial.number
        if trial.reward is not None:
            self._best = trial.reward if self._best is None else max(self._best, trial.reward)
            self._pending.append(Metric("shared/reward", trial.reward, stamp, step))
        if self._best is not None:
            self._pending.append(Metric("shared/best_so_far", self._best, stamp, step))
        for key in CURVES:
            if key in trial.metrics:
                self._pending.append(Metric(key, float(trial.metrics[key]), stamp, step))

    def flush(self) -> None:
        """Send the waiting metric points (MLflow takes at most 1,000 per batch)."""
        client, run_id = self.tracker.client, self.tracker.run_id
        if client is None or run_id is None:
            return
        while self._pending:
            batch, self._pending = self._pending[:1000], self._pending[1000:]
            client.log_batch(run_id, metrics=batch)

    def search_finished(self, search: Any, result: Any) -> None:
        self.flush()  # the table from the search's trials: a resumed search's are all there
        log_table(self.tracker, [row(t) for t in result.trials], TABLE)

    def search_crashed(self, search: Any, error: BaseException) -> None:
        self.flush()


def row(trial: Any) -> dict[str, Any]:
    """One line of the table: a sampled child and its shared reward."""
    out = {
        "child": trial.number,
        "hash": trial.architecture.hash,
        "state": trial.state.value,
        "reward": trial.reward,
        "controller_step": trial.controller_step,
    }
    out.update({k: trial.metrics.get(k) for k in ("shared/val_accuracy", *CURVES)})
    out["decisions"] = json.dumps(dict(trial.architecture), sort_keys=True)
    return out


def log_table(tracker: Any, rows: Sequence[Mapping[str, Any]], name: str) -> None:
    """Write ``rows`` as the CSV artifact ``name`` of the tracker's parent run."""
    if tracker.client is None or tracker.run_id is None or not rows:
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, name)
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        tracker.client.log_artifact(tracker.run_id, str(path))


def log_rescored(tracker: Any, rows: Sequence[Mapping[str, Any]], stamp: float) -> None:
    """``shared_rescored.csv`` and the metric ``shared/rescored_best`` on the parent run
    (at time ``stamp``, seconds: logging it again, as a resumed search does, adds nothing)."""
    log_table(tracker, rows, RESCORED)
    if rows and tracker.client is not None:
        best = max(float(r["rescored"]) for r in rows)
        ms = int(stamp * 1000)
        tracker.client.log_metric(tracker.run_id, "shared/rescored_best", best, timestamp=ms)
