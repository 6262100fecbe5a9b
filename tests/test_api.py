"""``rlnas.search(build, x, y)``: the Python entry point, against the CLI and on arrays."""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest
import user_models

import rlnas
from rlnas import cli
from rlnas.errors import ConfigError

mlflow = pytest.importorskip("mlflow")

SETTINGS = {
    "task": {"name": "digits", "train_subset": 100},
    "child": {"epochs": 1, "steps_per_epoch": 2},
    "controller": {"batch_size": 2},
}


def test_the_entry_point_and_the_cli_find_the_same_children(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    yaml = f"""\
    seed: 3
    task: {{name: digits, train_subset: 100}}
    space: user_models:build
    strategy: reinforce
    child: {{epochs: 1, steps_per_epoch: 2}}
    controller: {{batch_size: 2}}
    search: {{children: 4}}
    tracking: {{uri: "{uri}", experiment: cli}}
    """
    (tmp_path / "c.yaml").write_text(textwrap.dedent(yaml))
    out = tmp_path / "s.json"
    assert cli.main(["search", "-c", str(tmp_path / "c.yaml"), "--summary", str(out)]) == 0
    by_cli = json.loads(out.read_text())
    result = rlnas.search(
        user_models.build,
        config=SETTINGS,
        children=4,
        seed=3,
        tracking_uri=uri,
        experiment="api",
        progress=False,
    )
    client = mlflow.MlflowClient(uri)

    def children(run_id):
        exp = client.get_run(run_id).info.experiment_id
        runs = client.search_runs([exp], f"tags.mlflow.parentRunId = '{run_id}'")
        runs.sort(key=lambda r: int(r.data.tags["rlnas.child"]))
        return [(r.data.params, r.data.metrics["reward"]) for r in runs]

    assert children(result.run_id) == children(by_cli["run_id"])
    assert result.best.reward == by_cli["best_reward"]
    table = result.trials
    assert list(table["number"]) == [0, 1, 2, 3]
    assert {"state", "reward", "depth", "units_0", "metric/val_accuracy"} <= set(table.columns)
    assert [t.reward for t in result.top(2)] == sorted(table["reward"], reverse=True)[:2]


def test_arrays_in_the_best_model_out_trained(tmp_path):
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images / 16.0).astype("float32")[..., None]
    y = digits.target
    result = rlnas.search(
        user_models.build,
        x[:200],
        y[:200],
        validation_data=(x[200:300], y[200:300]),
        strategy="random",
        children=2,
        epochs=2,
        tracking_uri=f"sqlite:///{tmp_path}/mlflow.db",
        progress=False,
    )
    model = result.best_model()
    scores = model.evaluate(x[200:300], y[200:300], verbose=0, return_dict=True)
    assert scores["accuracy"] == pytest.approx(result.best.reward, abs=1e-6)  # the kept weights
    retrained = result.best_model(retrain=True, epochs=1)
    assert retrained.output_shape == (None, 10)
    assert len(result.trials) == 2 and result.config.task.name == "npz"


def test_a_tf_data_dataset_is_read_into_arrays():
    import tensorflow as tf

    from rlnas.api import _arrays

    x = np.arange(20, dtype="float32").reshape(10, 2)
    y = np.arange(10) % 2
    for ds in (
        tf.data.Dataset.from_tensor_slices((x, y)),
        tf.data.Dataset.from_tensor_slices((x, y)).batch(3),
    ):
        xs, ys = _arrays(ds, None, "x")
        assert np.array_equal(xs, x) and np.array_equal(ys, y)


def test_keep_weights_false_asks_for_a_retrain(tmp_path):
    result = rlnas.search(
        user_models.build,
        config=SETTINGS,
        strategy="random",
        children=1,
        keep_weights=False,
        tracking_uri=f"sqlite:///{tmp_path}/mlflow.db",
        progress=False,
    )
    with pytest.raises(ConfigError, match="were not kept"):
        result.best_model()


def rows(a) -> set[bytes]:
    return {r.tobytes() for r in np.asarray(a, dtype="float32").reshape(len(a), -1)}


def test_final_trains_and_tests_on_the_splits_the_search_used(tmp_path):
    from rlnas import final_runs
    from rlnas.factory import load_task_data

    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 6)).astype("float32")  # distinct rows, to follow them
    y = (x[:, 0] > 0).astype(int)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    common = dict(strategy="random", children=1, epochs=1, tracking_uri=uri, progress=False)
    given = rlnas.search(
        user_models.build,
        x[:200],
        y[:200],
        validation_data=(x[200:300], y[200:300]),
        test_data=(x[300:], y[300:]),
        **common,
    )
    plan = final_runs.prepare(given.run_id, [], uri)
    assert rows(plan.data.x_test) == rows(x[300:])  # the user's test split
    assert rows(plan.data.x_fit) == rows(x[:300])  # training + the user's validation
    # no test data: a test_fraction of x is held out from the search and final training,
    # and the validation rows that chose the architecture never test it
    held = rlnas.search(
        user_models.build, x[:200], y[:200], validation_data=(x[200:300], y[200:300]), **common
    )
    searched = load_task_data(held.config)
    assert rows(searched.x_val) == rows(x[200:300]) and len(searched.x_train) == 170
    plan = final_runs.prepare(held.run_id, [], uri)
    assert rows(plan.data.x_test) == rows(searched.x_test) and len(plan.data.x_test) == 30
    assert rows(plan.data.x_test) <= rows(x[:200])
    assert not rows(plan.data.x_test) & rows(searched.x_train)
    assert rows(plan.data.x_fit) == rows(searched.x_train) | rows(x[200:300])
    summary = rlnas.final(held.run_id, epochs=1, top_k=1, tracking_uri=uri)
    assert 0.0 <= summary["models"][0]["test_accuracy"] <= 1.0


