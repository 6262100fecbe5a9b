"""Resident memory of the main process over a long search, with the process and inline
executors.

Bar (issue 5): over 200 children, the main process's resident memory grows by at most
100 MB with the ``process`` executor; ``inline`` (children trained in the main process) is
measured too. Keras is known to leak memory when many models are built in one process
(KerasTuner and NNI issues); the process pool sidesteps it, and recycles workers after
``executor.recycle_after`` children (default 25) so that the workers' leaks are returned.

The search, as users run it: digits, the demo's ``layers`` space, random search, tiny real
children (``--epochs`` epochs of ``--steps`` batches), tracked in MLflow (a temporary
SQLite store), its state saved after every child. After every child the main process reads
its VmRSS from /proc/self/status. Printed: the RSS once everything is loaded (after
``--warmup`` children), at the end, the growth between them, the peak, and the slope of a
least-squares line through the samples (MB per 100 children). Each executor runs in a fresh
Python process::

    python benchmarks/memory.py [--children 200] [--kinds process inline]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def one(kind: str, children: int, epochs: int, steps: int) -> dict:
    """Run the search once with executor ``kind`` (in this process); RSS after each child."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    from rlnas.commands.search import prepare
    from rlnas.config import load_config

    with tempfile.TemporaryDirectory() as tmp:
        overrides = [
            "strategy=random",
            f"child.epochs={epochs}",
            f"child.steps_per_epoch={steps}",
            f"search.children={children}",
            f"executor.kind={kind}",
            f"tracking.uri=sqlite:///{tmp}/mlflow.db",
        ]
        cfg = load_config(ROOT / "configs" / "demo.yaml", overrides)
        p = prepare(cfg, progress=False)
        samples: list[tuple[int, float, float]] = []
        start = time.perf_counter()

        class Meter:
            def trial_finished(self, search, trial):
                samples.append((len(samples) + 1, rss_mb(), time.perf_counter() - start))

        p.search.observers.append(Meter())
        before = rss_mb()
        with p.tracker:
            result = p.search.run()
        return {
            "kind": kind,
            "before": before,
            "samples": samples,
            "failed": result.failed,
            "wall": time.perf_counter() - start,
        }


def report(run: dict, warmup: int) -> str:
    n, rss, _ = (np.array(c) for c in zip(*run["samples"]))
    after = rss[n >= warmup]
    slope = np.polyfit(n[n >= warmup], after, 1)[0] * 100 if len(after) > 2 else float("nan")
    return (
        f"{run['kind']:8s} {len(n)} children in {run['wall']:.0f} s ({run['failed']} failed): "
        f"RSS {run['before']:.0f} MB before the search, {after[0]:.0f} MB after {warmup} "
        f"children, {rss[-1]:.0f} MB at the end: growth {rss[-1] - after[0]:+.0f} MB "
        f"(peak {rss.max():.0f} MB; slope {slope:+.1f} MB per 100 children)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--children", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--steps", type=int, default=4, help="batches per epoch")
    parser.add_argument("--warmup", type=int, default=10, help="children before the baseline")
    parser.add_argument("--kinds", nargs="+", default=["process", "inline"])
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: one run, JSON out
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.children, args.epochs, args.steps)))
        return
    print(f"load average before: {os.getloadavg()}  (cores: {os.cpu_count()})", flush=True)
    for kind in args.kinds:
        command = [sys.executable, __file__, "--one", kind, "--children", str(args.children)]
        command += ["--epochs", str(args.epochs), "--steps", str(args.steps)]
        proc = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
        if proc.returncode != 0:
            print(f"{kind} failed:\n{proc.stderr[-3000:]}", file=sys.stderr)
            continue
        run = json.loads(proc.stdout.strip().splitlines()[-1])
        print(report(run, args.warmup), f" load {os.getloadavg()[0]:.2f}", flush=True)
        marks = [
            s for s in run["samples"] if s[0] in (1, 10, 50, 100, 150, 200, len(run["samples"]))
        ]
        print("          RSS by child: " + ", ".join(f"{n}: {r:.0f} MB" for n, r, _ in marks))
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
