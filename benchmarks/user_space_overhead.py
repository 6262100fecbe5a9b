"""Overhead of a define-by-run user space against the built-in `layers` space.

    PYTHONPATH=. .venv/bin/python benchmarks/user_space_overhead.py [--children 6] [--repeats 3]

The same decisions twice: the built-in :class:`~rlnas.spaces.layers.LayersSpace`, and a
user's ``build(d, spec)`` function that declares them (by running the layers space's own
``declare`` with the decider) and builds the same Keras model. A fixed list of
architectures (sampled once, seeded) is replayed through both, so both train the same
children with the same seeds (the script checks that their rewards agree).

Two measurements, each interleaved (built-in, user, user, built-in, ...: every pair runs
back to back, its order alternating) so that a drift in the machine's load falls on both:

* the space's own work, without training: sampling the recorded values (a strategy's
  chooser picking each), the blueprint the evaluator asks for, building and compiling the
  model, ``--build-repeats`` times per architecture;
* a whole child: sampling, then the evaluator's build, compile, training and validation
  (``--epochs`` epochs on ``--train`` digits), ``--repeats`` times per architecture.

Each pair gives a ratio user / built-in; printed are the median ratio with its quartiles and
extremes (goal: median whole-child ratio <= 1.05), the medians of each side, and the load
averages before and after. Timings on a loaded machine are noisy, so the script also counts
what no load changes: the Python function calls of one whole child on each side (under
:mod:`cProfile`), in all and in Keras and TensorFlow alone; a space that built its model
twice, traced twice or wrapped it in another model would show there.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import time
from collections.abc import Callable

from rlnas.config import ChildConfig, LayersConfig, TaskConfig
from rlnas.evaluators.keras_child import KerasEvaluator
from rlnas.keras_build import build_layers_model, build_model, compile_model
from rlnas.space import Space
from rlnas.spaces.layers import LayersSpace
from rlnas.spaces.user import UserSpace
from rlnas.strategies import RandomSearch
from rlnas.tasks import load_task

CFG = LayersConfig(num_layers=4, operations=("conv", "sepconv", "maxpool", "identity"))


def user_build(d, spec):
    """The `layers` space's decisions and model, written as a user's build function."""
    return build_layers_model(LayersSpace(CFG, spec).declare(d), spec)


def sample_as(space: Space, values) -> None:
    """Sample ``values`` as a strategy would (its chooser picks each value)."""
    sample, _ = space.sample(lambda decision, mask: decision.index_of(values[decision.name]))
    assert sample.architecture == values


def interleaved(runs: int, work: Callable[[str, int], float]) -> dict[str, list[float]]:
    """``work(side, i)`` for i < ``runs``, both sides back to back, the order alternating."""
    seconds: dict[str, list[float]] = {"built-in": [], "user": []}
    for i in range(runs):
        for side in ("built-in", "user") if i % 2 == 0 else ("user", "built-in"):
            seconds[side].append(work(side, i))
    return seconds


def quartiles(values: list[float]) -> tuple[float, float, float]:
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[0], q[1], q[2]


def report(title: str, seconds: dict[str, list[float]]) -> float:
    b, u = seconds["built-in"], seconds["user"]
    ratios = [y / x for x, y in zip(b, u)]
    q1, med, q3 = quartiles(ratios)
    print(
        f"{title}: {len(ratios)} pairs; median s built-in {statistics.median(b):.4f}, "
        f"user {statistics.median(u):.4f}; ratio user / built-in: median {med:.3f} "
        f"(quartiles {q1:.3f}-{q3:.3f}, range {min(ratios):.3f}-{max(ratios):.3f}); "
        f"ratio of sums {sum(u) / sum(b):.3f}",
        flush=True,
    )
    return med


def calls(work: Callable[[], object]) -> tuple[int, int]:
    """Python function calls made by ``work()``: in all, and in Keras and TensorFlow."""
    profile = cProfile.Profile()
    profile.enable()
    work()
    profile.disable()
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    total = sum(v[1] for v in stats.values())
    framework = sum(v[1] for k, v in stats.items() if "/keras/" in k[0] or "/tensorflow/" in k[0])
    return total, framework


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--children", type=int, default=6, help="architectures")
    p.add_argument("--repeats", type=int, default=3, help="whole children per architecture")
    p.add_argument("--build-repeats", type=int, default=4, help="builds per architecture")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--train", type=int, default=300, help="training examples (digits)")
    args = p.parse_args()
    print(f"load {os.getloadavg()} on {os.cpu_count()} cores", flush=True)
    import keras

    data = load_task(TaskConfig(name="digits", train_subset=args.train))
    spaces = {
        "built-in": LayersSpace(CFG, data.spec),
        "user": UserSpace(user_build, data.spec, name="bench:user_build"),
    }
    spaces["user"].check()
    strategy = RandomSearch(spaces["built-in"], seed=0)
    archs = [strategy.ask().architecture for _ in range(args.children)]
    child = ChildConfig(epochs=args.epochs)
    evaluators = {name: KerasEvaluator(space, data, child) for name, space in spaces.items()}
    evaluators["built-in"].evaluate(archs[0], seed=0, number=0)  # warm-up: TensorFlow's start

    def build(side: str, i: int) -> float:
        space, arch = spaces[side], archs[i % len(archs)]
        start = time.perf_counter()
        sample_as(space, arch)
        blueprint = space.blueprint(arch)
        model = build_model(blueprint, data.spec)
        compile_model(model, blueprint.training, spec=data.spec, metric="accuracy")
        seconds = time.perf_counter() - start
        keras.backend.clear_session()
        return seconds

    rewards: dict[str, list[float]] = {"built-in": [], "user": []}

    def whole(side: str, i: int) -> float:
        n = i % len(archs)
        start = time.perf_counter()
        sample_as(spaces[side], archs[n])
        outcome = evaluators[side].evaluate(archs[n], seed=n, number=n)
        seconds = time.perf_counter() - start
        rewards[side].append(round(outcome.reward, 6))
        return seconds

    print(
        f"{args.children} architectures; whole children: {args.repeats} each, {args.epochs} "
        f"epoch(s) on {args.train} training examples; builds: {args.build_repeats} each",
        flush=True,
    )
    report(
        "sample + blueprint + build + compile", interleaved(len(archs) * args.build_repeats, build)
    )
    med = report("whole child", interleaved(len(archs) * args.repeats, whole))
    same = rewards["built-in"] == rewards["user"]
    print(f"same rewards: {same}; goal median whole-child ratio <= 1.05: {med <= 1.05}")
    arch = archs[-1]
    counted = {
        side: calls(
            lambda side=side: (
                sample_as(spaces[side], arch),
                evaluators[side].evaluate(arch, seed=0, number=0),
            )
        )
        for side in ("built-in", "user")
    }
    (bt, bf), (ut, uf) = counted["built-in"], counted["user"]
    print(
        f"function calls of one whole child: built-in {bt} ({bf} in Keras/TensorFlow), "
        f"user {ut} ({uf} in Keras/TensorFlow): {ut - bt:+d} in all, {uf - bf:+d} in Keras/"
        "TensorFlow"
    )
    print(f"load {os.getloadavg()}", flush=True)


if __name__ == "__main__":
    main()
