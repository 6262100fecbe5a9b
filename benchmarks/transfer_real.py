"""Warm start vs cold start on a real task: from MNIST-1D to scikit-learn's digits (issue 4).

``controllers/mnist1d-layers`` (a REINFORCE controller trained by ``configs/mnist1d.yaml``
on 1-D signals) starts searches of ``configs/demo.yaml`` (8x8 digit images, another
``layers`` space: the decisions and choices both spaces have are transferred, the rest starts
fresh). Cold searches start from fresh weights. Same seeds, same children, real Keras
training, each search a ``rlnas search`` process tracked into a temporary SQLite store.
Printed per seed and arm: the best validation accuracy after the first N children (and the
mean validation accuracy of those children, which shows whether the policy proposes better
children from the start)::

    python benchmarks/transfer_real.py [--seeds 3] [--children 12]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def search(config: str, seed: int, children: int, source: str | None, tmp: Path) -> dict:
    summary = tmp / f"{seed}-{'warm' if source else 'cold'}.json"
    cmd = [
        sys.executable, "-m", "rlnas", "search", "--config", config, "--no-progress",
        "--summary", str(summary),
        "--set", f"seed={seed}", "--set", f"search.children={children}",
        "--set", f"tracking.uri=sqlite:///{tmp}/mlflow.db",
        "--set", "tracking.experiment=transfer-real",
    ]  # fmt: skip
    if source:
        cmd += ["--set", f"controller.from={source}"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    subprocess.run(cmd, check=True, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    return json.loads(summary.read_text())


def rewards(summary: dict, uri: str) -> list[float]:
    """Validation accuracy of each child, in order (from the MLflow store)."""
    import mlflow

    client = mlflow.MlflowClient(uri)
    runs = client.search_runs(
        [client.get_run(summary["run_id"]).info.experiment_id],
        f"tags.mlflow.parentRunId = '{summary['run_id']}'",
        max_results=1000,
    )
    by_number = {
        int(r.data.tags.get("rlnas.child", -1)): r.data.metrics.get("reward") for r in runs
    }
    return [by_number[k] for k in sorted(by_number) if by_number[k] is not None]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--children", type=int, default=12)
    parser.add_argument("--config", default="configs/demo.yaml")
    parser.add_argument("--source", default="controllers/mnist1d-layers")
    args = parser.parse_args()
    start = time.perf_counter()
    rows = {"cold": [], "warm": []}
    with tempfile.TemporaryDirectory() as tmp:
        uri = f"sqlite:///{tmp}/mlflow.db"
        for seed in range(args.seeds):
            for arm, source in (("cold", None), ("warm", args.source)):
                summary = search(args.config, seed, args.children, source, Path(tmp))
                r = rewards(summary, uri)
                rows[arm].append((summary["best_reward"], statistics.mean(r)))
                print(
                    f"seed {seed} {arm}: best {summary['best_reward']:.4f}, "
                    f"mean of {len(r)} children {statistics.mean(r):.4f}",
                    flush=True,
                )
    for arm, vals in rows.items():
        best = [b for b, _ in vals]
        mean = [m for _, m in vals]
        print(
            f"{arm}: best after {args.children} children, mean over seeds "
            f"{statistics.mean(best):.4f}; mean child {statistics.mean(mean):.4f}"
        )
    print(f"wall {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
