"""Children per hour with the inline, process and ray executors on the same search.

Bars (issue 5): with 2 ``process`` workers on a 2-core machine, at least 1.6x the children
per hour of ``inline``; with 2 ``ray`` workers, at least 1.5x.

The search: scikit-learn's digits, the demo's ``layers`` space (configs/demo.yaml), random
search with seed 0 (its proposals do not depend on the order rewards arrive in, so every
executor trains the same children with the same seeds), ``--children`` children of
``--epochs`` epochs (2-5 s each on 2 idle cores). No MLflow: this times the executors.

Each run is a fresh Python process (nothing is warm), the executors alternate, ``--repeats``
rounds. Two rates per run: *whole* (children / wall time from building the executor to the
last child: worker start-up included, what a short search pays) and *steady* (after each
worker's first child: what a long search approaches). The machine's load average is printed
before and after; a loaded machine makes the figures meaningless, so read them with it::

    python benchmarks/throughput.py [--children 16] [--epochs 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def one(kind: str, children: int, epochs: int, workers: int) -> dict:
    """Run the search once with executor ``kind`` (in this process); its timings."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from rlnas import factory
    from rlnas.config import load_config
    from rlnas.search import Budget, Search

    overrides = [
        "strategy=random",
        f"child.epochs={epochs}",
        f"search.children={children}",
        f"executor.kind={kind}",
        f"executor.workers={workers}",
        "executor.recycle_after=null",
    ]
    cfg = load_config(ROOT / "configs" / "demo.yaml", overrides)
    space = factory.make_space(cfg)
    strategy = factory.make_strategy(cfg, space)
    finished: list[float] = []

    class Clock:
        def trial_finished(self, search, trial):
            finished.append(time.perf_counter())

    start = time.perf_counter()
    executor = factory.make_executor(cfg)
    result = Search(strategy, executor, Budget(children=children), 0, observers=[Clock()]).run()
    wall = time.perf_counter() - start
    k = 1 if kind == "inline" else workers  # each worker's first child carries its start-up
    steady = (len(finished) - k) / (finished[-1] - finished[k - 1]) if len(finished) > k else 0.0
    return {
        "kind": kind,
        "wall": wall,
        "whole": 3600 * len(finished) / wall,
        "steady": 3600 * steady,
        "failed": result.failed,
        "hashes": [t.architecture.hash for t in result.trials],
        "rewards": [t.reward for t in result.trials],
        "costs": [t.cost for t in result.trials],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--children", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--kinds", nargs="+", default=["inline", "process", "ray"])
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: one run, JSON out
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.children, args.epochs, args.workers)))
        return

    print(f"load average before: {os.getloadavg()}  (cores: {os.cpu_count()})", flush=True)
    runs: dict[str, list[dict]] = {k: [] for k in args.kinds}
    for r in range(args.repeats):
        for kind in args.kinds:
            command = [sys.executable, __file__, "--one", kind]
            command += ["--children", str(args.children), "--epochs", str(args.epochs)]
            command += ["--workers", str(args.workers)]
            proc = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
            if proc.returncode != 0:
                print(f"{kind} failed:\n{proc.stderr[-3000:]}", file=sys.stderr)
                continue
            run = json.loads(proc.stdout.strip().splitlines()[-1])
            runs[kind].append(run)
            print(
                f"round {r + 1} {kind:8s} wall {run['wall']:6.1f} s  whole {run['whole']:6.0f}"
                f" children/h  steady {run['steady']:6.0f} children/h  failed {run['failed']}"
                f"  load {os.getloadavg()[0]:.2f}",
                flush=True,
            )
    print(f"load average after: {os.getloadavg()}")
    med = {
        k: {m: statistics.median(x[m] for x in v) for m in ("whole", "steady")}
        for k, v in runs.items()
        if v
    }
    base = med.get("inline")
    print(f"\nmedians over {args.repeats} rounds ({args.children} children, {args.epochs} epochs):")
    for kind, m in med.items():
        ratio = ""
        if base and kind != "inline":
            whole, steady = m["whole"] / base["whole"], m["steady"] / base["steady"]
            ratio = f"  x{whole:.2f} whole, x{steady:.2f} steady"
        print(f"  {kind:8s} {m['whole']:6.0f} children/h whole, {m['steady']:6.0f} steady{ratio}")
    reference = next(iter(v for v in runs.values() if v))[0]
    for kind, v in runs.items():
        for run in v:
            same = run["hashes"] == reference["hashes"]
            diff = max(
                (abs(a - b) for a, b in zip(run["rewards"], reference["rewards"]) if a and b),
                default=0.0,
            )
            print(f"  {kind:8s} same children as the first run: {same}; max reward diff {diff:.4f}")
            break


if __name__ == "__main__":
    main()
