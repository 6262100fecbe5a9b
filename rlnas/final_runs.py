"""The work of ``rlnas final``: check a search and its config, then train, test, log and
register each final model, and the ensemble.

:func:`prepare` checks everything that can be checked (the store, the run id, the search's
config with the overrides, the data, every architecture) and returns a :class:`Plan`;
:func:`execute` then creates one MLflow run per final model (see
:mod:`rlnas.tracking.models` for the layout) and returns a JSON-ready summary::

    plan = prepare(search_run_id, ["final.epochs=5"], "sqlite:///runs/mlflow.db")
    summary = execute(plan)
    summary["models"][0]["test_accuracy"], summary.get("ensemble")
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rlnas.config import Config
    from rlnas.final import FinalData
    from rlnas.space import Space
    from rlnas.tasks import TaskSpec
    from rlnas.tracking.models import ChildRecord, SearchRecord

log = logging.getLogger("rlnas.final")


@dataclass
class Plan:
    """Everything checked and ready: the search, config, data and the architectures."""

    uri: str
    client: Any  # mlflow.MlflowClient
    search: SearchRecord
    cfg: Config
    data: FinalData
    members: list[tuple[ChildRecord, dict[str, Any], Any]]
    """Per architecture, best first: its child, its decisions and its blueprint."""
    model_name: str
    """Registered model name of the final models."""


def open_store(uri_arg: str | None) -> tuple[str, Any]:
    """Client of an existing store (a missing SQLite file is an error, not created)."""
    from rlnas.config import TrackingConfig
    from rlnas.errors import TrackingError
    from rlnas.tracking import connect, normalize_uri, sqlite_path

    uri = normalize_uri(uri_arg or TrackingConfig().resolved_uri())
    db = sqlite_path(uri)
    if db is not None and not db.is_file():
        raise TrackingError(
            f"--uri: no tracking store at {str(db)!r}; run `rlnas search` first or pass --uri."
        )
    return uri, connect(uri)


def search_config(search: SearchRecord, overrides: list[str]) -> Config:
    """The search's logged config with ``overrides`` applied, checked strictly."""
    from rlnas.config import Config, apply_override, from_dict
    from rlnas.errors import ConfigError

    data = json.loads(json.dumps(search.config))
    for item in overrides:
        apply_override(data, item)
    cfg = from_dict(Config, data)
    if cfg.space not in ("layers", "nasnet") or cfg.task.name == "nb201":
        raise ConfigError(
            f"RUN_ID: search {search.run_id} searched the {cfg.space!r} space of task "
            f"{cfg.task.name!r}, a lookup table; there is no Keras model to retrain."
        )
    return cfg


def make_space(cfg: Config, spec: TaskSpec) -> Space:
    """The Keras search space of ``cfg`` for inputs ``spec``."""
    if cfg.space == "nasnet":
        from rlnas.spaces.nasnet import NasnetSpace

        return NasnetSpace(cfg.nasnet, spec)
    from rlnas.spaces.layers import LayersSpace

    return LayersSpace(cfg.layers, spec)


def prepare(run_id: str, overrides: list[str], uri_arg: str | None = None) -> Plan:
    """Check the store, the run, the config, the data and every architecture."""
    from rlnas.errors import ConfigError
    from rlnas.final import check_test_time_views, final_data
    from rlnas.tasks import load_task
    from rlnas.tracking.models import decode_decisions, read_search

    uri, client = open_store(uri_arg)
    search = read_search(client, run_id, uri)
    cfg = search_config(search, overrides)
    top = list(search.children[: cfg.final.top_k])
    if cfg.final.ensemble and len(top) < 2:
        raise ConfigError(
            f"final.ensemble: search {run_id} has {len(top)} completed architecture; an "
            "ensemble needs at least 2."
        )
    if len(top) < cfg.final.top_k:
        log.warning("search %s has %d completed architectures; retraining all", run_id, len(top))
    task = load_task(dataclasses.replace(cfg.task, train_subset=None))
    space = make_space(cfg, task.spec)
    check_test_time_views(cfg.final, cfg.task.name, task.spec)
    members = []
    for child in top:
        decisions = decode_decisions(space, child)
        blueprint = space.blueprint(decisions)
        if cfg.final.augment is not None:  # final training's own augmentation
            training = dataclasses.replace(blueprint.training, augment=cfg.final.augment)
            blueprint = dataclasses.replace(blueprint, training=training)
        members.append((child, decisions, blueprint))
    name = cfg.final.model_name or f"rlnas-{cfg.task.name}-{cfg.space}"
    data = final_data(task, cfg.final, seed=cfg.seed)
    return Plan(uri, client, search, cfg, data, members, name)


