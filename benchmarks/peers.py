"""rlnas side by side with KerasTuner on the same space, data, epochs and wall-clock budget.

    python benchmarks/peers.py                                   # the full comparison
    python benchmarks/peers.py --train-subset 2000 --epochs 2 --budget 200 --seeds 0
    python benchmarks/peers.py --tasks table --table-budget 50          # the regression table

The space is rlnas's `layers` space of ``--config`` (the README's Fashion-MNIST config by
default), written for KerasTuner by running that space's own ``declare`` with a decider that
registers each decision as ``hp.Choice(name, choices)``: the same names, the same choices,
and the model built by the same builder (``rlnas.keras_build``). A decision rlnas leaves
inactive (the merge of a layer that takes no skip) is still a KerasTuner hyperparameter, as a
KerasTuner user would write it; its value is then unused.

Per seed, every tool searches for ``--budget`` seconds (no trial starts after it), on the
task's splits from :func:`rlnas.tasks.load_task` (the same for every tool; with
``--split-per-seed`` each seed draws its own split, ``task.split_seed`` = the seed), ``--epochs``
epochs per child, one child at a time in this process:

* ``rlnas``: rlnas's own search loop with the REINFORCE controller (reward: validation
  accuracy after the last epoch; ``child.target_mmacs`` off, so that both tools score the
  same quantity);
* ``kt-random``, ``kt-hyperband``, ``kt-bayesian``: KerasTuner's RandomSearch, Hyperband
  (``max_epochs = --epochs``) and BayesianOptimization (score: best epoch's validation
  accuracy, as KerasTuner scores every trial);
* ``kt-reinforce``: KerasTuner's loop with :class:`rlnas.keras_tuner.ReinforceOracle`.

Children are trained as each tool trains them: KerasTuner's by a plain ``model.fit``, rlnas's
by its evaluator (which also re-estimates batch-norm statistics before validating, so a child
trained for a few dozen steps does not validate near chance). Every winner is then retrained
with one schedule (``--retrain-epochs`` on training + validation data, its own batch size
and optimizer, seed fixed, batch-norm statistics re-estimated) and tested once on the test
split, so that neither tool's scoring (best epoch against last) decides the comparison.
Printed per tool: best validation score, retrained test score, trials completed and
search seconds, per seed and as the mean over seeds.

The regression table (``--tasks table``) is scikit-learn's ``load_diabetes`` written to a CSV
file and read by rlnas's ``table`` task with ``--table-config`` (``configs/diabetes_csv.yaml``:
a small `layers` space of dense layers): every tool searches on the validation mean absolute
error (rlnas's reward ``-val_mae``; KerasTuner's objective ``val_mae``, direction ``min``),
and each winner is retrained ``--table-retrain-epochs`` epochs on training + validation rows
and tested once: mean absolute error, root mean squared error and R2 on the test rows.

Within a seed the tools run one after the other, their order rotated by the seed, so that a
drift in the machine's load does not always fall on the same tool.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

TOOLS = ("rlnas", "kt-random", "kt-hyperband", "kt-bayesian", "kt-reinforce")
TASKS = ("fashion", "table")


class HpDecider:
    """A decider for ``Space.declare`` that registers every decision in KerasTuner's ``hp``."""

    def __init__(self, hp: Any) -> None:
        self.hp = hp

    def choice(self, name, choices, *, mask=None, active=True):
        if tuple(choices) == (False, True):  # (hp.Choice keeps booleans as integers)
            value = self.hp.Boolean(name)
        else:
            value = self.hp.Choice(name, list(choices))
        if not active:
            return None
        if mask is not None and not mask[list(choices).index(value)]:
            raise ValueError(f"`{name}` = {value!r} is not allowed after the earlier decisions.")
        return value


def blueprint_of(space, values: Mapping[str, Any]):
    """The blueprint of a child whose decisions are ``values`` (inactive ones ignored)."""
    return space.sample(lambda decision, allowed: decision.index_of(values[decision.name]))[1]


@dataclass(frozen=True)
class Task:
    """One comparison: a config, the overrides every tool shares, and how it is scored."""

    title: str
    config: str
    overrides: tuple[str, ...]
    metric: str
    """The validation metric every tool searches on, without ``val_`` (``accuracy``, ``mae``)."""
    maximise: bool
    epochs: int
    budget: float
    retrain_epochs: int


def hypermodel(space, spec, metric: str):
    """The `layers` space as a KerasTuner hypermodel (built by rlnas's own builder)."""
    import keras_tuner

    from rlnas.keras_build import build_model
    from rlnas.keras_build.layers_model import compile_model

    class LayersHyperModel(keras_tuner.HyperModel):
        def build(self, hp):
            blueprint = space.declare(HpDecider(hp))
            model = build_model(blueprint, spec)
            return compile_model(model, blueprint.training, spec=spec, metric=metric)

        def fit(self, hp, model, *args, **kwargs):
            batch = space.declare(HpDecider(hp)).training.batch_size
            return model.fit(*args, batch_size=batch, **kwargs)

    return LayersHyperModel()


