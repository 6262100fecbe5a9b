"""Weight sharing (ENAS) against standard child training (MNIST-1D unless --config): speed, ranking.

Bars (issue 21): at least 2,000 rewarded architectures in a 10-minute MNIST-1D search, at
least 10x the standard mode in the same time on the same machine; Kendall's tau >= 0.5
between shared-weight rewards (re-scored on the whole validation split) and stand-alone
validation accuracy over >= 50 uniformly sampled architectures.

* ``rate``: the REINFORCE search of ``configs/mnist1d_shared.yaml`` for ``--seconds`` of wall
  time in shared mode (inline, warm-up excluded and reported apart), then the same space's
  search in standard mode (each child trained alone with the ``child`` settings of the
  config, ``--workers`` processes as ``configs/mnist1d.yaml`` does), each in this process;
  rewards per minute and the ratio. No MLflow: this times the evaluators.
* ``rank``: a fresh super-network trained ``--steps`` steps on uniformly sampled paths, then
  ``--archs`` uniformly sampled architectures re-scored on the whole validation split with
  the shared weights and trained alone (``--epochs`` epochs, the config's training
  decisions); Kendall's tau, Spearman's rho and the overlap of the top 10.
* ``controller``: per seed, REINFORCE and uniform random search side by side, each on a
  fresh super-network of the same seed (same initial weights, same warm-up), each given
  ``--rewards`` shared-weight rewards; then, as ``rlnas search`` ends a shared search, the
  best ``shared.rescore_top`` distinct children by shared reward are re-scored on the whole
  validation split and the best ``shared.retrain_top`` trained alone with the standard
  evaluator's settings (the config's ``child`` section, the same child seeds for both
  strategies); the best stand-alone validation accuracy per strategy, per seed and the mean.
  ``--out`` keeps each seed's figures in a JSON file, so that seeds can run one at a time.

The machine's load average is printed; on a shared machine the figures move with it::

    python benchmarks/weight_sharing.py [rate|rank|all] [--seconds 120] [--archs 50]
    python benchmarks/weight_sharing.py controller --rewards 1000 --seeds 0 1 2 --out ctl.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "mnist1d_shared.yaml"


def rate(seconds: float, workers: int, config: Path = CONFIG) -> dict:
    """Rewards per minute of the shared and the standard mode, one after the other."""
    from rlnas import factory
    from rlnas.config import load_config
    from rlnas.search import Budget, Search

    out = {}
    for mode in ("shared", "standard"):
        overrides = [f"search.wall_seconds={seconds}", "search.children=100000"]
        if mode == "standard":
            overrides += [
                "shared.enabled=false",
                "executor.kind=process",
                f"executor.workers={workers}",
                "executor.threads_per_worker=1",
            ]
        cfg = load_config(config, overrides)
        space = factory.make_space(cfg)
        strategy = factory.make_strategy(cfg, space)
        executor = factory.make_executor(cfg)
        warm = 0.0
        if mode == "shared":
            start = time.perf_counter()
            executor.evaluator.warm_up()  # shared.warmup_steps on uniform paths
            warm = time.perf_counter() - start
        start = time.perf_counter()
        result = Search(strategy, executor, Budget(wall_seconds=seconds), cfg.seed).run()
        wall = time.perf_counter() - start
        done = [t for t in result.trials if t.reward is not None]
        rewards = [t.reward for t in done]
        third = max(1, len(rewards) // 3)
        out[mode] = {
            "rewards": len(rewards),
            "wall_seconds": round(wall, 1),
            "warmup_seconds": round(warm, 1),
            "per_minute": round(60 * len(rewards) / wall, 1),
            "mean_reward_first_third": round(sum(rewards[:third]) / third, 4),
            "mean_reward_last_third": round(sum(rewards[-third:]) / third, 4),
        }
        print(mode, json.dumps(out[mode]), flush=True)
    out["ratio"] = round(out["shared"]["per_minute"] / max(out["standard"]["per_minute"], 1e-9), 1)
    out["shared_per_10_minutes"] = round(10 * out["shared"]["per_minute"])
    return out


def rank(
    steps: int, archs: int, epochs: int, config: Path = CONFIG, overrides: tuple[str, ...] = ()
) -> dict:
    """Kendall's tau, Spearman's rho and top-10 overlap: shared versus stand-alone."""
    from scipy import stats

    from rlnas import factory
    from rlnas.config import load_config
    from rlnas.evaluators.keras_child import KerasEvaluator
    from rlnas.evaluators.shared import SharedEvaluator
    from rlnas.strategies.random_search import RandomSearch

    cfg = load_config(
        config, [f"shared.warmup_steps={steps}", f"child.epochs={epochs}", *overrides]
    )
    space = factory.make_space(cfg)
    data = factory.load_task_data(cfg)
    shared = SharedEvaluator(space, data, cfg.shared, seed=cfg.seed)
    start = time.perf_counter()
    shared.warm_up()  # --steps shared steps on uniformly sampled paths
    trained = time.perf_counter() - start
    sample = RandomSearch(space, seed=cfg.seed + 2, unique=True)
    architectures = [sample.ask().architecture for _ in range(archs)]
    start = time.perf_counter()
    by_shared = [shared.rescore(a) for a in architectures]
    rescored = time.perf_counter() - start
    alone = KerasEvaluator(space, data, cfg.child)
    start = time.perf_counter()
    by_alone = []
    for n, a in enumerate(architectures):
        by_alone.append(alone.evaluate(a, seed=n, number=n).metrics["val_accuracy"])
    standalone = time.perf_counter() - start
    top = 10
    best_shared = set(sorted(range(archs), key=lambda i: -by_shared[i])[:top])
    best_alone = set(sorted(range(archs), key=lambda i: -by_alone[i])[:top])
    out = {
        "architectures": archs,
        "shared_steps": steps,
        "kendall_tau": round(float(stats.kendalltau(by_shared, by_alone).statistic), 3),
        "spearman_rho": round(float(stats.spearmanr(by_shared, by_alone).statistic), 3),
        "top10_overlap": len(best_shared & best_alone),
        "shared_mean": round(sum(by_shared) / archs, 4),
        "alone_mean": round(sum(by_alone) / archs, 4),
        "seconds": {
            "shared_training": round(trained, 1),
            "rescoring": round(rescored, 1),
            "standalone_training": round(standalone, 1),
        },
    }
    print("rank", json.dumps(out), flush=True)
    return out


def controller(
    seed: int, rewards: int, strategies: list[str], overrides: list[str], config: Path = CONFIG
) -> dict:
    """One seed: each strategy's shared search, re-score, and stand-alone retraining."""
    import numpy as np

    from rlnas import factory, shared_search
    from rlnas.config import load_config
    from rlnas.evaluators.keras_child import KerasEvaluator
    from rlnas.executors import InlineExecutor
    from rlnas.search import Budget, Search

    out: dict = {"seed": seed, "rewards": rewards}
    for name in strategies:
        cfg = load_config(config, [f"seed={seed}", f"strategy={name}", *overrides])
        space = factory.make_space(cfg)
        data = factory.load_task_data(cfg)
        evaluator = factory.make_evaluator(cfg)
        start = time.perf_counter()
        evaluator.warm_up()  # shared.warmup_steps on uniform paths, the same for both
        warm = time.perf_counter() - start
        strategy = factory.make_strategy(cfg, space)
        start = time.perf_counter()
        search = Search(strategy, InlineExecutor(evaluator), Budget(children=rewards), seed)
        result = search.run()
        searched = time.perf_counter() - start
        trials = [t for t in result.trials if t.reward is not None]
        top = shared_search.best_distinct(result.trials, cfg.shared.rescore_top)
        rows = shared_search.rescore(evaluator, top, cfg.shared.retrain_top)
        chosen = {t.number: t.architecture for t in top}
        alone = KerasEvaluator(space, data, cfg.child)
        start = time.perf_counter()
        for k, r in enumerate(rows[: cfg.shared.retrain_top]):
            child_seed = int(np.random.SeedSequence([seed, k]).generate_state(1)[0])
            outcome = alone.evaluate(chosen[r["child"]], seed=child_seed, number=k)
            r["standalone"] = round(float(outcome.metrics["val_accuracy"]), 4)
            r["decisions"] = dict(chosen[r["child"]])
        retrained = time.perf_counter() - start
        scores = [r["standalone"] for r in rows[: cfg.shared.retrain_top]]
        third = max(1, len(trials) // 3)
        out[name] = {
            "best_standalone": max(scores),
            "mean_standalone_retrained": round(float(np.mean(scores)), 4),
            "retrained": rows[: cfg.shared.retrain_top],
            "best_rescored": round(rows[0]["rescored"], 4),
            "distinct": len({t.architecture.hash for t in trials}),
            "shared_reward_first_third": round(
                float(np.mean([t.reward for t in trials[:third]])), 4
            ),
            "shared_reward_last_third": round(
                float(np.mean([t.reward for t in trials[-third:]])), 4
            ),
            "last_update": search.updates[-1][1] if search.updates else None,
            "seconds": {
                "warm_up": round(warm, 1),
                "search": round(searched, 1),
                "retraining": round(retrained, 1),
            },
        }
        print(f"seed {seed} {name}", json.dumps(out[name]), "load", os.getloadavg(), flush=True)
    return out


def controller_table(runs: list[dict], strategies: list[str]) -> dict:
    """Per seed and the mean: each strategy's best stand-alone validation accuracy."""
    means = {
        name: round(sum(r[name]["best_standalone"] for r in runs) / len(runs), 4)
        for name in strategies
    }
    rows = [{"seed": r["seed"], **{n: r[n]["best_standalone"] for n in strategies}} for r in runs]
    table = {"per_seed": rows, "mean": means}
    if len(strategies) == 2 and len(runs) >= 2:  # is the gap larger than the seeds' noise?
        first, second = strategies
        gaps = [r[first] - r[second] for r in rows]
        table[f"paired {first} - {second}"] = {
            "mean": round(statistics.fmean(gaps), 4),
            "standard_error": round(statistics.stdev(gaps) / len(gaps) ** 0.5, 4),
            "seeds_ahead": sum(g > 0 for g in gaps),
            "seeds_behind": sum(g < 0 for g in gaps),
        }
    return table


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", nargs="?", default="all", choices=("rate", "rank", "controller", "all"))
    p.add_argument("--seconds", type=float, default=120.0, help="wall seconds per mode")
    p.add_argument("--workers", type=int, default=2, help="standard mode's processes")
    p.add_argument("--steps", type=int, default=2000, help="shared steps before ranking")
    p.add_argument("--archs", type=int, default=50, help="architectures ranked")
    p.add_argument("--epochs", type=int, default=10, help="stand-alone training epochs")
    p.add_argument("--rewards", type=int, default=1000, help="shared rewards per strategy")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="controller seeds")
    p.add_argument(
        "--strategies", nargs="+", default=["reinforce", "random"], help="compared strategies"
    )
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="config override"
    )
    p.add_argument(
        "--config", type=Path, default=CONFIG, help="the shared-mode config (rate: its space)"
    )
    p.add_argument("--out", type=Path, help="controller: per-seed figures kept in this JSON")
    args = p.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    print("load average before:", os.getloadavg(), flush=True)
    figures = {}
    if args.what in ("rate", "all"):
        figures["rate"] = rate(args.seconds, args.workers, args.config)
    if args.what in ("rank", "all"):
        figures["rank"] = rank(args.steps, args.archs, args.epochs, args.config, tuple(args.set))
    if args.what == "controller":
        kept = json.loads(args.out.read_text()) if args.out and args.out.is_file() else {}
        for seed in args.seeds:
            kept[str(seed)] = controller(seed, args.rewards, args.strategies, args.set, args.config)
            if args.out:
                args.out.write_text(json.dumps(kept, indent=1))
        figures["controller"] = controller_table(list(kept.values()), args.strategies)
    print("load average after:", os.getloadavg())
    print(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
