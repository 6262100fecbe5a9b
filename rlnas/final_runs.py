"""The work of ``rlnas final``: check a search and its config, then train, test, log and
register each final model, and the ensemble.

:func:`prepare` checks everything that can be checked (the store, the run id, the search's
config with the overrides, the data, every architecture) and returns a :class:`Plan`;
:func:`execute` then creates one MLflow run per final model (see
:mod:`rlnas.tracking.final_recorder` for the layout; the steps of one model are in
:mod:`rlnas.final_steps`) and returns a JSON-ready summary::

    plan = prepare(search_run_id, ["final.epochs=5"], "sqlite:///runs/mlflow.db")
    summary = execute(plan)
    summary["models"][0]["test_accuracy"], summary.get("ensemble")
"""

from __future__ import annotations

import dataclasses
import json
import logging
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rlnas import final_steps as steps
from rlnas.config import Config
from rlnas.ensemble import build_ensemble, fit_weights
from rlnas.errors import ChildFailure, ConfigError, FieldError
from rlnas.factory import make_space
from rlnas.final import (
    FinalData,
    RegressionReport,
    check_test_time_views,
    final_blueprint,
    final_data,
    predict,
    score,
)
from rlnas.tasks import load_splits
from rlnas.tracking.final_recorder import FinalRecorder
from rlnas.tracking.front import read_front
from rlnas.tracking.models import (
    ENSEMBLE,
    ChildRecord,
    SearchRecord,
    decode_decisions,
    get_run,
    read_search,
    resolve_run_id,
    search_config,
)
from rlnas.tracking.store import open_store

if TYPE_CHECKING:
    from mlflow import MlflowClient

log = logging.getLogger("rlnas.final")


@dataclass
class Plan:
    """Everything checked and ready: the search, config, data and the architectures."""

    uri: str
    client: MlflowClient
    search: SearchRecord
    cfg: Config
    data: FinalData
    members: list[tuple[ChildRecord, dict[str, Any], Any]]
    """Per architecture, best first: its child, its decisions and its blueprint."""
    model_name: str
    """Registered model name of the final models."""


def prepare(
    run_id: str,
    overrides: list[str],
    uri_arg: str | None = None,
    *,
    pareto: bool = False,
    max_latency_ms: float | None = None,
) -> Plan:
    """Check the store, the run, the config, the data and every architecture.

    ``pareto``: retrain the members of the search's Pareto front instead of the top k;
    ``max_latency_ms``: only the front's most accurate member within that latency."""
    uri, client = open_store(uri_arg)
    if run_id.startswith("models:/"):  # a registered final model: retrain its search
        final = get_run(client, resolve_run_id(client, run_id, uri), uri)
        run_id = final.data.tags.get("rlnas.search_run_id", final.info.run_id)
    search = read_search(client, run_id, uri)
    cfg = search_config(search, overrides)
    if pareto or max_latency_ms is not None:
        top = front_children(client, search, cfg, max_latency_ms)
    else:
        top = list(search.children[: cfg.final.top_k])
    if cfg.final.ensemble and len(top) < 2:
        raise ConfigError(
            f"final.ensemble: search {run_id} has {len(top)} completed architecture; an "
            "ensemble needs at least 2."
        )
    if len(top) < cfg.final.top_k and not pareto and max_latency_ms is None:
        log.warning("search %s has %d completed architectures; retraining all", run_id, len(top))
    task = load_splits(dataclasses.replace(cfg.task, train_subset=None))
    space = make_space(cfg, task.spec)
    check_test_time_views(cfg.final, cfg.task.name, task.spec)
    _check_regression(cfg, task.spec.task)
    members = []
    for child in top:
        decisions = decode_decisions(space, child)
        members.append((child, decisions, final_blueprint(space, decisions, cfg.final)))
    name = cfg.final.model_name or f"rlnas-{steps.task_label(cfg)}-{steps.space_label(cfg)}"
    data = final_data(task, cfg.final, seed=cfg.seed)
    return Plan(uri, client, search, cfg, data, members, name)


def front_children(
    client: MlflowClient, search: SearchRecord, cfg: Config, max_latency_ms: float | None
) -> list[ChildRecord]:
    """The children on the search's front (``pareto_front.json``), best first; with
    ``max_latency_ms`` the most accurate one whose latency objective is within it."""
    flag = "--pareto" if max_latency_ms is None else "--max-latency-ms"
    objectives = cfg.search.parsed_objectives
    if not objectives:
        raise ConfigError(
            f"{flag}: search {search.run_id} optimised one objective (search.objectives is "
            "empty), so it has no front; use --top-k."
        )
    rows = read_front(client, search.run_id)
    if max_latency_ms is not None:
        rows = [_within(rows, objectives, max_latency_ms, search.run_id)]
    by_run = {c.run_id: c for c in search.children}
    return [by_run[r["run_id"]] for r in rows if r.get("run_id") in by_run]


