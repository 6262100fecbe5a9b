"""One timestamp per epoch: a real Keras child trained in a worker (a process, a local Ray)
records when each epoch ended, the times travel back with its outcome, and the child's
per-epoch metrics in a real SQLite store carry them."""

from __future__ import annotations

import pytest

from rlnas import factory
from rlnas.config import load_config
from rlnas.search import Budget, Search
from rlnas.tracking import MLflowTracker, conventions

mlflow = pytest.importorskip("mlflow")

EPOCHS = 3
OVERRIDES = [
    "seed=0",
    "task.name=digits",
    "task.train_subset=120",
    "space=layers",
    "layers.num_layers=2",
    "layers.filters=[4]",
    "layers.batch_sizes=[32]",
    "strategy=random",
    f"child.epochs={EPOCHS}",
    "child.validate=every_epoch",
    "executor.workers=1",
    "executor.recycle_after=null",
]


def test_measured_epoch_ends_are_kept_strictly_increasing_in_milliseconds():
    ends = [100.0001, 100.0002, 100.5, 101.25]  # the first two end within one millisecond
    assert conventions.epoch_times(99.0, 102.0, 4, ends) == [100.0, 100.001, 100.5, 101.25]
    # nothing measured (or not one per epoch): the training time split evenly
    assert conventions.epoch_times(99.0, 102.0, 3) == [100.0, 101.0, 102.0]
    assert conventions.epoch_times(99.0, 102.0, 3, [100.0]) == [100.0, 101.0, 102.0]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["process", "ray"])
def test_each_epoch_of_a_worker_child_is_logged_at_its_measured_end(kind, tmp_path):
    if kind == "ray":
        pytest.importorskip("ray")
    cfg = load_config(None, [*OVERRIDES, f"executor.kind={kind}"])
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    tracker = MLflowTracker(uri, "epochs", task="digits")
    space = factory.make_space(cfg)
    search = Search(
        factory.make_strategy(cfg, space),
        factory.make_executor(cfg),
        Budget(2),
        observers=[tracker],
    )
    result = search.run()
    client = mlflow.MlflowClient(uri)
    runs = client.search_runs(
        [tracker.experiment_id], f"tags.mlflow.parentRunId = '{tracker.run_id}'"
    )
    by_child = {int(r.data.tags["rlnas.child"]): r for r in runs}
    assert len(result.trials) == len(by_child) == 2
    for trial in result.trials:
        assert trial.state.value == "COMPLETE", trial.message
        ends = trial.epoch_ends  # measured in the worker, carried back with the outcome
        assert len(ends) == EPOCHS and trial.started_at < ends[0] < ends[-1] <= trial.finished_at
        want = [round(t * 1000) for t in ends]
        run = by_child[trial.number]
        for name in ("child/loss", "child/val_accuracy"):
            curve = client.get_metric_history(run.info.run_id, name)
            stamps = [m.timestamp for m in sorted(curve, key=lambda m: m.step)]
            assert stamps == want, name
            assert len(set(stamps)) == EPOCHS and stamps == sorted(stamps)
