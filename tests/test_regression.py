"""Regression end to end: the linear head, the metric as reward (its direction), the checks
that stop a config before any child trains, a real search through the CLI into SQLite, and
the test-split scoring of ``rlnas final``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from rlnas.config import ChildConfig, LayersConfig
from rlnas.errors import ConfigError, FieldError
from rlnas.evaluators.config import check_metric
from rlnas.task_config import TaskConfig
from rlnas.tasks import load_task

keras = pytest.importorskip("keras")
mlflow = pytest.importorskip("mlflow")
pd = pytest.importorskip("pandas")

SMALL = LayersConfig(
    num_layers=2,
    operations=("conv", "identity"),
    filters=(8,),
    activations=("relu",),
    learning_rates=(0.01,),
    batch_sizes=(32,),
    optimizers=("adam",),
    dropouts=(0.0,),
    weight_decays=(0.0,),
    augmentations=("none",),
)


def write_csv(folder, n: int = 120, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=n), rng.normal(size=n)
    kind = np.array(["x", "y"])[np.arange(n) % 2]
    target = 300 + 40 * a - 25 * b + np.where(kind == "x", 30, 0) + rng.normal(0, 2, n)
    path = folder / "house.csv"
    pd.DataFrame({"a": a, "b": b, "kind": kind, "value": target}).to_csv(path, index=False)
    return str(path)


@pytest.fixture(scope="module")
def house(tmp_path_factory):
    return load_task(
        TaskConfig(name="table", path=write_csv(tmp_path_factory.mktemp("h")), target="value")
    )


def first_architecture(space):
    from rlnas.strategies.random_search import RandomSearch

    return RandomSearch(space, seed=0).ask().architecture


# -- the head ---------------------------------------------------------------------------------
def test_regression_children_end_in_a_linear_head_in_target_units(house, tmp_path):
    from rlnas.keras_build import build_model, compile_model
    from rlnas.spaces.layers import LayersSpace

    space = LayersSpace(SMALL, house.spec)
    blueprint = space.blueprint(first_architecture(space))
    keras.utils.set_random_seed(0)
    model = build_model(blueprint, house.spec)
    assert model.output_shape == (None, 1)
    assert [layer.name for layer in model.layers[-2:]] == ["regressor", "regressor_scale"]
    assert model.get_layer("regressor").get_config()["activation"] == "linear"
    # an untrained head predicts in the targets' units (around their mean, not around 0)
    pred = model.predict(house.x_val, verbose=0)
    assert abs(pred.mean() - house.spec.target_mean[0]) < 3 * house.spec.target_std[0]
    assert house.spec.target_mean[0] > 5 * house.spec.target_std[0]  # so 0 is far off
    compile_model(model, blueprint.training, spec=house.spec, metric="mae")
    path = tmp_path / "m.keras"
    model.save(path)
    again = keras.saving.load_model(path, safe_mode=True)
    assert np.allclose(again.predict(house.x_val, verbose=0), pred, atol=1e-5)


# -- the reward ---------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize(("metric", "sign"), [("auto", -1), ("val_mae", -1), ("val_r2_score", 1)])
def test_reward_is_the_metric_with_its_direction(house, metric, sign):
    from rlnas.evaluators.keras_child import KerasEvaluator
    from rlnas.spaces.layers import LayersSpace

    space = LayersSpace(SMALL, house.spec)
    evaluator = KerasEvaluator(space, house, ChildConfig(epochs=2, metric=metric))
    outcome = evaluator.evaluate(first_architecture(space), seed=0, number=0)
    key = "val_loss" if metric == "auto" else metric
    assert outcome.reward == sign * outcome.metrics[key]
    assert {"loss", "mae", "mse", "val_loss", "val_mae", "val_mse"} <= set(outcome.metrics)
    assert "accuracy" not in outcome.metrics
    assert outcome.history[key][-1] == outcome.metrics[key]


def test_metrics_that_do_not_fit_the_task_are_refused_before_training():
    with pytest.raises(FieldError, match=r"`child.metric`: expected a regression metric: val_loss"):
        check_metric(ChildConfig(metric="val_accuracy"), "regression")
    with pytest.raises(FieldError, match=r"expected a classification metric.*val_mae needs a"):
        check_metric(ChildConfig(metric="val_mae"), "classification")
    with pytest.raises(ConfigError, match=r"'val_bogus' names no metric Keras knows"):
        check_metric(ChildConfig(metric="val_bogus", metric_mode="max"), "regression")
    known = ChildConfig(metric="val_log_cosh_error", metric_mode="min")  # Keras has it
    check_metric(known, "regression")
    with pytest.raises(FieldError, match=r"`metric_mode`: expected max or min for metric"):
        ChildConfig(metric="val_log_cosh_error")
    with pytest.raises(FieldError, match=r"`metric`: expected a validation metric.*val_auc"):
        ChildConfig(metric="auc")
    with pytest.raises(FieldError, match=r"`child.target_mmacs`: expected null for a regression"):
        check_metric(ChildConfig(target_mmacs=5.0), "regression")


def test_auto_metric_resolves_per_task():
    from rlnas.evaluators.config import reward_metric

    assert reward_metric(ChildConfig(), "classification").metric == "val_accuracy"
    resolved = reward_metric(ChildConfig(), "regression")
    assert resolved.metric == "val_loss" and not resolved.maximise
    assert reward_metric(ChildConfig(metric="val_auc"), "classification").maximise


# -- the CLI --------------------------------------------------------------------------------
def rlnas(args, cwd, uri):
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    return subprocess.run(
        [sys.executable, "-m", "rlnas", *args],
        capture_output=True, text=True, cwd=cwd, env=env, timeout=600,
    )  # fmt: skip


def search_config(folder, uri: str, task: str, child: str = "{epochs: 2}") -> str:
    path = folder / "c.yaml"
    path.write_text(
        textwrap.dedent(f"""
        seed: 0
        strategy: random
        task: {task}
        layers: {{num_layers: 2, operations: [conv, identity], filters: [8, 16],
                  activations: [relu], learning_rates: [0.01], batch_sizes: [32],
                  optimizers: [adam], dropouts: [0.0], weight_decays: [0.0],
                  augmentations: [none]}}
        child: {child}
        search: {{children: 3}}
        tracking: {{uri: "{uri}", experiment: regression}}
        """)
    )
    return str(path)


def runs(uri: str) -> list:
    client = mlflow.MlflowClient(uri)
    ids = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(ids) if ids else []


@pytest.mark.slow
def test_csv_regression_search_through_the_cli(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    csv = write_csv(tmp_path)
    task = f"{{name: table, path: '{csv}', target: value}}"
    proc = rlnas(
        ["search", "--config", search_config(tmp_path, uri, task, "{epochs: 3, metric: val_mae}"),
         "--summary", "s.json", "--no-progress"],
        tmp_path, uri,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "kind auto: regression (" in proc.stderr  # how the table was read is said
    summary = json.loads((tmp_path / "s.json").read_text())
    children = [r for r in runs(uri) if "mlflow.parentRunId" in r.data.tags]
    assert len(children) == 3
    for run in children:
        m = run.data.metrics
        assert m["reward"] == -m["child/val_mae"] and m["child/val_mse"] > 0
        assert "child/val_accuracy" not in m
    assert summary["best_reward"] == max(r.data.metrics["reward"] for r in children)
    # rlnas final scores the regression with its own figures (no accuracy: it has no classes)
    final = rlnas(
        ["final", summary["run_id"], "--top-k", "1", "--epochs", "1", "--summary", "f.json"],
        tmp_path, uri,
    )  # fmt: skip
    assert final.returncode == 0, final.stderr
    model = json.loads((tmp_path / "f.json").read_text())["models"][0]
    assert model["test_accuracy"] is None and model["test_macro_f1"] is None
    assert model["test_mae"] > 0 and model["test_rmse"] >= model["test_mae"]
    assert "test MAE" in final.stdout
    # rlnas export compares the LiteRT model's test MAE with the Keras model's (no accuracy)
    export = rlnas(["export", summary["run_id"], "--tflite", "--summary", "e.json"], tmp_path, uri)
    assert export.returncode == 0, export.stderr
    exported = json.loads((tmp_path / "e.json").read_text())
    assert exported["test_metric"] == "mae" and "keras_test_accuracy" not in exported
    assert exported["keras_test_mae"] == pytest.approx(model["test_mae"], rel=1e-4)
    assert exported["tflite_test_mae"] == pytest.approx(exported["keras_test_mae"], rel=1e-3)
    assert "test MAE" in export.stdout and "accuracy" not in export.stdout
    smoothed = rlnas(
        ["final", summary["run_id"], "--set", "final.label_smoothing=0.1"], tmp_path, uri
    )
    assert smoothed.returncode == 2
    lines = smoothed.stderr.strip().splitlines()
    assert len(lines) == 1 and "final.label_smoothing" in lines[0], smoothed.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    ("task", "child", "fragment"),
    [
        ("{{name: table, path: '{csv}', target: valeu}}", "{epochs: 1}",
         "task.target: 'valeu' is not a column of"),
        ("{{name: table, path: '{csv}', target: value}}", "{metric: val_accuracy}",
         "`child.metric`: expected a regression metric"),
    ],
)  # fmt: skip
def test_bad_regression_input_stops_before_any_run(tmp_path, task, child, fragment):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    mlflow.MlflowClient(uri).search_experiments()
    task = task.format(csv=write_csv(tmp_path))
    proc = rlnas(["search", "--config", search_config(tmp_path, uri, task, child)], tmp_path, uri)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rlnas: error: ") and fragment in lines[0]
    assert runs(uri) == []


# -- final scoring --------------------------------------------------------------------------------
def test_final_scores_a_regression_with_its_own_metrics(tmp_path):
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    from rlnas.final import accuracy, score

    rng = np.random.default_rng(0)
    y = rng.normal(size=(50, 1)).astype(np.float32)
    pred = y + rng.normal(0, 0.3, size=(50, 1))
    report = score(pred, y, [])
    assert report.mae == pytest.approx(mean_absolute_error(y, pred))
    assert report.mse == pytest.approx(mean_squared_error(y, pred))
    assert report.r2 == pytest.approx(r2_score(y, pred))
    assert set(report.metrics()) == {"test/mae", "test/mse", "test/rmse", "test/r2"}
    assert np.isnan(accuracy(pred, y))
    written = report.write(tmp_path / "report")
    assert json.loads(written[0].read_text())["examples"] == 50