def _within(rows: list[dict], objectives, budget: float, run_id: str) -> dict:
    """The front row with the best first maximised objective and latency <= ``budget``."""
    latency = [o.name for o in objectives if o.name.partition(":")[0] == "latency"]
    if not latency:
        raise ConfigError(
            f"--max-latency-ms: search {run_id} has no latency objective (its objectives: "
            f"{', '.join(o.name for o in objectives)})."
        )
    if not (budget > 0 and np.isfinite(budget)):
        raise ConfigError(f"--max-latency-ms: expected a number of ms > 0, got {budget!r}.")
    score = next(o.name for o in objectives if o.maximize)
    fits = [r for r in rows if r["objectives"][latency[0]] <= budget]
    if not fits:
        fastest = min(r["objectives"][latency[0]] for r in rows)
        raise ConfigError(
            f"--max-latency-ms: no member of the front of search {run_id} is within "
            f"{budget:g} ms; the fastest takes {fastest:.4g} ms."
        )
    return max(fits, key=lambda r: r["objectives"][score])


def execute(plan: Plan, progress: steps.Progress | None = None) -> dict[str, Any]:
    """Train, test, log and register every model of ``plan``; returns the summary.

    ``progress`` receives one line per model started and per epoch (the CLI prints them)."""
    cfg, f = plan.cfg, plan.cfg.final
    session = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
    recorder = FinalRecorder(plan.client, plan.uri, plan.search, session)
    started = time.time()
    summary: dict[str, Any] = {
        "search_run_id": plan.search.run_id,
        "tracking_uri": plan.uri,
        "session": session,
        "task": cfg.task.name,
        "space": cfg.space,
        "fit": plan.data.fit_description,
        "epochs": f.epochs,
        "models": [],
    }
    files, holdout_probs, with_files = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for rank, (child, decisions, blueprint) in enumerate(plan.members, 1):
            folder = Path(tmp, f"rank{rank}")
            try:
                record = _final_model(
                    plan, recorder, rank, child, decisions, blueprint, folder, progress or log.info
                )
            except ChildFailure as exc:
                record = {
                    "rank": rank,
                    "child": child.number,
                    "status": "FAILED",
                    "message": str(exc),
                }
                log.warning("final model %d failed: %s", rank, exc)
            summary["models"].append(record)
            if record["status"] == "FINISHED":
                files.append(folder / "model.keras")
                with_files.append(record)
                if plan.data.x_holdout is not None:
                    holdout_probs.append(np.load(folder / "holdout_probs.npy"))
        _crown(recorder, plan.model_name, summary["models"])
        if f.ensemble and len(files) >= 2:
            summary["ensemble"] = _ensemble(plan, recorder, files, with_files, holdout_probs, tmp)
    summary["wall_seconds"] = time.time() - started
    return summary


def _crown(recorder: FinalRecorder, name: str, models: list[dict[str, Any]]) -> None:
    """The alias ``champion`` on the best-ranked registered model of this session."""
    for record in models:  # by rank: the best search reward first
        if record.get("registered"):
            recorder.crown(name, record["registered"].rsplit("/", 1)[1])
            return


def _final_model(
    plan: Plan,
    recorder: FinalRecorder,
    rank: int,
    child: ChildRecord,
    decisions: dict[str, Any],
    blueprint: Any,
    folder: Path,
    progress: steps.Progress,
) -> dict[str, Any]:
    """Train, test, log and register final model ``rank``; returns its summary record."""
    cfg, f, data = plan.cfg, plan.cfg.final, plan.data
    seed = steps.member_seed(cfg.seed, rank)
    run_id = steps.start(recorder, cfg, data, rank, child, decisions, seed)
    budget = f" (at most: final.budget_seconds={f.budget_seconds:g})" if f.budget_seconds else ""
    progress(
        f"final model {rank}: child {child.number} (search reward {child.reward:.4f}), "
        f"{f.epochs} epochs{budget} on {data.fit_description}; MLflow run {run_id}"
    )
    with steps.run_ends_if_it_fails(plan.client, run_id):
        model, epochs, seconds = steps.train(
            recorder, run_id, blueprint, data, f, rank=rank, seed=seed, progress=progress
        )
        folder.mkdir(parents=True)
        params = float(model.count_params())
        model, report, metrics = steps.score_model(model, data, f, folder)
        metrics.update({"final/train_seconds": seconds, "final/epochs": float(epochs)})
        metrics.update({"final/params": params, "search/reward": child.reward})
        recorder.log_metrics(run_id, metrics)
        name = plan.model_name if f.register else None
        model_uri, version = steps.record(
            recorder,
            run_id,
            model,
            report,
            folder,
            title=f"final model {rank} (child {child.number}), test split",
            architecture={"child": child.number, "hash": child.arch_hash, "decisions": decisions},
            example=data.x_test[:4],
            registered_name=name,
            metrics=metrics,
            rank=rank,
            encoding=data.encoding,
        )
    return {
        "rank": rank,
        "child": child.number,
        "child_run_id": child.run_id,
        "search_reward": child.reward,
        "run_id": run_id,
        "status": "FINISHED",
        **summary_figures(report),
        "params": int(params),
        "epochs": epochs,  # after a final.budget_seconds cut
        "train_seconds": seconds,
        "model_uri": model_uri,
        "registered": None if version is None else f"{name}/{version}",
    }