def run_rlnas(cfg, space, task: Task) -> dict[str, Any]:
    from rlnas import factory
    from rlnas.search import Budget, Search

    search = Search(
        factory.make_strategy(cfg, space),
        factory.make_executor(cfg),
        Budget(wall_seconds=task.budget),
        seed=cfg.seed,
    )
    result = search.run()
    done = [t for t in result.trials if t.reward is not None]
    best = result.best
    return {
        "decisions": dict(best.architecture) if best else None,
        # the reward of a metric to minimise is its negative
        "val": best.metrics[f"val_{task.metric}"] if best else None,
        "trials": len(done),
    }


def run_keras_tuner(tool: str, space, data, cfg, task: Task, workdir: str) -> dict[str, Any]:
    import keras_tuner

    from rlnas.keras_tuner import ReinforceOracle

    deadline = time.time() + task.budget
    kinds: dict[str, Callable[..., Any]] = {
        "kt-random": keras_tuner.RandomSearch,
        "kt-hyperband": keras_tuner.Hyperband,
        "kt-bayesian": keras_tuner.BayesianOptimization,
        "kt-reinforce": keras_tuner.Tuner,
    }

    class Timed(kinds[tool]):  # no trial starts after the deadline (as rlnas's wall_seconds)
        def on_trial_end(self, trial):
            super().on_trial_end(trial)
            if time.time() >= deadline:
                self.oracle.max_trials = len(self.oracle.trials)

    objective = keras_tuner.Objective(f"val_{task.metric}", "max" if task.maximise else "min")
    common = {"hypermodel": hypermodel(space, data.spec, task.metric), "directory": workdir}
    common.update(project_name=tool, overwrite=True)
    if tool == "kt-reinforce":
        oracle = ReinforceOracle(objective=objective, max_trials=10**6, seed=cfg.seed + 1)
        tuner = Timed(oracle=oracle, **common)
    elif tool == "kt-hyperband":
        tuner = Timed(
            objective=objective,
            max_epochs=task.epochs,
            seed=cfg.seed + 1,
            hyperband_iterations=10**6,
            **common,
        )
    else:
        tuner = Timed(objective=objective, max_trials=10**6, seed=cfg.seed + 1, **common)
    tuner.search(
        data.x_train,
        data.y_train,
        validation_data=(data.x_val, data.y_val),
        epochs=task.epochs,
        verbose=0,
    )
    trials = [t for t in tuner.oracle.trials.values() if t.status == "COMPLETED"]
    best = tuner.oracle.get_best_trials(1)
    best = best[0] if best and best[0].status == "COMPLETED" else None
    return {
        "decisions": dict(best.hyperparameters.values) if best else None,
        "val": float(best.score) if best else None,
        "trials": len(trials),
    }


def retrain(space, data, decisions: Mapping[str, Any], task: Task, seed: int) -> dict[str, float]:
    """Train the winner afresh on training + validation data, test it once."""
    import keras
    import numpy as np

    from rlnas.keras_build import build_model
    from rlnas.keras_build.batchnorm import recalibrate_batch_norm
    from rlnas.keras_build.layers_model import compile_model

    keras.utils.set_random_seed(seed)
    blueprint = blueprint_of(space, decisions)
    model = build_model(blueprint, data.spec)
    compile_model(model, blueprint.training, spec=data.spec, metric=task.metric)
    x = np.concatenate([data.x_train, data.x_val])
    y = np.concatenate([data.y_train, data.y_val])
    model.fit(x, y, epochs=task.retrain_epochs, batch_size=blueprint.training.batch_size, verbose=0)
    recalibrate_batch_norm(model, x)
    if data.spec.task == "classification":
        return {"accuracy": float(model.evaluate(data.x_test, data.y_test, verbose=0)[1])}
    truth = np.asarray(data.y_test, dtype=np.float64).reshape(len(data.y_test), -1)
    error = model.predict(data.x_test, verbose=0).astype(np.float64) - truth
    spread = np.sum(np.square(truth - truth.mean(axis=0)))
    return {
        "mae": float(np.mean(np.abs(error))),
        "rmse": float(np.sqrt(np.mean(np.square(error)))),
        "r2": float(1.0 - np.sum(np.square(error)) / spread),
    }


