"""What :func:`rlnas.search` returns: the trials, the best one, and the best model.

::

    result.best                  # the best Trial (number, architecture, reward, metrics)
    result.top(3)                # the three best distinct architectures
    result.trials                # pandas DataFrame: number, state, reward, decisions, metrics
    result.run_id                # the MLflow parent run (rlnas ui, rlnas final RUN_ID)
    model = result.best_model()  # trained weights (kept from the child), or:
    model = result.best_model(retrain=True, epochs=30)  # retrained as rlnas final trains
"""

from __future__ import annotations

import dataclasses
from typing import Any

from rlnas.config import Config
from rlnas.errors import ConfigError
from rlnas.search import SearchResult as LoopResult
from rlnas.space import Space
from rlnas.trial import Trial, TrialState

WEIGHTS_FILE = "weights.weights.h5"
"""The artifact of a child's kept weights (as :mod:`rlnas.evaluators.keras_child` names it)."""


class SearchResult:
    """A finished (or stopped) search run by :func:`rlnas.search`."""

    def __init__(
        self, cfg: Config, result: LoopResult, summary: dict[str, Any], space: Space
    ) -> None:
        self.config = cfg
        self.result = result
        self.summary = summary
        self.space = space

    def __repr__(self) -> str:
        best = self.best
        shown = f"best reward {best.reward:.4f} (child {best.number})" if best else "no child done"
        return f"<SearchResult run {self.run_id}: {len(self.result.trials)} trials, {shown}>"

    @property
    def run_id(self) -> str:
        """The MLflow parent run of the search."""
        return str(self.summary["run_id"])

    @property
    def tracking_uri(self) -> str:
        return str(self.summary["tracking_uri"])

    @property
    def best(self) -> Trial | None:
        """The completed trial with the highest reward (``None`` if none completed)."""
        return self.result.best

    def top(self, k: int = 5) -> list[Trial]:
        """The ``k`` best completed trials of distinct architectures, best first."""
        done = [t for t in self.result.trials if t.state is TrialState.COMPLETE]
        done.sort(key=lambda t: (-(t.reward or 0.0), t.number))
        seen: set[str] = set()
        out = []
        for t in done:
            if t.architecture.hash not in seen:
                seen.add(t.architecture.hash)
                out.append(t)
        return out[:k]

    @property
    def trials(self):
        """Every trial as a pandas DataFrame: number, state, reward, one column per decision
        (missing where inactive), one ``metric/...`` column per final metric, message."""
        import pandas as pd

        rows = []
        for t in self.result.trials:
            row: dict[str, Any] = {"number": t.number, "state": t.state.value, "reward": t.reward}
            row.update(dict(t.architecture))
            row.update({f"metric/{k}": v for k, v in t.metrics.items()})
            row["cached_from"] = t.cached_from
            row["message"] = t.message
            rows.append(row)
        return pd.DataFrame(rows)

    def best_model(self, retrain: bool = False, epochs: int | None = None):
        """The best child as a Keras model: with its trained weights (kept with
        ``keep_weights``), or with ``retrain=True`` built afresh and trained on the training
        and validation splits as ``rlnas final`` trains (``final.epochs`` or ``epochs``, within
        ``final.budget_seconds``; final training's recipe and width as
        :func:`rlnas.final.final_blueprint` applies them, and ``final.label_smoothing``)."""
        best = self.best
        if best is None:
            raise ConfigError(f"best_model(): search {self.run_id} has no completed child.")
        if retrain:
            return self._retrain(best, epochs)
        weights = best.files.get(WEIGHTS_FILE) or self._download(best)
        if weights is None:
            raise ConfigError(
                f"best_model(): the weights of child {best.number} were not kept (search with "
                "keep_weights=True, or child.keep_weights: true); expected retrain=True to "
                "train the best architecture afresh."
            )
        return self._load(best, weights)

    def _load(self, best: Trial, weights: bytes):
        """The best child built from its record, its kept weights loaded, compiled."""
        import tempfile
        import warnings
        from pathlib import Path

        from rlnas.factory import load_task_data
        from rlnas.keras_build import build_model, compile_model

        blueprint = self.space.blueprint(best.architecture)
        model = build_model(blueprint, load_task_data(self.config).spec)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp, WEIGHTS_FILE)
            path.write_bytes(weights)
            with warnings.catch_warnings():  # the child's optimizer state is not restored
                warnings.filterwarnings("ignore", message="Skipping variable loading")
                model.load_weights(path)
        return compile_model(model, blueprint.training)

    def _download(self, best: Trial) -> bytes | None:
        """The kept weights from the child's MLflow run (a resumed search), if there."""
        run = self.summary.get("child_runs", {}).get(best.number) or self.summary.get(
            "child_runs", {}
        ).get(str(best.number))
        if not run:
            return None
        import tempfile
        from pathlib import Path

        from rlnas.tracking.store import download_artifacts

        with tempfile.TemporaryDirectory() as tmp:
            try:
                path = download_artifacts(f"runs:/{run}/{WEIGHTS_FILE}", self.tracking_uri, tmp)
            except Exception:  # not kept for this child
                return None
            return Path(path).read_bytes()

    def _retrain(self, best: Trial, epochs: int | None):
        from rlnas.factory import load_task_data
        from rlnas.final import final_blueprint, final_data, train_final

        f = self.config.final
        if epochs is not None:
            f = dataclasses.replace(f, epochs=epochs)
        data = final_data(load_task_data(self.config), f, seed=self.config.seed)
        blueprint = final_blueprint(self.space, best.architecture, f)
        model, _ = train_final(
            blueprint,
            data,
            epochs=f.epochs,
            schedule=f.schedule,
            seed=self.config.seed,
            budget_seconds=f.budget_seconds,
            label_smoothing=f.label_smoothing,
        )
        return model
