"""rlnas's overhead per child: a tracked search against bare ``model.fit`` of the same models.

In one process, this script runs rounds of two timed passes over the same children:

* **rlnas**: a real search (the same code path as ``rlnas search``: strict config, the
  controller, the Keras evaluator, the saved state, the MLflow tracker into a fresh
  temporary SQLite store), timed from the first ask to the end of the run, tracking included;
* **bare**: every child of that search rebuilt with the same builder, seed, data and epochs
  and trained with a bare ``model.fit(..., validation_data=..., validation_freq=...)``
  (validated after the same epochs as the search's children), timed the same way.

Every round's search has the same seed, so it trains the same children (the script checks
this). The order of the two passes alternates from round to round so that a machine that
slows down or speeds up over the run favours neither, and the figure is the median of the
rounds' ratios (the bar: at most 1.10). One-off costs of a process (TensorFlow's first
graph, the controller's first update) are paid by an untimed search of two children first.

    .venv/bin/python benchmarks/overhead.py --config configs/demo.yaml --children 12 --rounds 4
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


def bare_pass(trials, space, data, child) -> list[float]:
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
            epochs=child.epochs,
            validation_data=(data.x_val, data.y_val),
            validation_freq=1 if child.validate == "every_epoch" else child.epochs,
            verbose=0,
        )
        times.append(time.perf_counter() - start)
        del model
        keras.backend.clear_session(free_memory=False)
    return times


def tracked_search(cfg, children: int):
    """One search of ``cfg`` into a fresh temporary store: (wall seconds, result)."""
    from rlnas.commands.search import prepare

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp}/mlflow.db"
        prepared = prepare(cfg, progress=False)
        start = time.perf_counter()
        with prepared.tracker:
            result = prepared.search.run()
        seconds = time.perf_counter() - start
    assert len(result.trials) == children, (len(result.trials), children)
    return seconds, result, prepared.search.strategy.space


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "configs" / "demo.yaml"))
    parser.add_argument("--children", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from rlnas.config import load_config
    from rlnas.factory import load_task_data
    from rlnas.trial import TrialState

    cfg = load_config(args.config, [f"search.children={args.children}"])
    data = load_task_data(cfg)
    warm = load_config(args.config, ["search.children=2"])
    tracked_search(warm, 2)  # one-off costs of the process, untimed
    rows = []
    reference = None
    for r in range(args.rounds):
        passes = {}
        for kind in ("rlnas", "bare") if r % 2 == 0 else ("bare", "rlnas"):
            if kind == "rlnas":
                seconds, result, space = tracked_search(cfg, args.children)
                trials = [t for t in result.trials if t.state is TrialState.COMPLETE]
                children = [(t.architecture.hash, t.seed) for t in result.trials]
                assert reference is None or children == reference, "rounds trained other children"
                reference = children
                passes["rlnas"] = seconds / len(result.trials)
                passes["fit"] = sum(t.cost for t in trials) / len(trials)
            else:
                if reference is None:  # the first round's search decides the children
                    continue
                passes["bare"] = statistics.fmean(bare_pass(trials, space, data, cfg.child))
        if "bare" not in passes:
            passes["bare"] = statistics.fmean(bare_pass(trials, space, data, cfg.child))
        passes["ratio"] = passes["rlnas"] / passes["bare"]
        rows.append(passes)
        print(
            f"round {r + 1}: rlnas {passes['rlnas']:.2f} s/child (fit + validation "
            f"{passes['fit']:.2f}), bare {passes['bare']:.2f} s/child, ratio "
            f"{passes['ratio']:.3f}  (load {os.getloadavg()[0]:.2f})",
            flush=True,
        )
    print(
        f"config: {args.config}  children: {args.children} ({len(trials)} complete)  epochs: "
        f"{cfg.child.epochs}  validated: {cfg.child.validate}  rounds: {args.rounds}"
    )
    for key, label in (
        ("rlnas", "rlnas search (tracked)"),
        ("fit", "  of which fit + validation"),
        ("bare", "bare model.fit"),
    ):
        print(f"{label:32}{statistics.median(row[key] for row in rows):8.2f} s/child (median)")
    ratios = sorted(row["ratio"] for row in rows)
    print(
        f"ratio rlnas / bare: median {statistics.median(ratios):.3f} of {len(ratios)} rounds "
        f"({', '.join(f'{x:.3f}' for x in ratios)})  (bar: <= 1.10)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
