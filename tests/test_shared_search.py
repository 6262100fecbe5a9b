"""A weight-sharing search: bad input first, then end to end into SQLite, then resume."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from rlnas import cli
from rlnas.config import load_config
from rlnas.errors import FieldError

SHARED = {
    "seed": 0,
    "task": {"name": "digits", "train_subset": 300},
    "space": "layers",
    "layers": {
        "num_layers": 3,
        "operations": ["conv", "sepconv", "maxpool", "identity"],
        "filters": [4, 8],
        "kernel_sizes": [3],
        "strides": [1],
        "reduce_after": [0],
        "activations": ["relu", "tanh"],
        "merges": ["add"],
        "learning_rates": [0.003],
        "batch_sizes": [32],
        "optimizers": ["adam"],
        "dropouts": [0.0],
        "weight_decays": [0.0],
        "augmentations": ["none"],
    },
    "strategy": "reinforce",
    "controller": {"batch_size": 5},
    "child": {"epochs": 1},
    "shared": {
        "enabled": True,
        "train_steps": 1,
        "batch_size": 32,
        "warmup_steps": 5,
        "checkpoint_every": 4,
        "rescore_top": 4,
        "retrain_top": 2,
    },
    "search": {"children": 24},
}


def _write(tmp_path: Path, store: str, **changes) -> str:
    data = json.loads(json.dumps(SHARED))
    for key, value in changes.items():
        section, _, name = key.partition("__")
        data[section][name] = value
    data["tracking"] = {"uri": store, "experiment": "shared"}
    path = tmp_path / "shared.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


@pytest.mark.parametrize(
    "override, field",
    [
        ("executor.kind=process", "executor.kind"),
        ("space=nb201", "space"),
        ("layers.strides=[1,2]", "layers.strides"),
        ("layers.merges=[add,concat]", "layers.merges"),
        ("layers.optimizers=[adam,sgd]", "layers.optimizers"),
        ("shared.checkpoint_every=0", "shared.checkpoint_every"),
        ("shared.retrain_top=30", "shared.retrain_top"),
        ("shared.lr_schedule=cos", "shared.lr_schedule"),
        ("shared.lr_period=0", "shared.lr_period"),
        ("shared.lr_period_mult=0.5", "shared.lr_period_mult"),
        ("shared.lr_min=-1", "shared.lr_min"),
    ],
)
def test_shared_mode_refuses_what_it_cannot_share_in_one_line(tmp_path, override, field):
    path = _write(tmp_path, "sqlite:///unused.db")
    with pytest.raises(FieldError) as info:
        load_config(path, [override])
    message = str(info.value)
    assert message.startswith(f"`{field}`") and "\n" not in message


def test_the_cosine_schedule_decays_to_lr_min_then_restarts_over_a_longer_period():
    from rlnas.evaluators.shared_config import SharedConfig

    cosine = SharedConfig(
        lr_schedule="cosine", learning_rate=0.05, lr_min=0.001, lr_period=10, lr_period_mult=2
    )
    middle = (0.05 + 0.001) / 2
    assert cosine.learning_rate_at(0) == pytest.approx(0.05)
    assert cosine.learning_rate_at(5) == pytest.approx(middle)
    first = [cosine.learning_rate_at(t) for t in range(10)]
    assert all(a > b > 0.001 for a, b in zip(first, first[1:]))
    assert cosine.learning_rate_at(10) == pytest.approx(0.05)  # restart
    assert cosine.learning_rate_at(20) == pytest.approx(middle)  # a period of 20 steps
    assert cosine.learning_rate_at(30) == pytest.approx(0.05)
    assert {SharedConfig(learning_rate=0.01).learning_rate_at(t) for t in range(50)} == {0.01}
    with pytest.raises(FieldError, match="below learning_rate"):
        SharedConfig(lr_schedule="cosine", learning_rate=0.01, lr_min=0.01)


def test_the_cli_refuses_the_process_executor_with_status_2(tmp_path, capsys):
    path = _write(tmp_path, f"sqlite:///{tmp_path}/m.db")
    code = cli.main(["search", "-c", path, "--set", "executor.kind=process", "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "executor.kind" in err[0] and "one process" in err[0]


def _runs(store: str, experiment: str = "shared"):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(store)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if r.data.tags.get("rlnas.kind") == "search"]
    children = [r for r in runs if r.data.tags.get("rlnas.kind") == "child"]
    return client, parents, children


def _table(client, run_id: str, name: str) -> list[dict]:
    with open(client.download_artifacts(run_id, name)) as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_a_shared_search_logs_a_table_and_retrains_the_best_as_child_runs(tmp_path):
    from rlnas.tracking.models import read_search

    store = f"sqlite:///{tmp_path}/mlflow.db"
    summary_path = tmp_path / "summary.json"
    path = _write(tmp_path, store)
    assert cli.main(["search", "-c", path, "--no-progress", "--summary", str(summary_path)]) == 0
    client, parents, children = _runs(store)
    assert len(parents) == 1
    parent = parents[0]
    run_id = parent.info.run_id
    assert parent.info.status == "FINISHED" and "reinforce" in parent.info.run_name
    table = _table(client, run_id, "shared_children.csv")
    assert [int(r["child"]) for r in table] == list(range(24))
    assert all(0.0 <= float(r["reward"]) <= 1.0 for r in table)
    history = client.get_metric_history(run_id, "shared/reward")
    assert sorted(m.step for m in history) == list(range(24))
    assert client.get_metric_history(run_id, "controller/entropy")
    rescored = _table(client, run_id, "shared_rescored.csv")
    assert len(rescored) == 4 and [r["retrained_child"] for r in rescored[:2]] == ["0", "1"]
    assert [r["retrained"] for r in rescored] == ["True", "True", "False", "False"]
    assert len(children) == 2  # only the retrained children are runs
    decisions = {json.dumps(json.loads(r["decisions"]), sort_keys=True) for r in table}
    rewards, numbers = {}, {}
    for child in children:
        assert child.info.status == "FINISHED" and "reward" in child.data.metrics
        assert child.data.tags["rlnas.strategy"] == "reinforce"
        arch = json.loads(
            Path(client.download_artifacts(child.info.run_id, "architecture.json")).read_text()
        )
        assert json.dumps(arch["decisions"], sort_keys=True) in decisions
        rewards[child.info.run_id] = child.data.metrics["reward"]
        numbers[child.info.run_id] = int(child.data.tags["rlnas.child"])

    # the shared phase's ranking, under shared/ ...
    shared_top = _table(client, run_id, "shared/top_k.csv")
    best_shared = max(float(r["reward"]) for r in table)
    assert float(shared_top[0]["reward"]) == pytest.approx(best_shared)
    assert all(r["run_id"] == "" for r in shared_top)  # shared children have no runs
    shared_best = json.loads(
        Path(client.download_artifacts(run_id, "shared/best_architecture.json")).read_text()
    )
    assert shared_best["reward"] == pytest.approx(best_shared)
    metrics = parent.data.metrics
    assert metrics["shared/children"] == 24
    assert metrics["shared/best_reward"] == pytest.approx(best_shared)
    # ... and the search's own results are the retrained children, as rlnas final reads them
    top = _table(client, run_id, "top_k.csv")
    assert {r["run_id"] for r in top} == set(rewards)
    best_run = max(rewards, key=lambda r: (rewards[r], -numbers[r]))  # ties: the earlier
    best = json.loads(Path(client.download_artifacts(run_id, "best_architecture.json")).read_text())
    assert best["run_id"] == best_run == parent.data.tags["rlnas.best_run_id"]
    assert metrics["search/children"] == 2
    assert metrics["search/best_reward"] == pytest.approx(rewards[best_run])
    record = read_search(client, run_id, store)
    assert record.children[0].run_id == best_run
    summary = json.loads(summary_path.read_text())
    assert summary["best_run_id"] == best_run and summary["children"] == 2
    assert summary["shared"]["children"] == 24
    assert summary["shared"]["best_reward"] == pytest.approx(best_shared)
    assert not (tmp_path / "state" / run_id).exists()  # finished and recorded


@pytest.mark.slow
def test_shared_weights_round_trip_through_an_atomic_checkpoint(tmp_path):
    from rlnas import factory
    from rlnas.evaluators.shared import WEIGHTS_FILE, SharedEvaluator
    from rlnas.strategies.random_search import RandomSearch

    cfg = load_config(_write(tmp_path, "sqlite:///unused.db"))
    space = factory.make_space(cfg)
    data = factory.load_task_data(cfg)
    first = SharedEvaluator(space, data, cfg.shared, seed=0)
    architectures = [RandomSearch(space, seed=3).ask().architecture for _ in range(1)]
    for n in range(6):
        first.evaluate(architectures[0], seed=0, number=n)
    first.save(tmp_path)
    assert (tmp_path / WEIGHTS_FILE).is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    second = SharedEvaluator(space, data, cfg.shared, seed=0)
    assert second.restore(tmp_path)
    assert (second.children, second.steps) == (first.children, first.steps)
    for a, b in zip(first.net.weights, second.net.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert second.rescore(architectures[0]) == first.rescore(architectures[0])
    assert not SharedEvaluator(space, data, cfg.shared, seed=0).restore(tmp_path / "none")


@pytest.mark.slow
def test_an_interrupted_shared_search_resumes_with_its_weights_and_counts_nothing_twice(
    tmp_path, monkeypatch
):
    from rlnas.evaluators import shared

    store = f"sqlite:///{tmp_path}/mlflow.db"
    path = _write(tmp_path, store, shared__retrain_top=0, shared__rescore_top=2)
    real = shared.SharedEvaluator.evaluate

    def dies_at_ten(self, architecture, *, seed, number):
        if number == 10:
            raise KeyboardInterrupt
        return real(self, architecture, seed=seed, number=number)

    monkeypatch.setattr(shared.SharedEvaluator, "evaluate", dies_at_ten)
    assert cli.main(["search", "-c", path, "--no-progress"]) == 130
    client, parents, _ = _runs(store)
    run_id = parents[0].info.run_id
    state = Path(tmp_path, "state", run_id)
    assert (state / shared.WEIGHTS_FILE).is_file()
    with np.load(state / shared.WEIGHTS_FILE) as saved:
        assert int(saved["counters"][0]) == 10  # the children it was trained on
    restored = []
    real_restore = shared.SharedEvaluator.restore

    def restore(self, folder):
        restored.append(real_restore(self, folder))
        return restored[-1]

    monkeypatch.setattr(shared.SharedEvaluator, "evaluate", real)
    monkeypatch.setattr(shared.SharedEvaluator, "restore", restore)
    assert cli.main(["resume", run_id, "--uri", store, "--no-progress"]) == 0
    assert restored == [True]
    client, parents, children = _runs(store)
    assert parents[0].info.status == "FINISHED" and not children
    table = _table(client, run_id, "shared_children.csv")
    assert [int(r["child"]) for r in table] == list(range(24))
    steps = [m.step for m in client.get_metric_history(run_id, "shared/reward")]
    assert sorted(steps) == list(range(24))  # child 10 ran once, after the resume


@pytest.mark.slow
def test_a_cosine_schedule_sets_the_shared_learning_rate_without_tracing_again(tmp_path):
    from rlnas import factory
    from rlnas.evaluators.shared import SharedEvaluator
    from rlnas.strategies.random_search import RandomSearch

    overrides = ["shared.lr_schedule=cosine", "shared.lr_period=3", "shared.lr_min=0.001"]
    cfg = load_config(_write(tmp_path, "sqlite:///unused.db"), overrides)
    space = factory.make_space(cfg)
    evaluator = SharedEvaluator(space, factory.load_task_data(cfg), cfg.shared, seed=0)
    sampler = RandomSearch(space, seed=3)
    evaluator.evaluate(sampler.ask().architecture, seed=0, number=0)  # warm-up 5, then 1
    traces = evaluator.net.train_step.experimental_get_tracing_count()
    rates = []
    for n in range(1, 5):
        outcome = evaluator.evaluate(sampler.ask().architecture, seed=0, number=n)
        rates.append(outcome.metrics["shared/learning_rate"])
        now = float(np.asarray(evaluator.net.optimizer.learning_rate))
        assert now == pytest.approx(cfg.shared.learning_rate_at(evaluator.steps - 1))
    assert evaluator.net.train_step.experimental_get_tracing_count() == traces
    assert rates == [cfg.shared.learning_rate_at(s) for s in (6, 7, 8, 9)]
    assert len(set(rates)) == 4


def test_best_distinct_keeps_one_trial_per_architecture_by_reward():
    from conftest import ToySpace

    from rlnas.shared_search import Listed, best_distinct
    from rlnas.strategies.base import SpaceExhausted
    from rlnas.trial import Outcome, Trial

    space = ToySpace()
    samples = [
        space.replay(a)[0]
        for a in ({"width": 8, "act": "relu", "depth": 1}, {"width": 16, "act": "relu", "depth": 1})
    ]
    trials = []
    for number, (sample, reward) in enumerate(
        [(samples[0], 0.5), (samples[1], 0.7), (samples[0], 0.9), (samples[1], 0.1)]
    ):
        trial = Trial(number=number, sample=sample, seed=0)
        trial.complete(Outcome(reward=reward))
        trials.append(trial)
    assert [t.number for t in best_distinct(trials, 5)] == [2, 1]
    assert [t.number for t in best_distinct(trials, 1)] == [2]
    listed = Listed(space, [t.architecture for t in best_distinct(trials, 5)])
    assert [listed.ask().architecture for _ in range(2)] == [
        samples[0].architecture,
        samples[1].architecture,
    ]
    with pytest.raises(SpaceExhausted):
        listed.ask()


@pytest.mark.slow
def test_sigkill_while_retraining_then_resume_retrains_each_child_once(tmp_path, monkeypatch):
    """The real CLI killed with SIGKILL once the retraining has finished a child (its state
    says so); the resume retrains only the children not finished, and the store ends with
    each retrained child once, the shared phase's records intact, no run left RUNNING."""
    import signal
    import subprocess
    import sys
    import time

    from rlnas.checkpoint import read
    from rlnas.evaluators.keras_child import KerasEvaluator
    from rlnas.shared_search import RETRAIN_FILE

    store = f"sqlite:///{tmp_path}/mlflow.db"
    path = _write(
        tmp_path, store, search__children=12, shared__rescore_top=3, shared__retrain_top=3
    )
    with open(tmp_path / "stderr.txt", "w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "rlnas", "search", "-c", path, "--no-progress"],
            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=err,
        )  # fmt: skip

    def retrained(file: Path) -> int:
        try:
            trials = read(file)["search"]["trials"]
        except Exception:  # not written yet
            return 0
        return sum(t["state"] == "COMPLETE" for t in trials)

    deadline = time.monotonic() + 400
    saved: list[Path] = []
    while proc.poll() is None and time.monotonic() < deadline:
        saved = list(tmp_path.glob(f"state/*/{RETRAIN_FILE}"))
        if saved and retrained(saved[0]) >= 1:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL, (tmp_path / "stderr.txt").read_text()[-3000:]
    (file,) = saved
    run_id = file.parent.name
    state = read(file)["search"]
    done = retrained(file)
    assert 1 <= done < 3, "the kill came after the retraining had finished"
    assert state["strategy"]["asked"] >= done

    calls = []
    real = KerasEvaluator.evaluate

    def counted(self, architecture, *, seed, number):
        calls.append(number)
        return real(self, architecture, seed=seed, number=number)

    monkeypatch.setattr(KerasEvaluator, "evaluate", counted)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["resume", run_id, "--uri", store, "--no-progress"]) == 0
    assert sorted(calls) == list(range(done, 3))  # the finished ones were not retrained

    client, parents, children = _runs(store)
    assert parents[0].info.status == "FINISHED"
    assert all(r.info.status != "RUNNING" for r in children)
    finished = sorted(
        int(r.data.tags["rlnas.child"]) for r in children if r.info.status == "FINISHED"
    )
    assert finished == [0, 1, 2]  # each retrained child once
    top = _table(client, run_id, "top_k.csv")
    assert sorted(int(r["child"]) for r in top) == [0, 1, 2]
    table = _table(client, run_id, "shared_children.csv")
    assert [int(r["child"]) for r in table] == list(range(12))
    rescored = _table(client, run_id, "shared_rescored.csv")
    assert [r["retrained_child"] for r in rescored] == ["0", "1", "2"]
    assert len(client.get_metric_history(run_id, "shared/rescored_best")) == 1
    assert not (tmp_path / "state" / run_id).exists()
