"""The steps of one final model of ``rlnas final``: open its run, train, score, record.

:mod:`rlnas.final_runs` runs them in order for each architecture of a :class:`Plan
<rlnas.final_runs.Plan>`; the Keras work is in :mod:`rlnas.final`, the MLflow writes in
:class:`~rlnas.tracking.final_recorder.FinalRecorder`::

    run_id = start(recorder, cfg, data, rank, child, decisions, seed)
    with run_ends_if_it_fails(recorder.client, run_id):
        model, epochs, seconds = train(recorder, run_id, blueprint, data, cfg.final, ...)
        model, report, metrics = score_model(model, data, cfg.final, folder)
        recorder.log_metrics(run_id, metrics)
        model_uri, version = record(recorder, run_id, model, report, folder, ...)
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rlnas.config import Config, FinalConfig
from rlnas.ensemble import view_average
from rlnas.final import FinalData, ScoreReport, accuracy, predict, score, train_final
from rlnas.tracking.conventions import INACTIVE
from rlnas.tracking.final_recorder import FinalRecorder, ends_if_it_fails
from rlnas.tracking.models import FINAL, ChildRecord
from rlnas.tracking.records import param_text

if TYPE_CHECKING:
    from mlflow import MlflowClient

Progress = Callable[[str], None]


def member_seed(seed: int, rank: int) -> int:
    """The training seed of final model ``rank`` of a search seeded ``seed``."""
    return int(np.random.SeedSequence([seed, 7919, rank]).generate_state(1)[0])


def start(
    recorder: FinalRecorder,
    cfg: Config,
    data: FinalData,
    rank: int,
    child: ChildRecord,
    decisions: Mapping[str, Any],
    seed: int,
) -> str:
    """Open the run of final model ``rank``: the decisions (``inactive`` as the child's run
    has them) and ``final.*`` settings as params, the child it retrains as tags, the data
    sets as inputs; returns the run id."""
    params = {k: v for k, v in child.params.items() if v == INACTIVE}
    params.update({k: param_text(v) for k, v in decisions.items()})
    params.update({f"final.{k}": json.dumps(v) for k, v in dataclasses.asdict(cfg.final).items()})
    params.update({"final.seed": str(seed), "final.fit": data.fit_description})
    tags = {
        "rlnas.rank": str(rank),
        "rlnas.child": str(child.number),
        "rlnas.child_run_id": child.run_id,
        "rlnas.architecture_hash": child.arch_hash,
        "rlnas.space": cfg.space,
        "rlnas.task": cfg.task.name,
        "rlnas.search_reward": repr(child.reward),
    }
    run_id = recorder.start(f"final-{rank}", FINAL, tags=tags, params=params)
    recorder.log_datasets(run_id, splits(data), task_label(cfg))
    return run_id


def task_label(cfg: Config) -> str:
    """The task's name, with the file's stem for a task read from a file or folder
    (``npz-sensors``): registered model names and data set names say which data it was."""
    if cfg.task.path:
        return f"{cfg.task.name}-{Path(cfg.task.path.rstrip('/')).stem}"
    return cfg.task.name


def space_label(cfg: Config) -> str:
    """The space's name as a registered model name may hold it (no ``/`` or ``:``): a
    built-in's name, else the import path's last module and attribute
    (``/home/me/search.py:build`` -> ``search.build``)."""
    module, sep, attr = cfg.space.rpartition(":")
    if not sep:
        return cfg.space
    stem = Path(module).stem if module.endswith(".py") else module.rpartition(".")[2]
    return f"{stem}.{attr}"


def splits(data: FinalData) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The splits final training used, by MLflow data set context."""
    out = {"training": (data.x_fit, data.y_fit)}
    if data.x_holdout is not None and data.y_holdout is not None:
        out["validation"] = (data.x_holdout, data.y_holdout)
    out["test"] = (data.x_test, data.y_test)
    return out


@contextlib.contextmanager
def run_ends_if_it_fails(client: MlflowClient, run_id: str) -> Iterator[None]:
    """End MLflow run ``run_id`` FAILED (KILLED on Ctrl-C) when the block raises, with a
    diverged training's message as a tag; free Keras's state either way."""
    # lazy: keras loads TensorFlow; `rlnas final` has it loaded by now, its --help must not
    import keras

    try:
        with ends_if_it_fails(client, run_id):
            yield
    finally:
        keras.backend.clear_session(free_memory=False)


