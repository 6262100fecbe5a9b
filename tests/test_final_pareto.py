"""`rlnas final --pareto` on a tiny real Keras search with objectives [val_accuracy, params]
(digits, 4 children, 1 epoch, SQLite store): it retrains exactly the front's members, and the
front requests a search cannot answer are refused in one line before any final run."""

from __future__ import annotations

import json
import textwrap

import pytest

mlflow = pytest.importorskip("mlflow")
keras = pytest.importorskip("keras")
pytestmark = pytest.mark.slow

from rlnas import cli  # noqa: E402

CONFIG = """
seed: 5
task: {{name: digits}}
layers:
  num_layers: 1
  operations: [conv, sepconv]
  filters: [4, 16]
  kernel_sizes: [3]
  strides: [1]
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
search: {{children: 4, objectives: [val_accuracy, params]}}
final: {{epochs: 1}}
tracking: {{uri: "{uri}", experiment: pareto-test}}
"""


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    root = tmp_path_factory.mktemp("pareto")
    uri = f"sqlite:///{root}/mlflow.db"
    (root / "tiny.yaml").write_text(textwrap.dedent(CONFIG.format(uri=uri)))
    args = ["search", "-c", str(root / "tiny.yaml"), "--summary", str(root / "s.json")]
    assert cli.main([*args, "--no-progress"]) == 0
    return root, uri, json.loads((root / "s.json").read_text())


def test_final_pareto_retrains_the_front(searched):
    root, uri, summary = searched
    front = summary["front"]
    assert front and all(set(m["objectives"]) == {"val_accuracy", "params"} for m in front)
    args = ["final", summary["run_id"], "--uri", uri, "--pareto", "--summary", str(root / "f.json")]
    assert cli.main(args) == 0
    final = json.loads((root / "f.json").read_text())
    assert sorted(m["child"] for m in final["models"]) == sorted(m["number"] for m in front)
    assert all(m["status"] == "FINISHED" for m in final["models"])


def test_max_latency_needs_a_latency_objective(searched, capsys):
    root, uri, summary = searched
    runs_before = len(mlflow.MlflowClient(uri).search_runs([summary["experiment_id"]]))
    code = cli.main(["final", summary["run_id"], "--uri", uri, "--max-latency-ms", "5"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "has no latency objective" in err[0]
    assert len(mlflow.MlflowClient(uri).search_runs([summary["experiment_id"]])) == runs_before