def execute(plan: Plan, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train, test, log and register every model of ``plan``; returns the summary.

    ``progress`` receives one line per model started and per epoch (the CLI prints them)."""
    import numpy as np

    from rlnas.errors import ChildFailure

    cfg, f = plan.cfg, plan.cfg.final
    session = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
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
                    plan, session, rank, child, decisions, blueprint, folder, progress or log.info
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
        if f.ensemble and len(files) >= 2:
            summary["ensemble"] = _ensemble(plan, session, files, with_files, holdout_probs, tmp)
    summary["wall_seconds"] = time.time() - started
    return summary


def _final_model(
    plan: Plan, session, rank, child, decisions, blueprint, folder: Path, progress
) -> dict:
    """Train, test, log and register final model ``rank``; returns its summary record."""
    import numpy as np

    from rlnas.ensemble import view_average
    from rlnas.final import accuracy, predict, score, train_final
    from rlnas.tracking.models import FINAL, log_batch, log_keras_model_and_finish
    from rlnas.tracking.models import start_final_run as start

    cfg, f, client = plan.cfg, plan.cfg.final, plan.client
    seed = int(np.random.SeedSequence([cfg.seed, 7919, rank]).generate_state(1)[0])
    params = {**{k: v if isinstance(v, str) else json.dumps(v) for k, v in decisions.items()}}
    params.update({f"final.{k}": json.dumps(v) for k, v in dataclasses.asdict(f).items()})
    params.update({"final.seed": str(seed), "final.fit": plan.data.fit_description})
    tags = {
        "rlnas.rank": str(rank),
        "rlnas.child": str(child.number),
        "rlnas.child_run_id": child.run_id,
        "rlnas.architecture_hash": child.arch_hash,
        "rlnas.space": cfg.space,
        "rlnas.task": cfg.task.name,
        "rlnas.search_reward": repr(child.reward),
    }
    run_id = start(
        client,
        plan.search,
        name=f"final-{rank}",
        kind=FINAL,
        session=session,
        tags=tags,
        params=params,
    )
    budget = f" (at most: final.budget_seconds={f.budget_seconds:g})" if f.budget_seconds else ""
    progress(
        f"final model {rank}: child {child.number} (search reward {child.reward:.4f}), "
        f"{f.epochs} epochs{budget} on {plan.data.fit_description}; MLflow run {run_id}"
    )
    start_t = time.time()
    announced = f.epochs  # the epochs planned, as last said

    def on_epoch(epoch: int, logs: dict[str, float], planned: int) -> None:
        nonlocal announced
        metrics = {f"final/{k}": v for k, v in logs.items() if k in ("loss", "accuracy")}
        log_batch(client, run_id, metrics=metrics, step=epoch)
        if planned != announced:  # the budget's plan moved (down, or up again)
            announced = planned
            progress(
                f"  final model {rank}: {planned} of {f.epochs} epochs fit "
                f"final.budget_seconds={f.budget_seconds:g} ({time.time() - start_t:.0f} s "
                f"for {epoch + 1}); the learning rate decays over the budget"
            )
        progress(
            f"  final model {rank}: epoch {epoch + 1}/{planned} loss {logs.get('loss', 0):.4f} "
            f"accuracy {logs.get('accuracy', 0):.4f} ({time.time() - start_t:.0f} s)"
        )

    with _run_ends_if_it_fails(client, run_id):
        model, curves = train_final(
            blueprint,
            plan.data,
            epochs=f.epochs,
            schedule=f.schedule,
            seed=seed,
            on_epoch=on_epoch,
            budget_seconds=f.budget_seconds,
            label_smoothing=f.label_smoothing,
        )
        seconds = time.time() - start_t
        folder.mkdir(parents=True)
        params_count = float(model.count_params())
        views = {}  # test accuracy of fewer views, reported beside the model's, never chosen on
        if f.test_time_flip or f.test_time_shift:  # the model shipped averages views
            views["one_view"] = predict(model, plan.data.x_test)
            if f.test_time_flip and f.test_time_shift:
                views["flip_only"] = predict(view_average(model), plan.data.x_test)
            model = view_average(
                model, flip=f.test_time_flip, shift=f.test_time_shift, name=f"{model.name}_views"
            )
        report = score(predict(model, plan.data.x_test), plan.data.y_test, plan.data.class_names)
        metrics = {**report.metrics(), "final/train_seconds": seconds}
        for label, probs in views.items():
            metrics[f"test/accuracy_{label}"] = accuracy(probs, plan.data.y_test)
        metrics["final/epochs"] = float(len(curves.get("loss", [])))
        metrics["final/params"] = params_count
        metrics["search/reward"] = child.reward
        if plan.data.x_holdout is not None:
            probs = predict(model, plan.data.x_holdout)
            np.save(folder / "holdout_probs.npy", probs)
            metrics["holdout/accuracy"] = accuracy(probs, plan.data.y_holdout)
        log_batch(client, run_id, metrics=metrics)
        report.write(folder / "report", f"final model {rank} (child {child.number}), test split")
        model.save(folder / "model.keras")
        (folder / "architecture.json").write_text(
            json.dumps(
                {"child": child.number, "hash": child.arch_hash, "decisions": decisions}, indent=1
            )
        )
        client.log_artifacts(run_id, str(folder / "report"))
        client.log_artifact(run_id, str(folder / "model.keras"))
        client.log_artifact(run_id, str(folder / "architecture.json"))
        name = plan.model_name if f.register else None
        model_uri, version = log_keras_model_and_finish(
            plan.uri, run_id, model, plan.data.x_test[:4], name
        )
    return {
        "rank": rank,
        "child": child.number,
        "child_run_id": child.run_id,
        "search_reward": child.reward,
        "run_id": run_id,
        "status": "FINISHED",
        "test_accuracy": report.accuracy,
        "test_macro_f1": report.macro_f1,
        "params": int(metrics["final/params"]),
        "epochs": int(metrics["final/epochs"]),  # after a final.budget_seconds cut
        "train_seconds": seconds,
        "model_uri": model_uri,
        "registered": None if version is None else f"{name}/{version}",
    }


@contextlib.contextmanager
def _run_ends_if_it_fails(client, run_id: str) -> Iterator[None]:
    """End MLflow run ``run_id`` FAILED (KILLED on Ctrl-C) when the block raises, with a
    diverged training's message as a tag; free Keras's state either way."""
    import keras

    from rlnas.errors import ChildFailure
    from rlnas.tracking.models import end_run

    try:
        yield
    except BaseException as exc:
        end_run(client, run_id, "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
        if isinstance(exc, ChildFailure):
            client.set_tag(run_id, "rlnas.message", str(exc)[:5000])
        raise
    finally:
        keras.backend.clear_session(free_memory=False)


def _ensemble(plan: Plan, session, files, records, holdout_probs, tmp) -> dict:
    """Average the final models (weights fitted on the hold-out if asked), test, log."""
    import keras
    import numpy as np

    from rlnas.ensemble import build_ensemble, fit_weights
    from rlnas.final import predict, score
    from rlnas.tracking.models import ENSEMBLE, log_batch, log_keras_model_and_finish
    from rlnas.tracking.models import start_final_run as start

    cfg, client = plan.cfg, plan.client
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
    run_id = start(
        client,
        plan.search,
        name="final-ensemble",
        kind=ENSEMBLE,
        session=session,
        tags=tags,
        params=params,
    )
    with _run_ends_if_it_fails(client, run_id):
        report = score(predict(model, plan.data.x_test), plan.data.y_test, plan.data.class_names)
        best = max(r["test_accuracy"] for r in records)
        metrics = {**report.metrics(), "ensemble/gain_over_best_member": report.accuracy - best}
        metrics["ensemble/gain_over_rank1"] = report.accuracy - records[0]["test_accuracy"]
        log_batch(client, run_id, metrics=metrics)
        folder = Path(tmp, "ensemble")
        report.write(folder / "report", f"ensemble of {len(files)} final models, test split")
        model.save(folder / "model.keras")
        client.log_artifacts(run_id, str(folder / "report"))
        client.log_artifact(run_id, str(folder / "model.keras"))
        name = f"{plan.model_name}-ensemble" if cfg.final.register else None
        model_uri, version = log_keras_model_and_finish(
            plan.uri, run_id, model, plan.data.x_test[:4], name
        )
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
