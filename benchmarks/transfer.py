"""Warm start vs cold start on the NAS-Bench-201 tables (issue 4).

A controller trained on the CIFAR-10 table (``controllers/nb201-cifar10``) starts searches
on CIFAR-100 and ImageNet16-120; cold searches start from fresh weights. Both use the
controller settings of ``configs/nb201-cifar10.yaml`` and the same seeds. For each search
we record the number of look-ups until the first architecture in the top 1% of the target
table (by its 200-epoch test accuracy; 157 of the 15,625 cells), and the best accuracy
within 500 look-ups. Printed: medians and means over seeds, and the ratio cold / warm::

    python benchmarks/transfer.py [--seeds 100] [--queries 500] [--source controllers/nb201-cifar10]

The reward is test accuracy: the NAS-Bench-201 table has no full validation column (the
one documented exception to "the test split never chooses an architecture").
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    # one BLAS thread per worker process: the controller's matrices are tiny, and the
    # threads of two processes on two cores would fight (the workers inherit this)
    os.environ.setdefault(_name, "1")
ROOT = Path(__file__).resolve().parents[1]
ARMS = ("cold", "warm")


def _run(args: tuple[str, str, list[int], int, str, dict]) -> dict[str, list[tuple[int, float]]]:
    """In a worker process: every arm on ``seeds`` for one data set."""
    dataset, source, seeds, queries, config_path, overrides = args
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from rlnas import factory, zoo
    from rlnas.config import load_config
    from rlnas.executors import InlineExecutor
    from rlnas.search import Budget, Search

    cfg = load_config(config_path)
    cfg = replace(cfg, task=replace(cfg.task, dataset=dataset))
    if overrides:
        cfg = replace(cfg, controller=replace(cfg.controller, **overrides))
    space, evaluator = factory.make_space(cfg), factory.make_evaluator(cfg)
    acc = np.sort(evaluator.table.test_acc[dataset])[::-1]
    threshold = acc[int(np.ceil(0.01 * len(acc))) - 1]  # the 1% best cells reach this
    controller = factory.make_strategy(replace(cfg, seed=seeds[0]), space)
    out: dict[str, list[tuple[int, float]]] = {arm: [] for arm in ARMS}
    for seed in seeds:
        for arm in ARMS:
            controller.reset(seed)
            if arm == "warm":
                zoo.warm_start(controller, source)
            trials = Search(controller, InlineExecutor(evaluator), Budget(children=queries)).run()
            rewards = [t.reward for t in trials.trials if t.reward is not None]
            hit = next((i + 1 for i, r in enumerate(rewards) if r >= threshold), queries + 1)
            out[arm].append((hit, max(rewards)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--source", default=str(ROOT / "controllers" / "nb201-cifar10"))
    parser.add_argument("--config", default=str(ROOT / "configs" / "nb201-cifar10.yaml"))
    parser.add_argument("--datasets", default="imagenet16_120,cifar100")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--set", action="append", default=[], help="controller override KEY=VALUE (JSON value)"
    )
    parser.add_argument("--out", help="write the figures as JSON here")
    args = parser.parse_args()
    overrides = {k: json.loads(v) for k, v in (s.split("=", 1) for s in args.set)}

    start = time.perf_counter()
    report = {}
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(args.workers, mp_context=ctx) as pool:
        for dataset in args.datasets.split(","):
            seeds = list(range(args.seeds))
            parts = pool.map(
                _run,
                [
                    (
                        dataset,
                        args.source,
                        seeds[k :: args.workers],
                        args.queries,
                        args.config,
                        overrides,
                    )
                    for k in range(args.workers)
                ],
            )
            merged: dict[str, list[tuple[int, float]]] = {arm: [] for arm in ARMS}
            for part in parts:
                for arm in ARMS:
                    merged[arm] += part[arm]
            row = {}
            for arm in ARMS:
                hits = [h for h, _ in merged[arm]]
                best = [b for _, b in merged[arm]]
                row[arm] = {
                    "median_lookups_to_top1pct": statistics.median(hits),
                    "mean_lookups_to_top1pct": float(np.mean(hits)),
                    "reached_top1pct": sum(h <= args.queries for h in hits) / len(hits),
                    f"best_at_{args.queries}_mean": float(np.mean(best)),
                    f"best_at_{args.queries}_std": float(np.std(best)),
                }
            row["ratio_median_cold_over_warm"] = (
                row["cold"]["median_lookups_to_top1pct"] / row["warm"]["median_lookups_to_top1pct"]
            )
            report[dataset] = row
            print(f"\n{dataset}: {args.seeds} seeds, top 1% by 200-epoch test accuracy")
            best_label = f"best@{args.queries}"
            print(f"  {'arm':6s} {'median':>8s} {'mean':>8s} {'reached':>8s} {best_label:>14s}")
            for arm in ARMS:
                r = row[arm]
                mean, std = r[f"best_at_{args.queries}_mean"], r[f"best_at_{args.queries}_std"]
                print(
                    f"  {arm:6s} {r['median_lookups_to_top1pct']:8.1f} "
                    f"{r['mean_lookups_to_top1pct']:8.1f} {r['reached_top1pct']:8.0%} "
                    f"{mean:8.2f} ± {std:.2f}"
                )
            ratio = row["ratio_median_cold_over_warm"]
            print(f"  look-ups to the top 1%, median cold / warm: {ratio:.1f}x")
    print(f"\nwall {time.perf_counter() - start:.0f} s; controller overrides {overrides or 'none'}")
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
