"""Quick start: a small search on scikit-learn's digits from Python, tracked in MLflow.

    .venv/bin/python examples/quickstart.py

What ``rlnas search --config ...`` does, spelled out: a config, the parts built from it,
the search loop with its observers (the MLflow tracker, a progress bar), then the best child
rebuilt from its record by the same builder that trained it (decisions are replayed, never
decoded a second time) and saved as a Keras model.
"""

from __future__ import annotations

from rlnas import factory, zoo
from rlnas.config import load_config
from rlnas.progress import ProgressBar
from rlnas.search import Budget, Search
from rlnas.tracking import MLflowTracker


def main() -> None:
    cfg = load_config(
        None,  # no file: the defaults, changed by these overrides
        [
            "task.name=digits",
            "layers.num_layers=3",
            "child.epochs=3",
            "search.children=8",
            "controller.batch_size=4",
            "tracking.experiment=quickstart",
        ],
    )
    # the controller goes into the run's artifacts (controller/), as `rlnas search` does
    tracker = MLflowTracker.from_config(cfg, artifacts=[zoo.ControllerSaver()])
    tracker.connect()  # fails fast if the store cannot be reached
    space = factory.make_space(cfg)  # loads and checks the data
    search = Search(
        factory.make_strategy(cfg, space),
        factory.make_executor(cfg),
        Budget(children=cfg.search.children),
        seed=cfg.seed,
        observers=[tracker, ProgressBar(cfg.search.children)],
    )
    with tracker:  # should the search raise, its MLflow run ends FAILED, not RUNNING
        result = search.run()
    best = result.best
    print(f"best child {best.number}: val_accuracy {best.reward:.4f}")
    print(f"MLflow parent run {tracker.run_id} in {tracker.tracking_uri}")

    # rebuild the best child from its record and keep it as a Keras model
    from rlnas.keras_build import build_model

    model = build_model(space.blueprint(best.architecture), factory.load_task_data(cfg).spec)
    model.summary()
    model.save("best-child.keras")


if __name__ == "__main__":
    main()
