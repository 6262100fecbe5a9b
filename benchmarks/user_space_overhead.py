"""Overhead of a define-by-run user space against the built-in `layers` space.

    PYTHONPATH=. .venv/bin/python benchmarks/user_space_overhead.py [--children 6] [--epochs 1]

The same decisions twice: the built-in :class:`~rlnas.spaces.layers.LayersSpace`, and a
user's ``build(d, spec)`` function that declares them (by running the layers space's own
``declare`` with the decider) and builds the same Keras model. A fixed list of
architectures (sampled once, seeded) is replayed through both, alternating, so both train
the same children; each child is timed from sampling (a strategy's chooser picking the
recorded values) through building, compiling and training to its reward. Prints the
median seconds per child of each and their ratio (goal: user / built-in <= 1.05), and the
median sampling time alone.
"""

from __future__ import annotations

import argparse
import statistics
import time

from rlnas.config import ChildConfig, LayersConfig, TaskConfig
from rlnas.evaluators.keras_child import KerasEvaluator
from rlnas.keras_build import build_layers_model
from rlnas.space import Space
from rlnas.spaces.layers import LayersSpace
from rlnas.spaces.user import UserSpace
from rlnas.strategies import RandomSearch
from rlnas.tasks import load_task

CFG = LayersConfig(num_layers=4, operations=("conv", "sepconv", "maxpool", "identity"))


def user_build(d, spec):
    """The `layers` space's decisions and model, written as a user's build function."""
    return build_layers_model(LayersSpace(CFG, spec).declare(d), spec)


def sample_as(space: Space, values) -> float:
    """Seconds to sample ``values`` as a strategy would (its chooser picks each value)."""
    start = time.perf_counter()
    sample, _ = space.sample(lambda decision, mask: decision.index_of(values[decision.name]))
    assert sample.architecture == values
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--children", type=int, default=6)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--train", type=int, default=300, help="training examples (digits)")
    args = p.parse_args()
    data = load_task(TaskConfig(name="digits", train_subset=args.train))
    builtin = LayersSpace(CFG, data.spec)
    user = UserSpace(user_build, data.spec, name="bench:user_build")
    user.check()
    strategy = RandomSearch(builtin, seed=0)
    archs = [strategy.ask().architecture for _ in range(args.children)]
    child = ChildConfig(epochs=args.epochs)
    evaluators = {"built-in": KerasEvaluator(builtin, data, child), "user": None}
    evaluators["user"] = KerasEvaluator(user, data, child)
    spaces = {"built-in": builtin, "user": user}
    totals: dict[str, list[float]] = {k: [] for k in spaces}
    samples: dict[str, list[float]] = {k: [] for k in spaces}
    rewards: dict[str, list[float]] = {k: [] for k in spaces}
    evaluators["built-in"].evaluate(archs[0], seed=0, number=0)  # warm-up: TensorFlow's start
    for i, arch in enumerate(archs):
        order = ("built-in", "user") if i % 2 == 0 else ("user", "built-in")
        for name in order:
            start = time.perf_counter()
            samples[name].append(sample_as(spaces[name], arch))
            outcome = evaluators[name].evaluate(arch, seed=i, number=i)
            totals[name].append(time.perf_counter() - start)
            rewards[name].append(round(outcome.reward, 6))
    same = rewards["built-in"] == rewards["user"]
    b, u = statistics.median(totals["built-in"]), statistics.median(totals["user"])
    print(f"{args.children} children, {args.epochs} epoch(s), {args.train} training examples")
    print(f"{'space':<10} {'s/child (median)':>17} {'sampling ms (median)':>21}")
    for name, med in (("built-in", b), ("user", u)):
        ms = 1000 * statistics.median(samples[name])
        print(f"{name:<10} {med:>17.3f} {ms:>21.2f}")
    pairs = [f"{x:.2f}/{y:.2f}" for x, y in zip(totals["built-in"], totals["user"])]
    print("per child, built-in/user seconds:", " ".join(pairs))
    print(f"ratio user / built-in: {u / b:.3f} (goal <= 1.05); same rewards: {same}")


if __name__ == "__main__":
    main()