def _ensemble(
    plan: Plan,
    recorder: FinalRecorder,
    files: list[Path],
    records: list[dict[str, Any]],
    holdout_probs: list[np.ndarray],
    tmp: str,
) -> dict[str, Any]:
    """Average the final models (weights fitted on the hold-out if asked), test, log."""
    # lazy: keras loads TensorFlow; `rlnas final`'s --help and prepare() need none
    import keras

    cfg = plan.cfg
    weights = np.full(len(files), 1.0 / len(files))
    if cfg.final.weighted:
        weights = fit_weights(holdout_probs, plan.data.y_holdout)
    members = [keras.saving.load_model(p, safe_mode=True) for p in files]
    model = build_ensemble(members, weights)
    params = {
        "members": json.dumps([r["run_id"] for r in records]),
        "weights": json.dumps([round(float(w), 6) for w in weights]),
        "weighted": json.dumps(cfg.final.weighted),
        "final.fit": plan.data.fit_description,
    }
    tags = {"rlnas.space": cfg.space, "rlnas.task": cfg.task.name, "rlnas.members": str(len(files))}
    run_id = recorder.start("final-ensemble", ENSEMBLE, tags=tags, params=params)
    recorder.log_datasets(run_id, steps.splits(plan.data), steps.task_label(cfg))
    with steps.run_ends_if_it_fails(plan.client, run_id):
        report = score(predict(model, plan.data.x_test), plan.data.y_test, plan.data.class_names)
        best = max(r["test_accuracy"] for r in records)
        metrics = {**report.metrics(), "ensemble/gain_over_best_member": report.accuracy - best}
        metrics["ensemble/gain_over_rank1"] = report.accuracy - records[0]["test_accuracy"]
        recorder.log_metrics(run_id, metrics)
        name = f"{plan.model_name}-ensemble" if cfg.final.register else None
        model_uri, version = steps.record(
            recorder,
            run_id,
            model,
            report,
            Path(tmp, "ensemble"),
            title=f"ensemble of {len(files)} final models, test split",
            architecture=None,
            example=plan.data.x_test[:4],
            registered_name=name,
            metrics=metrics,
            rank=1,
            encoding=plan.data.encoding,
        )
        if version is not None:
            recorder.crown(name, version)
    return {
        "run_id": run_id,
        "kind": "weighted" if cfg.final.weighted else "mean",
        "weights": [float(w) for w in weights],
        "test_accuracy": report.accuracy,
        "test_macro_f1": report.macro_f1,
        "gain_over_best_member": metrics["ensemble/gain_over_best_member"],
        "gain_over_rank1": metrics["ensemble/gain_over_rank1"],
        "model_uri": model_uri,
        "registered": None if version is None else f"{name}/{version}",
    }


def summary_figures(report: Any) -> dict[str, Any]:
    """A final model's test figures for the summary: accuracy and macro F1 of a classifier;
    MAE, RMSE and R² of a regression, whose accuracy and F1 are null (it has no classes)."""
    if isinstance(report, RegressionReport):
        return {
            "test_accuracy": None,
            "test_macro_f1": None,
            "test_mae": report.mae,
            "test_rmse": report.rmse,
            "test_r2": report.r2,
        }
    return {"test_accuracy": report.accuracy, "test_macro_f1": report.macro_f1}


def _check_regression(cfg: Config, task: str) -> None:
    """Final settings that need classes, refused for a regression before any training."""
    if task != "regression":
        return
    if cfg.final.label_smoothing:
        raise FieldError(
            "final.label_smoothing", cfg.final.label_smoothing, "0 for a regression (no classes)"
        )
    if cfg.final.ensemble:
        raise FieldError(
            "final.ensemble", True, "false for a regression (ensembles average classes)"
        )
