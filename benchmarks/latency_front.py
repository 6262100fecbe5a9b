"""Accurate and fast on Fashion-MNIST: a real search with a measured-latency objective, its
front, and the latency of the int8 model it ships.

Runs, as a user would (separate processes, each command's output in ``<out>/*.log``):

1. ``rlnas search`` on ``configs/fashion_mnist.yaml`` with ``search.objectives: [accuracy,
   latency]`` (each child's float32 LiteRT latency, batch 1, measured on this machine),
   shortened by ``--children``, ``--epochs`` and ``--train-subset``;
2. ``rlnas final RUN --max-latency-ms X``: the front's most accurate member within ``X`` ms
   (default: the median latency of the front's members), retrained from scratch, without
   test-time augmentation (which would multiply the shipped model's latency);
3. ``rlnas export RUN --tflite --quantize int8``;

then times the int8 flat buffer with ai-edge-litert's interpreter (batch 1, one float32
image in, the median of ``--runs`` invokes after ``--warmup`` untimed ones) and prints the
front, the pick, and the figures as JSON (``<out>/figures.json``). The load average is
printed before and after: on a shared machine it moves every latency::

    python benchmarks/latency_front.py --children 12 --epochs 1 --train-subset 2000
    python benchmarks/latency_front.py --max-latency-ms 0.5
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
from final_pipeline import load, step  # this folder: the same runner of rlnas commands

CONFIG = "configs/fashion_mnist.yaml"


def int8_latency_ms(path: Path, runs: int, warmup: int) -> dict[str, float]:
    """Median and quartiles of the interpreter's ``invoke`` on one image (batch 1)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=1)
    inp = interpreter.get_input_details()[0]
    shape = (1, *[int(d) for d in inp["shape"][1:]])
    interpreter.resize_tensor_input(inp["index"], shape)
    interpreter.allocate_tensors()
    x = np.random.default_rng(0).random(shape).astype(inp["dtype"])
    interpreter.set_tensor(inp["index"], x)
    for _ in range(warmup):
        interpreter.invoke()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        interpreter.invoke()
        times.append(1000.0 * (time.perf_counter() - start))
    q1, median, q3 = statistics.quantiles(times, n=4)
    return {"median_ms": median, "q1_ms": q1, "q3_ms": q3, "runs": runs, "warmup": warmup}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=CONFIG)
    parser.add_argument("--children", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=1, help="child.epochs and final.epochs")
    parser.add_argument("--train-subset", type=int, default=2000)
    parser.add_argument("--final-subset", type=int, default=10000, help="final.train_subset")
    parser.add_argument("--max-latency-ms", type=float, help="default: the front's median")
    parser.add_argument("--runs", type=int, default=200, help="timed invokes of the int8 model")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--out", help="folder for logs and summaries")
    parser.add_argument("--uri", help="tracking store (default: sqlite in --out)")
    args = parser.parse_args()

    out = Path(args.out or f"runs/bench-latency-front-{time.strftime('%Y%m%d-%H%M%S')}")
    out.mkdir(parents=True, exist_ok=True)
    uri = args.uri or f"sqlite:///{(out / 'mlflow.db').resolve()}"
    figures: dict = {"load_before": load()}
    print(f"load average before: {figures['load_before']}", flush=True)
    sets = [
        "search.objectives=[accuracy, latency]",
        "child.target_mmacs=null",  # latency is an objective of its own, not a reward factor
        "child.latency.method=tflite",
        f"search.children={args.children}",
        "search.wall_seconds=null",
        f"child.epochs={args.epochs}",
        f"task.train_subset={args.train_subset}",
        "executor.workers=1",
        f"tracking.uri={uri}",
    ]
    argv = ["search", "--config", args.config, "--summary", str(out / "search.json")]
    argv += ["--no-progress", *[a for s in sets for a in ("--set", s)]]
    figures["search_seconds"] = round(step("search", argv, out), 1)
    s = json.loads((out / "search.json").read_text())
    run_id, front = s["run_id"], s["front"]
    figures.update(children=s["children"], failed=s["failed"], front=front)
    print(f"front of {s['children']} children (accuracy, latency ms):")
    for m in front:
        print(f"  child {m['number']}: {m['objectives']}")
    latencies = [float(m["objectives"]["latency"]) for m in front]
    budget = args.max_latency_ms or float(np.median(latencies))
    figures["max_latency_ms"] = budget

    final = [f"final.epochs={args.epochs}", "final.budget_seconds=null", "final.augment=none"]
    final += [f"final.train_subset={args.final_subset}"]
    final += ["final.test_time_flip=false", "final.test_time_shift=0"]
    argv = ["final", run_id, "--max-latency-ms", f"{budget:.6g}", "--uri", uri]
    argv += ["--summary", str(out / "final.json"), *[a for s in final for a in ("--set", s)]]
    figures["final_seconds"] = round(step("final", argv, out), 1)
    f = json.loads((out / "final.json").read_text())
    picked = f["models"][0]
    figures["picked"] = {k: picked.get(k) for k in ("child", "search_reward", "test_accuracy")}
    figures["picked"]["search_latency_ms"] = next(
        (m["objectives"]["latency"] for m in front if m["number"] == picked.get("child")), None
    )

    model = out / "model-int8.tflite"
    argv = ["export", run_id, "--tflite", "--quantize", "int8", "--uri", uri, "-o", str(model)]
    figures["export_seconds"] = round(
        step("export", [*argv, "--summary", str(out / "e.json")], out), 1
    )
    e = json.loads((out / "e.json").read_text())
    figures["int8"] = {
        k: e[k] for k in ("tflite_bytes", "keras_test_accuracy", "tflite_test_accuracy")
    }
    figures["int8"].update(int8_latency_ms(model, args.runs, args.warmup))
    figures["load_after"] = load()
    (out / "figures.json").write_text(json.dumps(figures, indent=1) + "\n")
    print(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