def train(
    recorder: FinalRecorder,
    run_id: str,
    blueprint: Any,
    data: FinalData,
    f: FinalConfig,
    *,
    rank: int,
    seed: int,
    progress: Progress,
) -> tuple[Any, int, float]:
    """Train final model ``rank``, logging ``final/loss`` and ``final/accuracy`` per epoch
    and saying each epoch (and every new plan of a ``final.budget_seconds`` budget) to
    ``progress``; returns the model, the epochs it ran and the seconds it took."""
    start_t = time.time()
    announced = f.epochs  # the epochs planned, as last said

    def on_epoch(epoch: int, logs: dict[str, float], planned: int) -> None:
        nonlocal announced
        metrics = {f"final/{k}": v for k, v in logs.items() if k in ("loss", "accuracy")}
        recorder.log_metrics(run_id, metrics, step=epoch)
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

    model, curves = train_final(
        blueprint,
        data,
        epochs=f.epochs,
        schedule=f.schedule,
        seed=seed,
        on_epoch=on_epoch,
        budget_seconds=f.budget_seconds,
        label_smoothing=f.label_smoothing,
    )
    return model, len(curves.get("loss", [])), time.time() - start_t


def score_model(
    model: Any, data: FinalData, f: FinalConfig, folder: Path
) -> tuple[Any, ScoreReport, dict[str, float]]:
    """Test the trained model once; returns the model to ship (averaging test-time views
    if ``final.test_time_flip``/``shift`` ask for them), its report and its metrics. With a
    hold-out split, its class probabilities go to ``folder/holdout_probs.npy`` (a weighted
    ensemble's weights are fitted on them)."""
    views = {}  # test accuracy of fewer views, reported beside the model's, never chosen on
    if f.test_time_flip or f.test_time_shift:  # the model shipped averages views
        views["one_view"] = predict(model, data.x_test)
        if f.test_time_flip and f.test_time_shift:
            views["flip_only"] = predict(view_average(model), data.x_test)
        model = view_average(
            model, flip=f.test_time_flip, shift=f.test_time_shift, name=f"{model.name}_views"
        )
    report = score(predict(model, data.x_test), data.y_test, data.class_names)
    metrics = report.metrics()
    for label, probs in views.items():
        metrics[f"test/accuracy_{label}"] = accuracy(probs, data.y_test)
    if data.x_holdout is not None:
        probs = predict(model, data.x_holdout)
        np.save(folder / "holdout_probs.npy", probs)
        metrics["holdout/accuracy"] = accuracy(probs, data.y_holdout)
    return model, report, metrics


def record(
    recorder: FinalRecorder,
    run_id: str,
    model: Any,
    report: ScoreReport,
    folder: Path,
    *,
    title: str,
    architecture: Mapping[str, Any] | None,
    example: np.ndarray,
    registered_name: str | None,
    metrics: Mapping[str, float] = {},  # noqa: B006 (read only)
    rank: int | None = None,
    encoding: Mapping[str, Any] | None = None,
) -> tuple[str, str | None]:
    """Write the report, (for a single model) ``architecture.json`` and (for a table) its
    ``table_encoding.json`` into ``folder`` and log them; log the model once (with
    ``metrics`` attached to it), register it, and end the run FINISHED.
    ``folder/model.keras`` is a local copy for the session's ensemble. Returns the model URI
    and the registered version."""
    report.write(folder / "report", title)
    model.save(folder / "model.keras")
    files = []
    if architecture is not None:
        files.append(folder / "architecture.json")
        files[-1].write_text(json.dumps(dict(architecture), indent=1))
    if encoding is not None:
        files.append(folder / "table_encoding.json")
        files[-1].write_text(json.dumps(dict(encoding), indent=1))
    recorder.log_files(run_id, folders=[folder / "report"], files=files)
    return recorder.finish(run_id, model, example, registered_name, metrics=metrics, rank=rank)
