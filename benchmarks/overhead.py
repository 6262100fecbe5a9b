"""rlnas's overhead per child: a tracked search against bare ``model.fit`` of the same models.

In one process, this script

1. runs a real rlnas search (the same code path as ``rlnas search``: strict config, the
   controller, the Keras evaluator, the MLflow tracker into a temporary SQLite store) and
   takes its wall time from the first ask to the end of the run, tracking included;
2. rebuilds every child of that search with the same builder, seed, data and epochs and
   trains it with a bare ``model.fit(..., validation_data=...)``, timed the same way;
3. prints both per child, and the ratio (the bar: at most 1.10).

The search runs first (it decides the children), then two bare passes whose mean is the
baseline; one-off costs of a process (TensorFlow's first graph, the controller's first
update) are paid before the timed search. The machine is shared and noisy: quote the ratio.

    .venv/bin/python benchmarks/overhead.py --config configs/demo.yaml --children 12
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def bare_pass(trials, space, data, epochs: int) -> list[float]:
    """Train each trial's model with plain Keras; seconds per child (build + fit)."""
    import keras

    from rlnas.keras_build import build_model, compile_model

    times = []
    for trial in trials:
        blueprint = space.blueprint(trial.architecture)
        start = time.perf_counter()
        keras.utils.set_random_seed(trial.seed)
        model = build_model(blueprint, data.spec)
        compile_model(model, blueprint.training)
        model.fit(
            data.x_train,
            data.y_train,
            batch_size=blueprint.training.batch_size,
            epochs=epochs,
            validation_data=(data.x_val, data.y_val),
            verbose=0,
        )
        times.append(time.perf_counter() - start)
        del model
        keras.backend.clear_session(free_memory=False)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "configs" / "demo.yaml"))
    parser.add_argument("--children", type=int, default=12)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp}/mlflow.db"
        from rlnas.commands.search import prepare
        from rlnas.config import load_config
        from rlnas.factory import load_task_data
        from rlnas.trial import TrialState

        cfg = load_config(args.config, [f"search.children={args.children}"])
        prepared = prepare(cfg, progress=False)
        space = prepared.search.strategy.space
        data = load_task_data(cfg)
        # warm-up: TensorFlow's first graph and the controller's first update are
        # one-off costs of a process, paid before either timed pass
        strategy = prepared.search.strategy
        warm = [strategy.ask() for _ in range(getattr(strategy.config, "batch_size", 1))]
        for sample in warm:
            strategy.tell(sample, 0.0)
        if hasattr(strategy, "reset"):
            strategy.reset(cfg.seed)

        start = time.perf_counter()
        with prepared.tracker:
            result = prepared.search.run()
        search_seconds = time.perf_counter() - start
        trials = [t for t in result.trials if t.state is TrialState.COMPLETE]
        bare_a = bare_pass(trials, space, data, cfg.child.epochs)
        bare_b = bare_pass(trials, space, data, cfg.child.epochs)
    n = len(result.trials)
    bare = [(a + b) / 2 for a, b in zip(bare_a, bare_b)]
    per_child_search = search_seconds / n
    per_child_bare = sum(bare) / len(bare)
    training = sum(t.cost for t in trials) / len(trials)
    print(
        f"config: {args.config}  children: {n} ({len(trials)} complete)  "
        f"epochs: {cfg.child.epochs}  load: {os.getloadavg()[0]:.2f}"
    )
    print(f"{'':32}{'per child (s)':>16}{'median (s)':>14}")
    print(f"{'rlnas search (tracked)':32}{per_child_search:16.2f}{'':>14}")
    print(
        f"{'  of which fit+validate':32}{training:16.2f}"
        f"{statistics.median(t.cost for t in trials):14.2f}"
    )
    print(f"{'bare model.fit (mean of 2)':32}{per_child_bare:16.2f}{statistics.median(bare):14.2f}")
    print(f"ratio rlnas / bare: {per_child_search / per_child_bare:.3f}  (bar: <= 1.10)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
