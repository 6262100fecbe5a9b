"""A weight-sharing search of the `nasnet` cell space: its refusals, then end to end into SQLite."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from rlnas import cli
from rlnas.config import load_config
from rlnas.errors import FieldError

NASNET = {
    "seed": 0,
    "task": {"name": "digits", "train_subset": 300},
    "space": "nasnet",
    "nasnet": {
        "num_blocks": 2,
        "operations": ["identity", "sep3x3", "max3x3", "conv1x3_3x1"],
        "cells_per_stage": 1,
        "reduction_stages": 1,
        "stem_filters": 8,
        "filters": 4,
        "separable_repeats": 1,
        "learning_rates": [0.003],
        "batch_sizes": [32],
        "optimizers": ["adam"],
        "dropouts": [0.0],
        "weight_decays": [0.0],
        "augmentations": ["none"],
    },
    "strategy": "reinforce",
    "controller": {"batch_size": 4},
    "child": {"epochs": 1},
    "shared": {
        "enabled": True,
        "train_steps": 1,
        "batch_size": 32,
        "warmup_steps": 2,
        "rescore_top": 3,
        "retrain_top": 1,
    },
    "search": {"children": 12},
}


def _write(tmp_path: Path, store: str) -> str:
    data = json.loads(json.dumps(NASNET))
    data["tracking"] = {"uri": store, "experiment": "nasnet-shared"}
    path = tmp_path / "nasnet.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


@pytest.mark.parametrize(
    "override, field",
    [
        ("nasnet.optimizers=[adam,sgd]", "nasnet.optimizers"),
        ("nasnet.augmentations=[none,light]", "nasnet.augmentations"),
        ("executor.kind=process", "executor.kind"),
    ],
)
def test_shared_nasnet_refuses_what_it_cannot_share_in_one_line(tmp_path, override, field):
    path = _write(tmp_path, "sqlite:///unused.db")
    load_config(path)  # the config itself is accepted
    with pytest.raises(FieldError) as info:
        load_config(path, [override])
    message = str(info.value)
    assert message.startswith(f"`{field}`") and "\n" not in message


@pytest.mark.slow
def test_a_shared_nasnet_search_logs_a_table_and_retrains_the_best_as_a_child_run(tmp_path):
    from mlflow.tracking import MlflowClient

    store = f"sqlite:///{tmp_path}/mlflow.db"
    path = _write(tmp_path, store)
    assert cli.main(["search", "-c", path, "--no-progress"]) == 0
    client = MlflowClient(store)
    exp = client.get_experiment_by_name("nasnet-shared")
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if r.data.tags.get("rlnas.kind") == "search"]
    children = [r for r in runs if r.data.tags.get("rlnas.kind") == "child"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    run_id = parents[0].info.run_id
    with open(client.download_artifacts(run_id, "shared_children.csv")) as f:
        table = list(csv.DictReader(f))
    assert [int(r["child"]) for r in table] == list(range(12))
    assert all(0.0 <= float(r["reward"]) <= 1.0 for r in table)
    decisions = [json.loads(r["decisions"]) for r in table]
    assert all("normal/block_1/op_b" in d and "reduction/block_0/input_a" in d for d in decisions)
    assert len(children) == 1  # the best re-scored child, trained from scratch
    child = children[0]
    assert child.info.status == "FINISHED" and "reward" in child.data.metrics
    arch = json.loads(
        Path(client.download_artifacts(child.info.run_id, "architecture.json")).read_text()
    )
    assert arch["decisions"] in decisions