def fmt(x: float | None, digits: int = 4) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def mean(values: list[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return statistics.mean(kept) if kept else None


def compare(task: Task, args: argparse.Namespace) -> None:
    """Every tool on ``task`` for each seed, then the per-seed and mean tables."""
    import keras

    from rlnas import factory
    from rlnas.config import load_config

    rows: dict[str, list[dict[str, Any]]] = {tool: [] for tool in args.tools}
    print(f"\n## {task.title}", flush=True)
    for seed in args.seeds:
        split = [f"task.split_seed={seed}"] if args.split_per_seed else []
        cfg = load_config(task.config, [f"seed={seed}", *split, *task.overrides])
        data = factory.load_task_data(cfg)
        space = factory.make_space(cfg)
        print(
            f"seed {seed}: {data.source}; train {len(data.x_train)}, val {len(data.x_val)}, "
            f"test {len(data.x_test)}; {len(space.signature)} decisions",
            flush=True,
        )
        # the order rotates with the seed, so that no tool always runs first (or last) while
        # the machine's load drifts
        shift = seed % len(args.tools)
        for tool in args.tools[shift:] + args.tools[:shift]:
            keras.utils.set_random_seed(seed)
            start = time.time()
            with tempfile.TemporaryDirectory() as tmp:
                if tool == "rlnas":
                    found = run_rlnas(cfg, space, task)
                else:
                    found = run_keras_tuner(tool, space, data, cfg, task, tmp)
            found["seconds"] = time.time() - start
            found["test"] = (
                retrain(space, data, found["decisions"], task, seed)
                if found["decisions"] is not None
                else {}
            )
            found["seed"] = seed
            rows[tool].append(found)
            tests = "  ".join(f"test {k} {v:.4f}" for k, v in found["test"].items())
            print(
                f"  {tool:13s} best val_{task.metric} {fmt(found['val'])}  retrained {tests}  "
                f"trials {found['trials']:3d}  search {found['seconds']:.0f} s  "
                f"load {os.getloadavg()[0]:.1f}",
                flush=True,
            )
            print(f"    winner: {found['decisions']}", flush=True)
    print(
        f"\n{task.title}: {task.config}, {task.epochs} epochs per child, {task.budget:.0f} s "
        f"per tool, retrain {task.retrain_epochs} epochs, seeds {args.seeds}"
        f"{' (each its own split)' if args.split_per_seed else ''}, "
        f"load {os.getloadavg()[0]:.2f}"
    )
    names = sorted({k for found in rows.values() for f in found for k in f["test"]})
    print(f"| tool | seed | best val_{task.metric} | " + " | ".join(f"test {n}" for n in names)
          + " | trials | search s |")  # fmt: skip
    print("| --- | ---: | ---: | " + " | ".join("---:" for _ in names) + " | ---: | ---: |")
    for tool, found in rows.items():
        for f in [*found, None]:
            if f is None:  # the mean over seeds
                f = {
                    "seed": "mean",
                    "val": mean([g["val"] for g in found]),
                    "test": {n: mean([g["test"].get(n) for g in found]) for n in names},
                    "trials": mean([g["trials"] for g in found]),
                    "seconds": mean([g["seconds"] for g in found]),
                }
            tests = " | ".join(fmt(f["test"].get(n)) for n in names)
            print(
                f"| {tool} | {f['seed']} | {fmt(f['val'])} | {tests} | {f['trials']:.1f} | "
                f"{f['seconds']:.0f} |"
            )


def write_diabetes(folder: str) -> str:
    """scikit-learn's diabetes table (442 rows, 10 features, ``target``) as a CSV file."""
    from sklearn.datasets import load_diabetes

    path = os.path.join(folder, "diabetes.csv")
    load_diabetes(as_frame=True).frame.to_csv(path, index=False)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["fashion", "table"], choices=TASKS)
    parser.add_argument("--config", default="configs/fashion_mnist.yaml")
    parser.add_argument(
        "--train-subset",
        type=int,
        default=None,
        help="Fashion-MNIST: training images per child (default: the config's)",
    )
    parser.add_argument("--epochs", type=int, default=2, help="Fashion-MNIST: epochs per child")
    parser.add_argument("--budget", type=float, default=720.0, help="search seconds per tool")
    parser.add_argument("--retrain-epochs", type=int, default=10)
    parser.add_argument("--table-config", default="configs/diabetes_csv.yaml")
    parser.add_argument("--table-epochs", type=int, default=15, help="table: epochs per child")
    parser.add_argument("--table-budget", type=float, default=60.0)
    parser.add_argument("--table-retrain-epochs", type=int, default=30)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--split-per-seed",
        action="store_true",
        help="draw each seed's own training / validation / test split (task.split_seed = the "
        "seed; the same split for every tool within a seed), so that the mean over seeds is "
        "not one test split's luck",
    )
    parser.add_argument("--tools", nargs="+", default=list(TOOLS), choices=TOOLS)
    args = parser.parse_args()
    print(f"load {os.getloadavg()} on {os.cpu_count()} cores", flush=True)
    shared = ("child.target_mmacs=null", "executor.kind=inline")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.tasks:
            if name == "fashion":
                subset = (f"task.train_subset={args.train_subset}",) if args.train_subset else ()
                task = Task(
                    "Fashion-MNIST (validation accuracy, test accuracy)",
                    args.config,
                    (f"child.epochs={args.epochs}", "child.metric=val_accuracy", *shared) + subset,
                    "accuracy",
                    True,
                    args.epochs,
                    args.budget,
                    args.retrain_epochs,
                )
            else:
                task = Task(
                    "diabetes table (validation MAE, test MAE / RMSE / R2)",
                    args.table_config,
                    (
                        f"task.path={write_diabetes(tmp)}",
                        f"child.epochs={args.table_epochs}",
                        "child.metric=val_mae",
                        *shared,
                    ),
                    "mae",
                    False,
                    args.table_epochs,
                    args.table_budget,
                    args.table_retrain_epochs,
                )
            compare(task, args)


if __name__ == "__main__":
    main()
