"""rlnas side by side with KerasTuner on the same space, data, epochs and wall-clock budget.

    python benchmarks/peers.py                                   # the full comparison
    python benchmarks/peers.py --train-subset 2000 --epochs 2 --budget 200 --seeds 0

The space is rlnas's `layers` space of ``--config`` (the README's Fashion-MNIST config by
default), written for KerasTuner by running that space's own ``declare`` with a decider that
registers each decision as ``hp.Choice(name, choices)``: the same names, the same choices,
and the model built by the same builder (``rlnas.keras_build``). A decision rlnas leaves
inactive (the merge of a layer that takes no skip) is still a KerasTuner hyperparameter, as a
KerasTuner user would write it; its value is then unused.

Per seed, every tool searches for ``--budget`` seconds (no trial starts after it), on the
task's splits from :func:`rlnas.tasks.load_task` (the same for every tool), ``--epochs``
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
Printed per tool: best validation score, retrained test accuracy, trials completed and
search seconds, per seed and as the mean over seeds.

The regression table of issue 19 runs when rlnas has a regression task (``table``); until
then that part says so and is skipped.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

TOOLS = ("rlnas", "kt-random", "kt-hyperband", "kt-bayesian", "kt-reinforce")


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


def hypermodel(space, spec):
    """The `layers` space as a KerasTuner hypermodel (built by rlnas's own builder)."""
    import keras_tuner

    from rlnas.keras_build import build_model
    from rlnas.keras_build.layers_model import compile_model

    class LayersHyperModel(keras_tuner.HyperModel):
        def build(self, hp):
            blueprint = space.declare(HpDecider(hp))
            return compile_model(build_model(blueprint, spec), blueprint.training)

        def fit(self, hp, model, *args, **kwargs):
            batch = space.declare(HpDecider(hp)).training.batch_size
            return model.fit(*args, batch_size=batch, **kwargs)

    return LayersHyperModel()


def run_rlnas(cfg, space, budget: float) -> dict[str, Any]:
    from rlnas import factory
    from rlnas.search import Budget, Search

    search = Search(
        factory.make_strategy(cfg, space),
        factory.make_executor(cfg),
        Budget(wall_seconds=budget),
        seed=cfg.seed,
    )
    result = search.run()
    done = [t for t in result.trials if t.reward is not None]
    best = result.best
    return {
        "decisions": dict(best.architecture) if best else None,
        "val": best.reward if best else None,
        "trials": len(done),
    }


def run_keras_tuner(tool: str, space, data, cfg, budget: float, workdir: str) -> dict[str, Any]:
    import keras_tuner

    from rlnas.keras_tuner import ReinforceOracle

    deadline = time.time() + budget
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

    common = {"hypermodel": hypermodel(space, data.spec), "directory": workdir}
    common.update(project_name=tool, overwrite=True)
    if tool == "kt-reinforce":
        oracle = ReinforceOracle(objective="val_accuracy", max_trials=10**6, seed=cfg.seed + 1)
        tuner = Timed(oracle=oracle, **common)
    elif tool == "kt-hyperband":
        tuner = Timed(
            objective="val_accuracy",
            max_epochs=cfg.child.epochs,
            seed=cfg.seed + 1,
            hyperband_iterations=10**6,
            **common,
        )
    else:
        tuner = Timed(objective="val_accuracy", max_trials=10**6, seed=cfg.seed + 1, **common)
    tuner.search(
        data.x_train,
        data.y_train,
        validation_data=(data.x_val, data.y_val),
        epochs=cfg.child.epochs,
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


def retrain(space, data, decisions: Mapping[str, Any], epochs: int, seed: int) -> float:
    """Train the winner afresh on training + validation data, test it once."""
    import keras
    import numpy as np

    from rlnas.keras_build import build_model
    from rlnas.keras_build.batchnorm import recalibrate_batch_norm
    from rlnas.keras_build.layers_model import compile_model

    keras.utils.set_random_seed(seed)
    blueprint = blueprint_of(space, decisions)
    model = compile_model(build_model(blueprint, data.spec), blueprint.training)
    x = np.concatenate([data.x_train, data.x_val])
    y = np.concatenate([data.y_train, data.y_val])
    model.fit(x, y, epochs=epochs, batch_size=blueprint.training.batch_size, verbose=0)
    recalibrate_batch_norm(model, x)
    return float(model.evaluate(data.x_test, data.y_test, verbose=0)[1])


def fmt(x: float | None, digits: int = 4) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def classification(args: argparse.Namespace) -> None:
    import keras

    from rlnas import factory
    from rlnas.config import load_config

    rows: dict[str, list[dict[str, Any]]] = {tool: [] for tool in args.tools}
    for seed in args.seeds:
        overrides = [
            f"seed={seed}",
            f"child.epochs={args.epochs}",
            "child.target_mmacs=null",
            "executor.kind=inline",
        ]
        if args.train_subset:
            overrides.append(f"task.train_subset={args.train_subset}")
        cfg = load_config(args.config, overrides)
        data = factory.load_task_data(cfg)
        space = factory.make_space(cfg)
        print(
            f"seed {seed}: {data.source}; train {len(data.x_train)}, val {len(data.x_val)}, "
            f"test {len(data.x_test)}; {len(space.signature)} decisions",
            flush=True,
        )
        for tool in args.tools:
            keras.utils.set_random_seed(seed)
            start = time.time()
            with tempfile.TemporaryDirectory() as tmp:
                if tool == "rlnas":
                    found = run_rlnas(cfg, space, args.budget)
                else:
                    found = run_keras_tuner(tool, space, data, cfg, args.budget, tmp)
            found["seconds"] = time.time() - start
            found["test"] = (
                retrain(space, data, found["decisions"], args.retrain_epochs, seed)
                if found["decisions"] is not None
                else None
            )
            rows[tool].append(found)
            print(
                f"  {tool:13s} best val {fmt(found['val'])}  retrained test "
                f"{fmt(found['test'])}  trials {found['trials']:3d}  search "
                f"{found['seconds']:.0f} s  load {os.getloadavg()[0]:.1f}",
                flush=True,
            )
    print(
        f"\n{args.config}: {args.epochs} epochs per child, {args.budget:.0f} s per tool, "
        f"retrain {args.retrain_epochs} epochs, seeds {args.seeds}"
    )
    print("| tool | best val (mean) | retrained test (mean) | trials (mean) |")
    print("| --- | ---: | ---: | ---: |")
    for tool, found in rows.items():
        val = [f["val"] for f in found if f["val"] is not None]
        test = [f["test"] for f in found if f["test"] is not None]
        trials = [f["trials"] for f in found]
        print(
            f"| {tool} | {fmt(statistics.mean(val) if val else None)} | "
            f"{fmt(statistics.mean(test) if test else None)} | "
            f"{statistics.mean(trials):.1f} |"
        )


def regression(args: argparse.Namespace) -> None:
    from rlnas.task_readers import READERS

    if "table" not in READERS:
        print(
            "\nregression table: skipped: rlnas has no regression / CSV task yet "
            "(issue 19, item 3); rerun this script once `task: {name: table}` exists."
        )
        return
    print("\nregression table: the `table` task exists; its comparison is not written yet.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/fashion_mnist.yaml")
    parser.add_argument(
        "--train-subset",
        type=int,
        default=None,
        help="training images per child (default: the config's)",
    )
    parser.add_argument("--epochs", type=int, default=2, help="epochs per child")
    parser.add_argument("--budget", type=float, default=720.0, help="search seconds per tool")
    parser.add_argument("--retrain-epochs", type=int, default=10)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--tools", nargs="+", default=list(TOOLS), choices=TOOLS)
    args = parser.parse_args()
    print(f"load {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores", flush=True)
    classification(args)
    regression(args)


if __name__ == "__main__":
    main()
