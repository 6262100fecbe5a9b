"""`rlnas final` and `rlnas export` end to end on a tiny real search (digits, 3 children,
1 epoch) in a temporary SQLite store: the final runs, their metrics and artifacts, the
Model Registry, a fresh-process safe-mode load of the saved model, the ensemble, the TFLite
export, and the one-line errors for bad run ids."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

mlflow = pytest.importorskip("mlflow")
keras = pytest.importorskip("keras")
pytestmark = pytest.mark.slow

from rlnas import cli  # noqa: E402
from rlnas.errors import ChildFailure  # noqa: E402
from rlnas.tracking.models import download_model  # noqa: E402

CONFIG = """
seed: 3
task: {{name: digits}}
layers:
  num_layers: 2
  operations: [conv, sepconv]
  filters: [8, 16]
  kernel_sizes: [3]
  strides: [1, 2]
  activations: [relu]
  skip_connections: false
  learning_rates: [0.01]
  batch_sizes: [64]
  optimizers: [adam]
  dropouts: [0.0]
  weight_decays: [0.0]
  augmentations: [none]
strategy: random
child: {{epochs: 1}}
search: {{children: 3}}
final: {{epochs: 2, top_k: 2}}
tracking: {{uri: "{uri}", experiment: final-test}}
"""


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    """A tiny search, then `rlnas final --ensemble` on it (in this process)."""
    root = tmp_path_factory.mktemp("final")
    uri = f"sqlite:///{root}/mlflow.db"
    (root / "tiny.yaml").write_text(textwrap.dedent(CONFIG.format(uri=uri)))
    search = ["search", "-c", str(root / "tiny.yaml"), "--summary", str(root / "s.json")]
    assert cli.main([*search, "--no-progress"]) == 0
    run_id = json.loads((root / "s.json").read_text())["run_id"]
    final = ["final", run_id, "--uri", uri, "--ensemble", "--summary", str(root / "f.json")]
    assert cli.main([*final, "--set", "final.augment=light"]) == 0
    summary = json.loads((root / "f.json").read_text())
    return root, uri, run_id, summary


def digits_test_split():
    from rlnas.config import TaskConfig
    from rlnas.tasks import load_task

    return load_task(TaskConfig(name="digits"))


def test_final_runs_are_nested_under_the_search_with_test_metrics(done):
    root, uri, run_id, summary = done
    client = mlflow.MlflowClient(uri)
    assert [m["rank"] for m in summary["models"]] == [1, 2]
    rewards = [m["search_reward"] for m in summary["models"]]
    assert rewards == sorted(rewards, reverse=True)
    data = digits_test_split()
    for m in summary["models"]:
        run = client.get_run(m["run_id"])
        tags, metrics, params = run.data.tags, run.data.metrics, run.data.params
        assert run.info.status == "FINISHED"
        assert tags["mlflow.parentRunId"] == run_id == tags["rlnas.search_run_id"]
        assert tags["rlnas.kind"] == "final" and tags["rlnas.rank"] == str(m["rank"])
        child = client.get_run(tags["rlnas.child_run_id"])
        assert child.data.tags["rlnas.kind"] == "child"
        assert {k: v for k, v in params.items() if "/" in k} == child.data.params  # decisions
        assert params["final.epochs"] == "2"
        assert [x.step for x in client.get_metric_history(m["run_id"], "final/loss")] == [0, 1]
        for key in ("accuracy", "macro_precision", "macro_recall", "macro_f1"):
            assert 0.0 <= metrics[f"test/{key}"] <= 1.0
        assert len([k for k in metrics if k.startswith("test/class_")]) == 3 * 10
        names = {a.path for a in client.list_artifacts(m["run_id"])}
        assert {"confusion_matrix.png", "per_class.csv", "test_metrics.json"} <= names
        assert "model.keras" not in names  # the model is stored once: the logged model
        folder = root / m["run_id"]
        png = client.download_artifacts(m["run_id"], "confusion_matrix.png", str(folder))
        assert Path(png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        report_path = client.download_artifacts(m["run_id"], "test_metrics.json", str(folder))
        report = json.loads(Path(report_path).read_text())
        assert np.array(report["confusion"]).sum() == len(data.y_test) == report["examples"]
        # the logged accuracy is the saved model's accuracy on the test split
        model = keras.saving.load_model(
            download_model(client, m["run_id"], folder / "model"), safe_mode=True
        )
        acc = np.mean(model.predict(data.x_test, verbose=0).argmax(1) == data.y_test)
        assert metrics["test/accuracy"] == pytest.approx(acc) == pytest.approx(m["test_accuracy"])
        # final.augment=light overrides the children's train/augment=none
        assert params["train/augment"] == "none" and params["final.augment"] == '"light"'
        assert "augment_shift" in [layer.name for layer in model.layers]


def test_models_are_registered_and_load_through_mlflow(done):
    _, uri, _, summary = done
    client = mlflow.MlflowClient(uri)
    versions = client.search_model_versions("name='rlnas-digits-layers'")
    assert sorted(v.run_id for v in versions) == sorted(m["run_id"] for m in summary["models"])
    ensemble = client.search_model_versions("name='rlnas-digits-layers-ensemble'")
    assert [v.run_id for v in ensemble] == [summary["ensemble"]["run_id"]]
    before = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        name, version = summary["models"][0]["registered"].split("/")
        model = mlflow.keras.load_model(f"models:/{name}/{version}")
    finally:
        mlflow.set_tracking_uri(before)
    data = digits_test_split()
    acc = np.mean(model.predict(data.x_test, verbose=0).argmax(1) == data.y_test)
    assert acc == pytest.approx(summary["models"][0]["test_accuracy"])


def test_the_champion_alias_marks_rank_1_and_each_version_has_its_rank(done):
    _, uri, _, summary = done
    client = mlflow.MlflowClient(uri)
    by_run = {v.run_id: v for v in client.search_model_versions("name='rlnas-digits-layers'")}
    for m in summary["models"]:
        assert by_run[m["run_id"]].tags["rank"] == str(m["rank"])
    champion = client.get_model_version_by_alias("rlnas-digits-layers", "champion")
    assert champion.run_id == summary["models"][0]["run_id"]
    ensemble = client.get_model_version_by_alias("rlnas-digits-layers-ensemble", "champion")
    assert ensemble.run_id == summary["ensemble"]["run_id"]


def test_logged_models_carry_an_example_a_signature_and_their_test_metrics(done):
    _, uri, _, summary = done
    client = mlflow.MlflowClient(uri)
    for record in [*summary["models"], summary["ensemble"]]:
        run = client.get_run(record["run_id"])
        model_id = run.data.tags["rlnas.model_id"]
        logged = client.get_logged_model(model_id)
        assert logged.source_run_id == record["run_id"]
        on_model = {m.key: m.value for m in logged.metrics}
        assert on_model["test/accuracy"] == pytest.approx(record["test_accuracy"])
        info = mlflow.models.Model.load(logged.artifact_location.removeprefix("file://"))
        assert list(info.signature.inputs.to_dict()[0]["tensor-spec"]["shape"]) == [-1, 8, 8, 1]
        assert info.saved_input_example_info is not None
        contexts = {
            tag.value
            for d in run.inputs.dataset_inputs
            for tag in d.tags
            if tag.key == "mlflow.data.context"
        }
        assert {"training", "test"} <= contexts


def test_export_and_final_take_registered_model_uris(done, capsys):
    root, uri, run_id, summary = done
    rank1 = summary["models"][0]
    version = rank1["registered"].split("/")[1]
    for ref in ("models:/rlnas-digits-layers@champion", f"models:/rlnas-digits-layers/{version}"):
        out = root / f"by-uri-{ref[-4:].replace('/', '')}.tflite"
        args = ["export", ref, "--tflite", "--uri", uri, "-o", str(out), "--summary"]
        assert cli.main([*args, str(root / "u.json")]) == 0
        assert json.loads((root / "u.json").read_text())["run_id"] == rank1["run_id"]
    capsys.readouterr()
    for command, extra in (("export", ["--tflite"]), ("final", [])):
        for ref, expected in (
            ("models:/rlnas-digits-layers@nobody", "has no alias 'nobody' of model"),
            ("models:/rlnas-digits-layers/99", "has no version 99 of model"),
            ("models:/only-a-name", "is not a registered model URI"),
        ):
            assert cli.main([command, ref, "--uri", uri, *extra]) == 2
            err = capsys.readouterr().err.strip().splitlines()
            assert len(err) == 1 and err[0].startswith("rlnas: error: RUN_ID: "), err
            assert expected in err[0], err
    from rlnas.final_runs import prepare

    plan = prepare("models:/rlnas-digits-layers@champion", [], uri)
    assert plan.search.run_id == run_id


def test_full_integer_export_takes_and_gives_integers(done, capsys):
    root, uri, run_id, _ = done
    out = root / "full-int.tflite"
    args = ["export", run_id, "--tflite", "--quantize", "int8", "--io-type", "int8"]
    assert cli.main([*args, "--uri", uri, "-o", str(out), "--summary", str(root / "i.json")]) == 0
    s = json.loads((root / "i.json").read_text())
    assert (
        s["io_type"] == "int8" and abs(s["tflite_test_accuracy"] - s["keras_test_accuracy"]) < 0.1
    )
    from rlnas.export import _interpreter

    interpreter = _interpreter(out.read_bytes())
    assert interpreter.get_input_details()[0]["dtype"] == np.int8
    assert interpreter.get_output_details()[0]["dtype"] == np.int8
    assert cli.main(["export", run_id, "--tflite", "--io-type", "uint8", "--uri", uri]) == 2
    assert "--io-type: uint8 input and output need --quantize int8" in capsys.readouterr().err


def test_saved_model_loads_in_a_fresh_process_in_safe_mode(done):
    root, uri, _, summary = done
    client = mlflow.MlflowClient(uri)
    path = str(download_model(client, summary["models"][0]["run_id"], root / "fresh"))
    data = digits_test_split()
    np.save(root / "x.npy", data.x_test[:50])
    script = (
        "import sys, numpy as np, keras\n"
        "m = keras.saving.load_model(sys.argv[1], safe_mode=True)\n"
        "np.save(sys.argv[3], m.predict(np.load(sys.argv[2]), verbose=0))\n"
    )
    out = root / "fresh.npy"
    proc = subprocess.run(
        [sys.executable, "-c", script, path, str(root / "x.npy"), str(out)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    here = keras.saving.load_model(path, safe_mode=True).predict(data.x_test[:50], verbose=0)
    assert np.allclose(np.load(out), here, atol=1e-6)


def test_ensemble_averages_the_members_and_reports_its_gain(done):
    root, uri, _, summary = done
    client = mlflow.MlflowClient(uri)
    e = summary["ensemble"]
    assert e["weights"] == pytest.approx([0.5, 0.5])
    data = digits_test_split()
    probs = []
    for m in summary["models"]:
        path = download_model(client, m["run_id"], root / "members" / m["run_id"])
        probs.append(keras.saving.load_model(path, safe_mode=True).predict(data.x_test, verbose=0))
    acc = np.mean(np.mean(probs, axis=0).argmax(1) == data.y_test)
    assert e["test_accuracy"] == pytest.approx(acc)
    best = max(m["test_accuracy"] for m in summary["models"])
    assert e["gain_over_best_member"] == pytest.approx(acc - best)
    run = client.get_run(e["run_id"])
    assert run.data.tags["rlnas.kind"] == "final-ensemble" and run.info.status == "FINISHED"
    assert run.data.metrics["ensemble/gain_over_best_member"] == pytest.approx(acc - best)


def test_export_int8_of_the_search_reports_size_and_accuracy(done, capsys):
    root, uri, run_id, summary = done
    out = root / "model-int8.tflite"
    args = ["export", run_id, "--tflite", "--quantize", "int8", "--uri", uri, "-o", str(out)]
    assert cli.main([*args, "--summary", str(root / "e.json")]) == 0
    s = json.loads((root / "e.json").read_text())
    assert s["run_id"] == summary["models"][0]["run_id"]  # rank 1 of the latest final
    assert out.stat().st_size == s["tflite_bytes"] > 0  # too tiny a model to shrink: quantization
    assert s["smaller_than_float32_tflite"] == s["float32_tflite_bytes"] / s["tflite_bytes"]
    assert s["keras_test_accuracy"] == pytest.approx(summary["models"][0]["test_accuracy"])
    assert abs(s["tflite_test_accuracy"] - s["keras_test_accuracy"]) <= 0.1
    assert "test accuracy on 270 examples: TFLite" in capsys.readouterr().out
    metrics = mlflow.MlflowClient(uri).get_run(s["run_id"]).data.metrics
    assert metrics["export/int8/tflite_bytes"] == s["tflite_bytes"]


# -- bad run ids: one line, exit status 2, before any work ---------------------------------
def empty_search(uri: str, tmp_path) -> str:
    """A search parent run whose only child failed."""
    client = mlflow.MlflowClient(uri)
    exp = client.get_experiment_by_name("final-test").experiment_id
    run = client.create_run(exp, tags={"rlnas.kind": "search"})
    (tmp_path / "config.yaml").write_text("task: {name: digits}\n")
    client.log_artifact(run.info.run_id, str(tmp_path / "config.yaml"))
    child = client.create_run(
        exp,
        tags={
            "mlflow.parentRunId": run.info.run_id,
            "rlnas.kind": "child",
            "rlnas.status": "FAILED",
        },
    )
    client.set_terminated(child.info.run_id, "FAILED")
    client.set_terminated(run.info.run_id, "FINISHED")
    return run.info.run_id


@pytest.mark.parametrize("command", ["final", "export"])
def test_bad_run_ids_fail_with_one_line_and_status_2(done, tmp_path, capsys, command):
    _, uri, run_id, summary = done
    extra = ["--tflite"] if command == "export" else []
    client = mlflow.MlflowClient(uri)
    before = len(client.search_runs([client.get_experiment_by_name("final-test").experiment_id]))
    cases = {
        "0123456789abcdef0123456789abcdef": "no run '0123456789abcdef0123456789abcdef'",
        summary["models"][0]["child_run_id"]: "is a child run (tag rlnas.kind='child'), not a "
        f"search; expected a search's parent run id; its search is {run_id}",
        empty_search(uri, tmp_path): "has no completed child",
    }  # fmt: skip
    for bad, expected in cases.items():
        assert cli.main([command, bad, "--uri", uri, *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("rlnas: error: RUN_ID: "), err
        assert expected in err[0]
    after = len(client.search_runs([client.get_experiment_by_name("final-test").experiment_id]))
    assert after == before + 2  # only the runs empty_search made: nothing was started
    assert cli.main([command, run_id, "--uri", f"sqlite:///{tmp_path}/none.db", *extra]) == 2
    assert "no tracking store at" in capsys.readouterr().err
    assert not (tmp_path / "none.db").exists()


def test_bad_final_settings_fail_with_one_line_and_status_2(done, capsys):
    _, uri, run_id, _ = done
    cases = {
        ("--epochs", "0"): "`final.epochs`: expected an integer >= 1, got 0.",
        ("--set", "final.bogus=1"): "unknown config key `final.bogus`.",
        ("--top-k", "1", "--ensemble"): "`final.top_k`: expected at least 2 for an ensemble",
        ("--set", "final.budget_seconds=0"): "`final.budget_seconds`: expected a positive",
        ("--set", "final.test_time_flip=true"): "`final.test_time_flip`: expected false for "
        "task 'digits' (images whose mirror images may be other classes)",
        ("--test-time-shift", "4"): "`final.test_time_shift`: expected fewer than 4 pixels "
        "for task 'digits' (8x8 images), got 4.",
        ("--test-time-shift", "9"): "`final.test_time_shift`: expected an integer number of "
        "pixels in 0..8",
        ("--set", "final.label_smoothing=1"): "`final.label_smoothing`: expected a number in "
        "[0, 1) (0: the plain labels), got 1",
        ("--set", "final.width_multiplier=0"): "`final.width_multiplier`: expected a number "
        "in (0, 16] (1: as searched), got 0",
        ("--set", "final.optimizer=lion"): "`final.optimizer`: expected one of",
        ("--set", "final.learning_rate=0"): "`final.learning_rate`: expected a number > 0",
        ("--set", "final.weight_decay=-1"): "`final.weight_decay`: expected a number >= 0",
    }
    for flags, expected in cases.items():
        assert cli.main(["final", run_id, "--uri", uri, *flags]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and expected in err[0], err


def test_weighted_ensemble_fits_its_weights_on_the_validation_split(done):
    """Members train on the training split only; the weights are fitted on validation."""
    from rlnas.ensemble import fit_weights

    root, uri, run_id, _ = done
    argv = ["final", run_id, "--uri", uri, "--weighted", "--epochs", "1"]
    assert (
        cli.main([*argv, "--set", "final.register=false", "--summary", str(root / "w.json")]) == 0
    )
    s = json.loads((root / "w.json").read_text())
    assert s["fit"].startswith("training split (")
    data = digits_test_split()
    client = mlflow.MlflowClient(uri)
    val, test = [], []
    for m in s["models"]:
        assert m["registered"] is None
        path = download_model(client, m["run_id"], root / "weighted" / m["run_id"])
        model = keras.saving.load_model(path, safe_mode=True)
        val.append(model.predict(data.x_val, verbose=0))
        test.append(model.predict(data.x_test, verbose=0))
        holdout = client.get_run(m["run_id"]).data.metrics["holdout/accuracy"]
        assert holdout == pytest.approx(np.mean(val[-1].argmax(1) == data.y_val))
    weights = fit_weights(val, data.y_val)
    assert s["ensemble"]["weights"] == pytest.approx(weights.tolist(), abs=1e-5)
    mix = sum(w * p for w, p in zip(weights, test))
    assert s["ensemble"]["test_accuracy"] == pytest.approx(np.mean(mix.argmax(1) == data.y_test))


# -- ensembles without a search ------------------------------------------------------------
def test_fitted_weights_favour_the_better_member_and_lower_the_log_loss():
    from rlnas.ensemble import fit_weights, log_loss

    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 400)
    good = np.full((400, 4), 0.1)
    good[np.arange(400), y] = 0.7
    noise = rng.dirichlet(np.ones(4), size=400)
    w = fit_weights([noise, good], y)
    assert w.sum() == pytest.approx(1.0) and w[1] > 0.9
    assert log_loss([noise, good], w, y) < log_loss([noise, good], np.array([0.5, 0.5]), y)


def test_build_ensemble_is_the_weighted_average_and_reloads_in_safe_mode(tmp_path):
    from rlnas.ensemble import build_ensemble

    def member(seed):
        keras.utils.set_random_seed(seed)
        inputs = keras.Input((6,))
        return keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(inputs))

    models = [member(1), member(2)]
    x = np.random.default_rng(0).random((8, 6), dtype=np.float32)
    ensemble = build_ensemble(models, [1.0, 3.0])
    expected = 0.25 * models[0].predict(x, verbose=0) + 0.75 * models[1].predict(x, verbose=0)
    assert np.allclose(ensemble.predict(x, verbose=0), expected, atol=1e-6)
    ensemble.save(tmp_path / "e.keras")
    loaded = keras.saving.load_model(tmp_path / "e.keras", safe_mode=True)
    assert np.allclose(loaded.predict(x, verbose=0), expected, atol=1e-6)
    with pytest.raises(ValueError, match="non-negative weights"):
        build_ensemble(models, [1.0])


def _shift(images, axis, step):
    """numpy reference: ``images`` moved by ``step`` along ``axis``, edge repeated."""
    n, side = abs(step), images.shape[axis]
    pad = [(0, 0)] * images.ndim
    pad[axis] = (n, 0) if step > 0 else (0, n)
    padded = np.pad(images, pad, mode="edge")
    return np.take(padded, range(side) if step > 0 else range(n, n + side), axis=axis)


def test_view_average_is_the_mean_over_mirrored_and_shifted_views_and_reloads_in_safe_mode(
    tmp_path,
):
    from rlnas.ensemble import view_average

    keras.utils.set_random_seed(0)
    inputs = keras.Input((6, 7, 2))  # not square: the mirror must reverse the width only
    x = keras.layers.Conv2D(3, 3, padding="same")(inputs)
    x = keras.layers.Flatten()(x)
    model = keras.Model(inputs, keras.layers.Dense(4, activation="softmax")(x))
    images = np.random.default_rng(0).random((6, 6, 7, 2), dtype=np.float32)
    one = model.predict(images, verbose=0)
    mirrored = model.predict(images[:, :, ::-1, :].copy(), verbose=0)
    assert not np.allclose(one, mirrored, atol=1e-3)  # the model itself is not symmetric
    averaged = view_average(model)
    assert np.allclose(averaged.predict(images, verbose=0), (one + mirrored) / 2, atol=1e-6)
    averaged.save(tmp_path / "f.keras")
    loaded = keras.saving.load_model(tmp_path / "f.keras", safe_mode=True)
    assert np.allclose(loaded.predict(images, verbose=0), (one + mirrored) / 2, atol=1e-6)

    for flip in (False, True):  # 5 and 10 views, shifted by 2 pixels
        bases = [images, images[:, :, ::-1, :]] if flip else [images]
        views = bases + [_shift(b, a, s) for b in bases for a in (1, 2) for s in (2, -2)]
        expected = np.mean([model.predict(v.copy(), verbose=0) for v in views], axis=0)
        shifted = view_average(model, flip=flip, shift=2)
        assert len(views) == (10 if flip else 5)
        assert np.allclose(shifted.predict(images, verbose=0), expected, atol=1e-6)
        shifted.save(tmp_path / "s.keras")
        loaded = keras.saving.load_model(tmp_path / "s.keras", safe_mode=True)
        assert np.allclose(loaded.predict(images, verbose=0), expected, atol=1e-6)

    vector = keras.Input((6,))
    flat = keras.Model(vector, keras.layers.Dense(2)(vector))
    with pytest.raises(ValueError, match=r"expected images \(H, W, C\), got inputs of shape"):
        view_average(flat)
    with pytest.raises(ValueError, match=r"shift must be in 0..2 pixels for 6x7 images, got 3"):
        view_average(model, shift=3)
    with pytest.raises(ValueError, match="no view besides the image itself"):
        view_average(model, flip=False)


def test_final_with_test_time_flip_and_shift_ships_the_averaging_model(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in ("stripes", "spots"):  # a task whose mirror images keep the label
        (tmp_path / "images" / c).mkdir(parents=True)
        for i in range(20):
            pixels = rng.integers(0, 256, (10, 12, 3)) // (2 if c == "spots" else 1)
            Image.fromarray(pixels.astype(np.uint8)).save(tmp_path / "images" / c / f"{i}.png")
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    folder = tmp_path / "images"
    task = f"{{{{name: image_folder, path: '{folder}', image_size: [10, 12], mirror: true}}}}"
    config = CONFIG.replace("{{name: digits}}", task).replace("children: 3", "children: 2")
    (tmp_path / "img.yaml").write_text(textwrap.dedent(config.format(uri=uri)))
    search = ["search", "-c", str(tmp_path / "img.yaml"), "--summary", str(tmp_path / "s.json")]
    assert cli.main([*search, "--no-progress"]) == 0
    run_id = json.loads((tmp_path / "s.json").read_text())["run_id"]
    flags = ["--top-k", "1", "--summary", str(tmp_path / "f.json"), "--test-time-flip"]
    flags += ["--test-time-shift", "1", "--set", "final.register=false"]
    assert cli.main(["final", run_id, "--uri", uri, *flags]) == 0
    record = json.loads((tmp_path / "f.json").read_text())["models"][0]
    run = mlflow.MlflowClient(uri).get_run(record["run_id"])
    assert run.data.params["final.test_time_flip"] == "true"
    assert run.data.params["final.test_time_shift"] == "1"
    assert 0.0 <= run.data.metrics["test/accuracy_one_view"] <= 1.0
    assert 0.0 <= run.data.metrics["test/accuracy_flip_only"] <= 1.0
    assert run.data.metrics["test/accuracy"] == pytest.approx(record["test_accuracy"])
    path = download_model(mlflow.MlflowClient(uri), record["run_id"], tmp_path / "dl")
    shipped = keras.saving.load_model(path, safe_mode=True)
    inner = shipped.get_layer("model")
    x = rng.random((5, 10, 12, 3), dtype=np.float32)
    bases = [x, x[:, :, ::-1]]  # 10 views: the image, its mirror, each shifted 4 ways by 1
    views = bases + [_shift(b, a, s) for b in bases for a in (1, 2) for s in (1, -1)]
    expected = np.mean([inner.predict(v.copy(), verbose=0) for v in views], axis=0)
    assert np.allclose(shipped.predict(x, verbose=0), expected, atol=1e-5)


@pytest.mark.parametrize(
    "error, status, message",
    [
        (ChildFailure("nan_loss", "final training diverged: the loss became nan"), "FAILED",
         "final training diverged: the loss became nan"),
        (KeyboardInterrupt(), "KILLED", None),
        (RuntimeError("disk full"), "FAILED", None),
    ],
)  # fmt: skip
def test_a_final_run_that_fails_is_ended_with_its_status(tmp_path, error, status, message):
    from rlnas.final_steps import run_ends_if_it_fails as _run_ends_if_it_fails

    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    run_id = client.create_run(client.create_experiment("x")).info.run_id
    with pytest.raises(type(error)), _run_ends_if_it_fails(client, run_id):
        raise error
    run = client.get_run(run_id)
    assert run.info.status == status
    assert run.data.tags.get("rlnas.message") == message


def test_final_says_when_its_budget_cut_the_epochs(done, capsys):
    root, uri, run_id, _ = done
    argv = ["final", run_id, "--uri", uri, "--top-k", "1", "--epochs", "3"]
    flags = ["--set", "final.budget_seconds=0.000001", "--set", "final.register=false"]
    assert cli.main([*argv, *flags, "--summary", str(root / "b.json")]) == 0
    out = capsys.readouterr()
    lines = (out.out + out.err).splitlines()
    assert any("1 of 3 epochs fit final.budget_seconds=1e-06" in line for line in lines)
    assert any("epoch 1/1 loss" in line for line in lines)
    assert any("up to 3 epochs on" in line for line in lines)  # the table: 1 ran
    (model,) = json.loads((root / "b.json").read_text())["models"]
    metrics = mlflow.MlflowClient(uri).get_run(model["run_id"]).data.metrics
    assert metrics["final/epochs"] == 1 and model["epochs"] == 1


def _fake_clock_training(monkeypatch, durations: dict[int, float], budget: float):
    """Train a tiny digits model for at most 10 epochs under ``budget`` seconds of a fake
    clock on which epoch ``e + 1`` takes ``durations.get(e, 0)`` seconds (epoch 0 takes 0);
    returns the plans heard after each epoch, the learning rates and the seconds used."""
    import types

    import rlnas.final as final
    from rlnas.config import FinalConfig, TaskConfig
    from rlnas.spaces.layers import LayersBlueprint, LayerSpec, TrainingSpec
    from rlnas.tasks import load_task

    clock = [0.0]
    monkeypatch.setattr(final, "time", types.SimpleNamespace(perf_counter=lambda: clock[0]))
    data = final.final_data(load_task(TaskConfig(name="digits")), FinalConfig(), seed=0)
    blueprint = LayersBlueprint(
        (LayerSpec("conv", 4, 3, 1, "relu"),), TrainingSpec(0.01, 256, "adam", 0.0, 0.0, "none")
    )
    planned: list[int] = []
    rates: list[float] = []
    used: list[float] = []

    def record(epoch, logs, epochs):
        planned.append(epochs)
        rates.append(logs["learning_rate"])
        used.append(clock[0])
        clock[0] += durations.get(epoch, 0.0)  # the time the next epoch "takes"

    _, curves = final.train_final(blueprint, data, epochs=10, schedule="cosine", seed=0,
                                  on_epoch=record, budget_seconds=budget)  # fmt: skip
    assert len(curves["loss"]) == len(planned)
    return planned, rates, used


def test_a_machine_that_slows_down_for_a_while_gets_its_epochs_back(monkeypatch):
    """Epochs of 0, 10 and 50 s, then of nothing: the plan falls to 5 when the mean epoch
    reaches 20 s, rises again as the mean falls, and all 10 epochs run within the budget;
    the learning rate only falls (its progress counts the budget's seconds used)."""
    planned, rates, used = _fake_clock_training(monkeypatch, {0: 10.0, 1: 50.0}, budget=100)
    # after epoch 3: 60 s used, 20 s an epoch, 2 more fit; then 15 s (2 more), 12 s (3)...
    assert planned == [10, 10, 5, 6, 8, 10, 10, 10, 10, 10]
    assert used[-1] <= 100
    assert all(a >= b for a, b in zip(rates, rates[1:])) and rates[0] == pytest.approx(0.01)
    # epoch 1 starts at 10% of the epochs and 0 s; epoch 2 at 10 s of 100: progress 0.2
    assert rates[2] == pytest.approx(0.01 * 0.5 * (1 + np.cos(np.pi * 0.2)))
    # from epoch 3 on, 60% of the budget is spent, more than the epochs' fraction
    assert rates[3] == pytest.approx(0.01 * 0.5 * (1 + np.cos(np.pi * 0.6)))


def test_a_machine_that_stays_slow_ends_within_the_budget(monkeypatch):
    planned, rates, used = _fake_clock_training(monkeypatch, {e: 30.0 for e in range(10)}, 100)
    # 30 s used after epoch 1 (15 s each: 6 fit), 60 after 2 (5), 90 after 3 (4): stop
    assert planned == [10, 6, 5, 4] and used[-1] == 90
    assert all(a > b for a, b in zip(rates, rates[1:]))


def test_label_smoothing_trains_on_smoothed_targets_and_ships_the_plain_loss():
    """With smoothing 0.2 over 10 classes the training loss can never fall below the targets'
    own entropy (0.867 nats); the same training on plain labels goes below it. The model
    returned evaluates on integer labels (compiled with the plain loss again)."""
    from rlnas.config import FinalConfig, TaskConfig
    from rlnas.final import final_data, train_final
    from rlnas.spaces.layers import LayersBlueprint, LayerSpec, TrainingSpec
    from rlnas.tasks import load_task

    data = final_data(load_task(TaskConfig(name="digits")), FinalConfig(), seed=0)
    blueprint = LayersBlueprint(
        (LayerSpec("conv", 32, 3, 1, "relu"),) * 2,
        TrainingSpec(0.01, 32, "adam", 0.0, 0.0, "none"),
    )
    target = np.full(10, 0.2 / 10) + np.eye(10)[0] * 0.8
    floor = float(-(target * np.log(target)).sum())
    losses = {}
    for smoothing in (0.0, 0.2):
        model, curves = train_final(blueprint, data, epochs=20, schedule="cosine", seed=0,
                                    label_smoothing=smoothing)  # fmt: skip
        losses[smoothing] = curves["loss"]
        assert model.loss == "sparse_categorical_crossentropy"
        loss, accuracy = model.evaluate(data.x_test, data.y_test, verbose=0)
        assert accuracy > 0.9
    assert min(losses[0.0]) < floor - 0.3
    assert min(losses[0.2]) >= floor - 1e-3 and losses[0.2][-1] < losses[0.2][0]


def test_a_time_budget_cuts_the_epochs_after_the_first_and_the_schedule_follows():
    from rlnas.config import FinalConfig, TaskConfig
    from rlnas.final import final_data, train_final
    from rlnas.spaces.layers import LayersBlueprint, LayerSpec, TrainingSpec
    from rlnas.tasks import load_task

    data = final_data(load_task(TaskConfig(name="digits")), FinalConfig(), seed=0)
    blueprint = LayersBlueprint(
        (LayerSpec("conv", 8, 3, 1, "relu"),), TrainingSpec(0.01, 64, "adam", 0.0, 0.0, "none")
    )
    rates: list[float] = []
    planned: list[int] = []

    def record(epoch, logs, epochs):
        rates.append(logs["learning_rate"])
        planned.append(epochs)

    _, curves = train_final(blueprint, data, epochs=50, schedule="cosine", seed=0,
                            on_epoch=record, budget_seconds=1e-6)  # fmt: skip
    assert len(curves["loss"]) == 1 and rates == pytest.approx([0.01])  # nothing more fits
    assert planned == [1]  # and the progress hears of the cut
    rates.clear()
    planned.clear()
    _, curves = train_final(blueprint, data, epochs=4, schedule="cosine", seed=0,
                            on_epoch=record, budget_seconds=3600)  # fmt: skip
    assert len(curves["loss"]) == 4 and planned == [4] * 4  # everything fits
    assert rates == pytest.approx([0.01, 0.01 * 0.5 * (1 + np.cos(np.pi / 4)), 0.005,
                                   0.01 * 0.5 * (1 + np.cos(3 * np.pi / 4))])  # fmt: skip


def test_a_final_model_keeps_the_batch_norm_statistics_of_its_trained_weights():
    """One epoch leaves the moving averages mostly at their initial values; train_final
    re-estimates them with the trained weights, so re-estimating once more changes nothing
    (without it, the second estimate moves them far)."""
    import keras

    from rlnas.config import FinalConfig, TaskConfig
    from rlnas.final import FINAL_CALIBRATION_EXAMPLES, final_data, train_final
    from rlnas.keras_build import calibration_sample, recalibrate_batch_norm
    from rlnas.spaces.layers import LayersBlueprint, LayerSpec, TrainingSpec
    from rlnas.tasks import load_task

    data = final_data(load_task(TaskConfig(name="digits")), FinalConfig(), seed=0)
    blueprint = LayersBlueprint(
        (LayerSpec("conv", 8, 3, 1, "relu"),), TrainingSpec(0.01, 256, "adam", 0.0, 0.0, "none")
    )
    model, _ = train_final(blueprint, data, epochs=1, schedule="cosine", seed=0)
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert norms, "the layers space puts batch normalisation after a conv layer"
    before = [np.array(layer.moving_variance) for layer in norms]
    assert not np.allclose(before[0], 1.0, atol=0.05)  # not the initial variance
    assert recalibrate_batch_norm(
        model, calibration_sample(data.x_fit, FINAL_CALIBRATION_EXAMPLES)
    ) == len(norms)
    for layer, old in zip(norms, before):
        np.testing.assert_allclose(np.array(layer.moving_variance), old, rtol=1e-4, atol=1e-6)


def test_a_final_model_trains_with_the_multiplied_filters_and_the_final_recipe(done):
    """final.width_multiplier widens the child; final.optimizer, learning_rate and
    weight_decay replace its searched training (the child's own: adam)."""
    root, uri, run_id, _ = done
    argv = ["final", run_id, "--uri", uri, "--top-k", "1", "--epochs", "1"]
    flags = ["--width-multiplier", "2", "--set", "final.register=false"]
    flags += ["--set", "final.optimizer=sgd", "--set", "final.learning_rate=0.07"]
    flags += ["--set", "final.weight_decay=0.0003", "--set", "final.schedule=constant"]
    assert cli.main([*argv, *flags, "--summary", str(root / "w.json")]) == 0
    (model,) = json.loads((root / "w.json").read_text())["models"]
    client = mlflow.MlflowClient(uri)
    params = client.get_run(model["run_id"]).data.params
    assert float(params["final.width_multiplier"]) == 2
    net = keras.saving.load_model(download_model(client, model["run_id"], root / "w"))
    for i in range(2):  # CONFIG: two layers, each a conv or a sepconv
        op, filters = params[f"layer_{i}/op"], int(params[f"layer_{i}/filters"])
        assert net.get_layer(f"layer{i}_{op}").filters == 2 * filters
    assert params["train/optimizer"] == "adam"  # as searched; trained as the config says:
    assert type(net.optimizer).__name__ == "SGD" and net.optimizer.nesterov
    assert float(net.optimizer.learning_rate) == pytest.approx(0.07)
    assert json.loads(params["final.optimizer"]) == "sgd"
    assert float(params["final.weight_decay"]) == 3e-4
    kernel = net.get_layer(f"layer0_{params['layer_0/op']}")
    decay = kernel.kernel_regularizer or kernel.depthwise_regularizer
    assert decay.l2 == pytest.approx(3e-4 / 2)
