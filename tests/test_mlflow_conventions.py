"""MLflow conventions as the MLflow UI shows them, read back through the MLflow client from a
real SQLite store: run names, ``mlflow.user``, inactive decisions, the search's settings on
every child, the parent's description, per-epoch timestamps, the architecture drawing."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from rlnas.config import Config
from rlnas.executors import InlineExecutor
from rlnas.search import Budget, Search
from rlnas.strategies import RandomSearch
from rlnas.strategies.reinforce import ReinforceConfig
from rlnas.tracking import MLflowTracker, conventions, diagram

mlflow = pytest.importorskip("mlflow")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    uri = f"sqlite:///{tmp_path_factory.mktemp('conventions')}/mlflow.db"
    return uri, mlflow.MlflowClient(uri)


def two_searches(store, space, evaluator, experiment):
    """Two searches of 3 children each into ``experiment``; their trackers and results."""
    uri, _ = store
    out = []
    for seed in (0, 1):
        tracker = MLflowTracker(uri, experiment, task="toytask")
        strategy = RandomSearch(space, seed=seed)
        result = Search(strategy, InlineExecutor(evaluator), Budget(3), observers=[tracker]).run()
        out.append((tracker, result))
    return out


def children_of(client, tracker):
    runs = client.search_runs(
        [tracker.experiment_id], f"tags.mlflow.parentRunId = '{tracker.run_id}'"
    )
    return sorted(runs, key=lambda r: int(r.data.tags["rlnas.child"]))


def test_names_tell_searches_and_children_apart(store, toy_space, toy_evaluator, monkeypatch):
    _, client = store
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "ada")
    searches = two_searches(store, toy_space, toy_evaluator(), "names")
    names = []
    for tracker, _ in searches:
        parent = client.get_run(tracker.run_id)
        assert parent.info.run_name == f"search-toy-toytask-random-{tracker.run_id[:4]}"
        assert parent.data.tags["mlflow.user"] == "ada"
        for run in children_of(client, tracker):
            number = int(run.data.tags["rlnas.child"])
            assert run.info.run_name == f"{tracker.run_id[:4]}-child-{number:04d}"
            assert run.data.tags["mlflow.user"] == "ada"
            tags = run.data.tags  # where a child comes from, on the child itself
            assert tags["rlnas.strategy"] == "random" and tags["rlnas.task"] == "toytask"
            assert tags["rlnas.space"] == "toy" and tags["rlnas.controller_from"] == ""
            names.append(run.info.run_name)
    assert len(names) == len(set(names)) == 6  # unique across the two searches


def test_every_child_has_every_decision_and_a_drawing(store, toy_space, toy_evaluator):
    _, client = store
    (tracker, result), _ = two_searches(store, toy_space, toy_evaluator(), "decisions")
    names = {d.name for d in toy_space.signature}
    inactive = 0
    for run, trial in zip(children_of(client, tracker), result.trials):
        assert set(run.data.params) == names
        for name in names - set(trial.architecture):
            assert run.data.params[name] == conventions.INACTIVE
            inactive += 1
        svg = Path(client.download_artifacts(run.info.run_id, "architecture.svg")).read_text()
        root = ET.fromstring(svg)  # well-formed SVG
        assert root.tag.endswith("svg")
        text = " ".join(t.text or "" for t in root.iter() if t.tag.endswith("text"))
        for name, value in trial.architecture.items():
            assert f"{name} = {value}" in text
    assert inactive == sum(len(names - set(t.architecture)) for t in result.trials)


def test_the_parent_description_is_a_short_top_k_table_with_links(store, toy_space, toy_evaluator):
    _, client = store
    (tracker, result), _ = two_searches(store, toy_space, toy_evaluator(), "note")
    note = client.get_run(tracker.run_id).data.tags[conventions.NOTE]
    links = re.findall(r"\[(\d+)\]\(#/experiments/(\d+)/runs/([0-9a-f]{32})\)", note)
    ranked = sorted((t for t in result.trials if t.reward is not None), key=lambda t: -t.reward)
    assert [int(child) for child, _, _ in links] == [t.number for t in ranked]
    for child, experiment, run_id in links:
        run = client.get_run(run_id)
        assert run.info.experiment_id == experiment == tracker.experiment_id
        assert run.data.tags["rlnas.child"] == child
    assert note.count("\n|") <= 2 + len(ranked)  # header, rule, one line per child


def test_each_epoch_is_logged_at_its_own_time(store, toy_space, toy_evaluator):
    _, client = store
    (tracker, result), _ = two_searches(store, toy_space, toy_evaluator(epochs=3), "epochs")
    for run, trial in zip(children_of(client, tracker), result.trials):
        curve = client.get_metric_history(run.info.run_id, "child/val_accuracy")
        stamps = [m.timestamp for m in sorted(curve, key=lambda m: m.step)]
        assert len(stamps) == 3 and stamps == sorted(stamps) and len(set(stamps)) == 3
        assert stamps[-1] == round(trial.finished_at * 1000)  # no measured ends: split evenly


def test_a_warm_started_search_says_so_in_its_name_and_on_its_children():
    warm = Config(controller=ReinforceConfig(from_="controllers/mnist1d-layers"))
    assert conventions.is_warm(warm, "reinforce") is True
    assert conventions.is_warm(Config(), "reinforce") is False
    assert conventions.is_warm(warm, "random") is None
    name = conventions.search_name(
        space="layers", task="mnist1d", strategy="reinforce", warm=True, run_id="3f2a" + "0" * 28
    )
    assert name == "search-layers-mnist1d-reinforce-warm-3f2a"
    tags = conventions.settings_tags(warm, strategy="reinforce", task="mnist1d", space="layers")
    assert tags["rlnas.controller_from"] == "controllers/mnist1d-layers"


def test_the_drawing_leaves_out_layers_that_do_not_apply():
    decisions = {
        "layer_0/filters": "16",
        "layer_1/filters": conventions.INACTIVE,
        "train/learning_rate": "0.01",
    }
    groups = diagram.groups(decisions)
    assert list(groups) == ["layer_0", "train"]
    svg = diagram.svg(decisions, title="child <1>")
    assert "layer_1" not in svg and "child &lt;1&gt;" in svg
    ET.fromstring(svg)


def test_mlflow_user_follows_mlflow(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "grace")
    assert conventions.user() == "grace"
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME")
    import getpass

    assert conventions.user() == getpass.getuser()


def test_each_search_saves_a_ui_view_of_its_spaces_children(store, toy_space, toy_evaluator):
    import json

    from rlnas.tracking import view

    _, client = store
    (tracker, _), _ = two_searches(store, toy_space, toy_evaluator(), "view")
    tags = client.get_experiment(tracker.experiment_id).tags
    state = json.loads(tags["mlflow.sharedViewState.rlnas-toy"])
    assert state["orderByKey"] == "metrics.`reward`" and state["orderByAsc"] is False
    decisions = [d.name for d in toy_space.signature]
    assert state["selectedColumns"][-len(decisions) - 1 :] == [
        "metrics.`reward`",
        *(f"params.`{name}`" for name in decisions),
    ]
    (chart,) = state["compareRunCharts"]
    assert chart["type"] == "PARALLEL" and chart["selectedMetrics"] == ["reward"]
    assert chart["metricSectionId"] == state["compareRunSections"][0]["uuid"]
    # the view's filter is valid search syntax and selects exactly the children
    found = client.search_runs([tracker.experiment_id], state["searchFilter"])
    assert found and all(r.data.tags["rlnas.kind"] == "child" for r in found)
    assert len(found) == 6  # both searches' children
    url = view.url("http://127.0.0.1:5000", tracker.experiment_id, "toy", compare=True)
    assert url.endswith(
        f"/#/experiments/{tracker.experiment_id}/runs?viewStateShareKey=rlnas-toy"
        "&compareRunsMode=CHART"
    )


def test_an_unreachable_ray_address_stops_the_search_before_the_store_exists(tmp_path):
    import os
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    db = tmp_path / "mlflow.db"
    env = {**os.environ, "RAY_ADDRESS": f"127.0.0.1:{port}"}
    env["PYTHONPATH"] = str(Path(__file__).parents[1])
    demo = str(Path(__file__).parents[1] / "configs" / "demo.yaml")
    args = [sys.executable, "-m", "rlnas", "search", "-c", demo, "--no-progress"]
    args += ["--set", "executor.kind=ray", "--set", f"tracking.uri=sqlite:///{db}"]
    proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.startswith("rlnas: error")]
    assert len(lines) == 1 and "`RAY_ADDRESS`" in lines[0] and str(port) in lines[0]
    assert not db.exists()


def test_final_runs_of_older_rlnas_still_give_their_model_keras_artifact(store, tmp_path):
    from rlnas.errors import TrackingError
    from rlnas.tracking.models import download_model

    _, client = store
    exp = client.create_experiment("old-final", artifact_location=str(tmp_path / "art"))
    run = client.create_run(exp, tags={"rlnas.kind": "final"}).info.run_id
    (tmp_path / "model.keras").write_bytes(b"an old run's model file")
    client.log_artifact(run, str(tmp_path / "model.keras"))
    path = download_model(client, run, tmp_path / "dl")
    assert path.read_bytes() == b"an old run's model file"
    bare = client.create_run(exp, tags={"rlnas.kind": "final"}).info.run_id
    with pytest.raises(TrackingError, match="has no model.keras artifact"):
        download_model(client, bare, tmp_path / "dl2")
