"""The REINFORCE controller's own cost per architecture: sampling plus its share of updates.

Goal (issue 3): at most 2 ms per architecture on a 2-core machine, so that
``rlnas bench nb201`` with 300 seeds x 500 look-ups per strategy ends within 3 minutes.
Runs the controller with its default settings on the ``nb201`` space, rewards from the
table, and prints medians (the machine may be shared: medians resist the noise) plus the
mean over all calls, which is what a whole search pays. Also measures what the search loop
adds per child around the strategy (``Search`` + ``InlineExecutor`` + table look-up)::

    python benchmarks/controller_speed.py [--archs 3000] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", type=int, default=3000, help="architectures to time")
    parser.add_argument("--threads", type=int, default=1, help="TensorFlow threads (bench: 1)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a controller setting other than the default (JSON value), e.g. batch_size=5",
    )
    args = parser.parse_args()

    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)

    from rlnas.executors import InlineExecutor
    from rlnas.nb201.evaluator import Nb201Evaluator
    from rlnas.nb201.space import Nb201Space
    from rlnas.search import Budget, Search
    from rlnas.strategies.random_search import RandomSearch
    from rlnas.strategies.reinforce import ReinforceController

    space, table = Nb201Space(), Nb201Evaluator("cifar10")
    start = time.perf_counter()
    import json

    from rlnas.strategies.reinforce import ReinforceConfig

    overrides = {k: json.loads(v) for k, v in (x.split("=", 1) for x in args.set)}
    ctrl = ReinforceController(space, ReinforceConfig(**overrides), seed=0)
    build = time.perf_counter() - start
    cfg = ctrl.config

    def reward(sample) -> float:
        return table.evaluate(sample.architecture, seed=0, number=0).reward

    start = time.perf_counter()
    for _ in range(2 * cfg.batch_size):  # warm-up: the first updates
        s = ctrl.ask()
        ctrl.tell(s, reward(s))
    first = time.perf_counter() - start

    asks, tells, updates = [], [], []
    total = 0.0
    done = 0
    seed = 1
    while done < args.archs:
        ctrl.reset(seed)  # a fresh search every 500 architectures, as in the bench
        seed += 1
        for _ in range(min(500, args.archs - done)):
            t0 = time.perf_counter()
            s = ctrl.ask()
            t1 = time.perf_counter()
            r = reward(s)
            t2 = time.perf_counter()
            metrics = ctrl.tell(s, r)
            t3 = time.perf_counter()
            asks.append(t1 - t0)
            (updates if metrics else tells).append(t3 - t2)
            total += (t1 - t0) + (t3 - t2)
            done += 1

    ms = 1e3
    ask_med = statistics.median(asks) * ms
    tell_med = statistics.median(tells) * ms if tells else 0.0
    upd_med = statistics.median(updates) * ms
    per_arch = ask_med + tell_med * (1 - 1 / cfg.batch_size) + upd_med / cfg.batch_size
    print(f"controller: {cfg}")
    print(f"build: {build:.1f} s (first updates {first:.1f} s)")
    print(f"architectures timed: {done} ({len(updates)} updates, batch_size {cfg.batch_size})")
    print(f"ask (sampling)      median {ask_med:.3f} ms   p90 {_p90(asks) * ms:.3f} ms")
    print(f"tell (no update)    median {tell_med:.3f} ms")
    print(f"update              median {upd_med:.3f} ms   p90 {_p90(updates) * ms:.3f} ms")
    print(f"per architecture    median-based {per_arch:.3f} ms   mean {total / done * ms:.3f} ms")
    print(f"goal <= 2 ms per architecture: {'met' if per_arch <= 2.0 else 'NOT met'}")

    # what the search loop adds around a strategy, per child (random search: no learning)
    n_children = 5000
    start = time.perf_counter()
    for s in range(n_children // 500):
        Search(RandomSearch(space, seed=s), InlineExecutor(table), Budget(children=500), s).run()
    loop = (time.perf_counter() - start) / n_children * ms
    strategy = RandomSearch(space, seed=0)
    start = time.perf_counter()
    for _ in range(n_children):
        strategy.ask()
    bare = (time.perf_counter() - start) / n_children * ms
    print(
        f"search loop per child (random search): {loop:.3f} ms, of which random.ask "
        f"{bare:.3f} ms; loop overhead {loop - bare:.3f} ms"
    )


def _p90(values: list[float]) -> float:
    return sorted(values)[int(0.9 * (len(values) - 1))]


if __name__ == "__main__":
    main()