def test_a_task_given_to_search_merges_into_the_configs_task(tmp_path):
    result = rlnas.search(
        user_models.build,
        config={**SETTINGS, "task": {"name": "digits", "train_subset": 100, "split_seed": 3}},
        task={"validation_fraction": 0.2},
        strategy="random",
        children=1,
        tracking_uri=f"sqlite:///{tmp_path}/mlflow.db",
        progress=False,
    )
    task = result.config.task
    assert (task.name, task.train_subset, task.split_seed) == ("digits", 100, 3)  # kept
    assert task.validation_fraction == 0.2  # given
    named = rlnas.search(
        user_models.build,
        config=SETTINGS,
        task="digits",
        strategy="random",
        children=1,
        tracking_uri=f"sqlite:///{tmp_path}/mlflow.db",
        progress=False,
    )
    assert named.config.task.train_subset == 100


SCRIPT = """\
import keras


def build(d, spec):
    inputs = keras.Input(spec.input_shape)
    x = keras.layers.Dense(d.choice("units", [4, 8]))(keras.layers.Flatten()(inputs))
    return keras.Model(inputs, keras.layers.Dense(spec.num_classes, activation="softmax")(x))


if __name__ == "__main__":
    raise SystemExit("the script's main block must not run when rlnas loads it")
"""


def test_a_scripts_own_build_is_named_by_its_file(tmp_path, monkeypatch):
    import types

    from rlnas import registry
    from rlnas.api import _named

    script = tmp_path / "my_search.py"
    script.write_text(SCRIPT)
    main = types.ModuleType("__main__")
    main.__file__ = str(script)
    exec(compile(SCRIPT.split("if __name__")[0], str(script), "exec"), main.__dict__)
    monkeypatch.setitem(__import__("sys").modules, "__main__", main)
    path = _named(main.build, "space")
    assert path == f"{script}:build"
    monkeypatch.setattr(registry, "_PROVIDED", {})  # as rlnas final or a worker finds it
    loaded = registry.resolve(path, "space")
    assert loaded is not main.build and loaded.__code__.co_filename == str(script)
    assert registry.resolve(path, "space") is loaded  # loaded once
    with pytest.raises(ConfigError, match=r"`space`: expected an importable module"):
        registry.resolve(f"{tmp_path}/gone.py:build", "space")


def test_a_file_named_by_path_travels_as_its_code(tmp_path, monkeypatch):
    """A worker on a machine without the file (a Ray cluster) runs the code the search
    started with, shipped in the evaluator factory, and not what it finds under that path."""
    import pickle
    import sys

    from rlnas import factory, registry
    from rlnas.config import load_config

    script = tmp_path / "space_file.py"
    script.write_text("WIDTH = 8\n\ndef build(d, spec):\n    return WIDTH\n")
    path = f"{script}:build"
    for name in ("_PROVIDED", "_SOURCES"):
        monkeypatch.setattr(registry, name, {})
    cfg = load_config(None, [f"space={path}", "executor.kind=process"])
    evaluator_factory = pickle.loads(pickle.dumps(factory.evaluator_factory(cfg)))
    assert evaluator_factory.args[2] == {str(script): script.read_bytes()}

    # "another machine": nothing loaded yet, and the file is gone or holds other code
    loaded = [m for m in sys.modules if m.startswith("rlnas_file_")]
    for name in loaded:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(registry, "_SOURCES", {})
    script.write_text("WIDTH = 99\n\ndef build(d, spec):\n    return WIDTH\n")
    registry.ship(evaluator_factory.args[2])
    assert registry.resolve(path, "space")(None, None) == 8
    for name in [m for m in sys.modules if m.startswith("rlnas_file_")]:
        monkeypatch.delitem(sys.modules, name)
    script.unlink()
    assert registry.resolve(path, "space")(None, None) == 8


def test_too_few_rows_to_hold_out_a_test_split_is_one_line(tmp_path):
    from rlnas.errors import DataError
    from rlnas.task_config import TaskConfig
    from rlnas.tasks import load_splits

    path = tmp_path / "a.npz"
    x = np.arange(6, dtype="float32").reshape(3, 2)
    np.savez(path, x=x, y=np.array([0, 1, 0]), x_val=x, y_val=np.array([0, 1, 0]))
    with pytest.raises(DataError, match=r"3 training examples are too few .* test_data") as info:
        load_splits(TaskConfig(name="npz", path=str(path)))
    assert "\n" not in str(info.value)
