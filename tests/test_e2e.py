"""End to end: a tiny REAL search (digits, Keras children, 2 epochs) through the CLI into a
temporary SQLite store, then everything checked through MLflow's client."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

mlflow = pytest.importorskip("mlflow")
pytest.importorskip("keras")
pytestmark = pytest.mark.slow

CONFIG = """
seed: 1
task: {{name: digits}}
layers:
  num_layers: 2
  operations: [conv, maxpool, identity]
  filters: [8, 16]
  kernel_sizes: [3]
  activations: [relu, tanh]
  learning_rates: [0.003, 0.01]
  batch_sizes: [64]
  optimizers: [adam]
  dropouts: [0.0]
  weight_decays: [0.0]
  augmentations: [none]
controller: {{batch_size: 2}}
child: {{epochs: 2}}
search: {{children: 4}}
tracking: {{uri: "{uri}", experiment: e2e}}
"""


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """Run the search once for the module's checks."""
    root = tmp_path_factory.mktemp("e2e")
    uri = f"sqlite:///{root}/mlflow.db"
    config = root / "tiny.yaml"
    config.write_text(textwrap.dedent(CONFIG.format(uri=uri)))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "rlnas",
            "search",
            "--config",
            str(config),
            "--summary",
            "summary.json",
            "--save-controller",
            "tiny",
        ],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{root}/wrong/mlflow.db"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not (root / "wrong").exists()  # the config's tracking.uri wins
    summary = json.loads((root / "summary.json").read_text())
    return root, uri, summary, proc


def test_summary(finished):
    _, uri, s, proc = finished
    assert s["tracking_uri"] == uri and s["experiment"] == "e2e"
    assert s["children"] == 4 and s["failed"] == 0 and s["status"] == "FINISHED"
    assert 0.0 <= s["best_reward"] <= 1.0
    assert set(s["best_decisions"]) >= {"layer_0/op", "train/learning_rate"}
    assert s["wall_seconds"] > 0
    assert f"Best child {s['best_child']}: reward {s['best_reward']:.4f}" in proc.stdout


def test_parent_run(finished):
    _, uri, s, _ = finished
    client = mlflow.MlflowClient(uri)
    run = client.get_run(s["run_id"])
    assert run.info.status == "FINISHED"
    assert run.info.run_name.startswith("search-layers-digits-")
    tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
    for key, value in {
        "rlnas.space": "layers",
        "rlnas.task": "digits",
        "rlnas.strategy": "reinforce",
        "rlnas.seed": "1",
        "rlnas.version": __import__("rlnas").__version__,
    }.items():
        assert tags[key] == value
    assert params["child.epochs"] == "2" and params["task.name"] == "digits"
    assert params["layers.filters"] == "[8, 16]" and params["controller.batch_size"] == "2"
    for key in (
        "reward_mean",
        "reward_max",
        "baseline",
        "advantage_mean",
        "entropy",
        "policy_loss",
    ):
        steps = [m.step for m in client.get_metric_history(s["run_id"], f"controller/{key}")]
        assert steps == [1, 2], key
    assert [m.step for m in client.get_metric_history(s["run_id"], "child/reward")] == [0, 1, 2, 3]
    best = client.get_metric_history(s["run_id"], "search/best_so_far")
    assert best[-1].value == s["best_reward"] == metrics["search/best_reward"]
    assert metrics["search/children"] == 4

    names = {a.path for a in client.list_artifacts(s["run_id"])}
    assert names == {
        "config.yaml",
        "space.json",
        "plots",
        "top_k.csv",
        "top_k.md",
        "best_architecture.json",
        "controller",
    }
    png = client.download_artifacts(s["run_id"], "plots/rewards.png")
    assert Path(png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert {a.path for a in client.list_artifacts(s["run_id"], "controller")} == {
        "controller/card.json",
        "controller/controller.weights.h5",
    }
    card = json.loads(
        Path(client.download_artifacts(s["run_id"], "controller/card.json")).read_text()
    )
    assert card["tasks"] == ["digits"] and card["children"] == 4
    assert card["best_reward"] == s["best_reward"] and card["run_id"] == s["run_id"]
    top = Path(client.download_artifacts(s["run_id"], "top_k.csv")).read_text().splitlines()
    assert len(top) == 5 and top[1].split(",")[1] == str(s["best_child"])


def test_child_runs(finished):
    _, uri, s, _ = finished
    client = mlflow.MlflowClient(uri)
    runs = client.search_runs(
        [client.get_run(s["run_id"]).info.experiment_id],
        f"tags.mlflow.parentRunId = '{s['run_id']}'",
    )
    assert len(runs) == 4
    for run in runs:
        run_id = run.info.run_id
        assert run.info.status == "FINISHED"
        tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
        record = json.loads(
            Path(client.download_artifacts(run_id, "architecture.json")).read_text()
        )
        assert tags["rlnas.architecture_hash"] == record["hash"]
        made = {k: v for k, v in params.items() if v != "inactive"}  # the rest do not apply
        assert made == {
            k: v if isinstance(v, str) else json.dumps(v) for k, v in record["decisions"].items()
        }
        assert tags["rlnas.status"] == "COMPLETE" and tags["rlnas.strategy"] == "reinforce"
        assert tags["rlnas.controller_step"] in {"0", "1"}
        assert 0.0 <= metrics["reward"] <= 1.0
        assert metrics["child/params"] > 0 and metrics["child/train_seconds"] > 0
        for curve, steps in (("loss", [0, 1]), ("accuracy", [0, 1]), ("val_loss", [1])):
            history = client.get_metric_history(run_id, f"child/{curve}")
            assert sorted(m.step for m in history) == steps, curve  # validated after epoch 2
        assert [m.step for m in client.get_metric_history(run_id, "child/val_accuracy")] == [1]
        assert metrics["child/val_accuracy"] == metrics["reward"]
        summary = Path(client.download_artifacts(run_id, "model_summary.txt")).read_text()
        assert "Total params" in summary
    best = client.get_run(s["best_run_id"])
    assert best.data.metrics["reward"] == s["best_reward"]


def test_saved_controller(finished):
    root, _, s, _ = finished
    card = json.loads((root / "controllers" / "tiny" / "card.json").read_text())
    assert (root / "controllers" / "tiny" / "controller.weights.h5").is_file()
    assert card["tasks"] == ["digits"] and card["children"] == 4
    assert card["space"]["space"] == "layers"
    assert [d["name"] for d in card["space"]["decisions"]][0] == "layer_0/op"
    assert s["saved_controller"] == "controllers/tiny"
