"""Multi-objective searches end to end: config refusals, the table's device columns, the
scalarised reward, and the front in the parent run (SQLite store, MLflow client)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from rlnas import cli, hw_table
from rlnas.config import load_config
from rlnas.errors import ConfigError
from rlnas.executors import InlineExecutor
from rlnas.nb201.evaluator import Nb201Evaluator
from rlnas.nb201.space import Nb201Space
from rlnas.nb201.vocabulary import EDGES, parse_arch_str
from rlnas.objectives import parse_objectives
from rlnas.search import Budget, Search
from rlnas.strategies.nsga import NsgaEvolution
from rlnas.strategies.random_search import RandomSearch

mlflow = pytest.importorskip("mlflow")
TABLE = ["task.name=nb201", "space=nb201"]


def _config(tmp_path: Path, text: str) -> str:
    path = tmp_path / "c.yaml"
    path.write_text(textwrap.dedent(text))
    return str(path)


# -- the table's device columns through the evaluator ------------------------------------------
@pytest.mark.parametrize("device,metric", [("pixel3", "latency"), ("edgegpu", "energy")])
def test_evaluator_returns_the_devices_column_for_known_cells(device, metric):
    table = hw_table.load_hw_table()
    evaluator = Nb201Evaluator("cifar10", hw=[(device, metric)])
    key = f"hw_{device}_{metric}_{hw_table.UNITS[metric].lower()}"
    for row in (0, 1462, 15624):
        ops = parse_arch_str(table.arch_strs[row])
        outcome = evaluator.evaluate(dict(zip(EDGES, ops)), seed=0, number=0)
        assert outcome.metrics["nb201_index"] == row
        assert outcome.metrics[key] == table.columns[f"{device}_{metric}"][row]
        assert outcome.metrics[key] == hw_table.lookup(ops, device, metric)


def test_evaluator_without_objectives_adds_no_device_column():
    outcome = Nb201Evaluator("cifar10").evaluate({e: "none" for e in EDGES}, seed=0, number=0)
    assert not [k for k in outcome.metrics if k.startswith("hw_")]


# -- config refusals -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "overrides,fragment",
    [
        (["search.objectives=[accuracy, 'latency:pixel3']"], "only task nb201"),
        ([*TABLE, "search.objectives=[accuracy, latency]"], "cannot give 'latency'"),
        ([*TABLE, "search.objectives=[accuracy, 'latency:iphone']"], "unknown HW-NAS-Bench"),
        ([*TABLE, "search.objectives=[accuracy, 'energy:raspi4']"], "raspi4"),
        ([*TABLE, "search.objectives=[accuracy, 'latency:pixel3<=-2']"], "must be a number > 0"),
        ([*TABLE, "strategy=nsga"], "nsga needs search.objectives"),
        (["search.scalarization=linear"], "null unless search.objectives"),
        ([*TABLE, "controller.front_weight=0.3"], "two or more search.objectives"),
    ],
)
def test_config_refusals(overrides, fragment):
    with pytest.raises(ConfigError) as info:
        load_config(None, overrides)
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def _no_runs(uri: str) -> bool:
    client = mlflow.MlflowClient(uri)
    ids = [e.experiment_id for e in client.search_experiments()]
    return not ids or not client.search_runs(ids)


@pytest.mark.parametrize(
    "body,fragment",
    [
        ("search: {objectives: [val_accuracy, 'latency:pixel3']}", "only task nb201"),
        (
            "task: {name: nb201}\nspace: nb201\nsearch: {objectives: [accuracy, 'energy:pixel3']}",
            "pixel3",
        ),
    ],
)
def test_cli_refuses_in_one_line_before_any_run(tmp_path, body, fragment):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    path = _config(tmp_path, body + "\n")
    proc = subprocess.run(
        [sys.executable, "-m", "rlnas", "search", "--config", path],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rlnas: error: "), proc.stderr
    assert fragment in lines[0]
    assert not Path(tmp_path, "mlflow.db").exists() or _no_runs(uri)


# -- the loop: raw objectives kept, a scalar told ------------------------------------------------
class _Recorder(RandomSearch):
    def tell(self, sample, reward, metrics=None):
        self.told.append((reward, dict(metrics or {})))
        return super().tell(sample, reward, metrics)


def test_single_objective_strategies_are_told_the_scalarised_reward():
    objectives = parse_objectives(["accuracy", "latency:pixel3"])
    strategy = _Recorder(Nb201Space(), seed=1)
    strategy.told = []
    evaluator = Nb201Evaluator("cifar10", hw=[("pixel3", "latency")])
    search = Search(
        strategy,
        InlineExecutor(evaluator),
        Budget(children=12),
        seed=1,
        objectives=objectives,
        scalarization="linear",
    )
    trials = search.run().trials
    for trial, (told, _) in zip(trials, strategy.told):
        assert "hw_pixel3_latency_ms" in trial.metrics  # the trial keeps every raw value
        assert trial.reward == trial.metrics["test_accuracy"]
        assert 0.0 <= told <= 1.0 and told != trial.reward  # a normalised weighted sum


def test_nsga_is_told_the_raw_objectives_through_the_loop():
    objectives = parse_objectives(["accuracy", "latency:pixel3"])
    strategy = NsgaEvolution(Nb201Space(), objectives, seed=2)
    evaluator = Nb201Evaluator("cifar10", hw=[("pixel3", "latency")])
    search = Search(
        strategy, InlineExecutor(evaluator), Budget(children=8), seed=2, objectives=objectives
    )
    assert search.scalarizer is None  # nsga ranks the vectors itself
    trials = search.run().trials
    told = {(t.reward, t.metrics["hw_pixel3_latency_ms"]) for t in trials}
    assert set(strategy.values) == told


def test_reinforce_replays_the_front_of_the_children_told():
    """With ``front_weight`` the controller is told each objective (larger is better) beside
    the scalarised reward, keeps exactly the non-dominated children, replays them in every
    update (their likelihood rises) and saves them with its state."""
    from rlnas.pareto import pareto_mask
    from rlnas.strategies.reinforce import ReinforceConfig, ReinforceController

    objectives = parse_objectives(["accuracy", "latency:pixel3"])
    space = Nb201Space()
    strategy = ReinforceController(space, ReinforceConfig(front_weight=1.0), seed=3)
    evaluator = Nb201Evaluator("cifar10", hw=[("pixel3", "latency")])
    search = Search(
        strategy, InlineExecutor(evaluator), Budget(children=40), seed=3, objectives=objectives
    )
    assert search.scalarizer is not None  # still told one scalarised reward
    trials = search.run().trials
    values = np.array([[t.reward, t.metrics["hw_pixel3_latency_ms"]] for t in trials])
    expected = {t.number for t, on in zip(trials, pareto_mask(values, [True, False])) if on}
    kept = {order - 1 for _, order, _ in strategy.front}
    assert kept == expected and len(kept) >= 2
    members = [s for _, _, s in strategy.front]
    without = ReinforceController(space, ReinforceConfig(front_weight=1.0), seed=0)
    without.load_state_dict(strategy.state_dict())
    without.front = []  # the same controller, nothing to replay

    def likelihood(controller) -> float:
        return sum(float(controller.log_probs(s).sum()) for s in members)

    before = likelihood(strategy)
    batch = [(members[0], 0.5), (members[1], 0.5)]
    for _ in range(5):
        strategy.update(batch)
        without.update(batch)
    assert likelihood(strategy) - before > likelihood(without) - before + 0.1

    again = ReinforceController(space, ReinforceConfig(front_weight=1.0), seed=0)
    again.load_state_dict(strategy.state_dict())
    assert [(v.tolist(), o) for v, o, _ in again.front] == [
        (v.tolist(), o) for v, o, _ in strategy.front
    ]


# -- the front in the parent run -----------------------------------------------------------------
def test_table_search_logs_front_plot_and_hypervolume(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    path = _config(
        tmp_path,
        f"""
        task: {{name: nb201}}
        space: nb201
        controller: {{batch_size: 5}}
        search: {{children: 25, objectives: [accuracy, 'latency:pixel3']}}
        tracking: {{uri: '{uri}'}}
        """,
    )
    summary = tmp_path / "summary.json"
    monkeypatch.chdir(tmp_path)
    assert cli.main(["search", "--config", path, "--summary", str(summary), "--no-progress"]) == 0
    out = json.loads(summary.read_text())
    client = mlflow.MlflowClient(uri)
    run = client.get_run(out["run_id"])
    files = {a.path for a in client.list_artifacts(out["run_id"])}
    files |= {a.path for a in client.list_artifacts(out["run_id"], "plots")}
    assert {"pareto_front.json", "pareto_front.csv", "plots/pareto_front.png"} <= files
    rows = json.loads(
        Path(
            client.download_artifacts(out["run_id"], "pareto_front.json", str(tmp_path))
        ).read_text()
    )
    points = np.array(
        [[r["objectives"]["accuracy"], r["objectives"]["latency:pixel3"]] for r in rows]
    )
    for a in points:  # no member dominates another
        assert not any((b[0] >= a[0]) and (b[1] <= a[1]) and (b != a).any() for b in points)
    assert [r["number"] for r in out["front"]] == [r["number"] for r in rows]
    assert all(r["run_id"] for r in out["front"])
    history = client.get_metric_history(out["run_id"], "search/hypervolume")
    assert len(history) >= 4  # one per controller update (5 updates) and the end
    values = [m.value for m in sorted(history, key=lambda m: (m.step, m.timestamp))]
    assert values[-1] > 0
    reference = run.data.params["search.hypervolume_reference"].split(",")
    assert float(reference[0]) == 0.0 and float(reference[1]) > 0
