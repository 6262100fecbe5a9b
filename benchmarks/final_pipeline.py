"""From a config to a tested model: ``rlnas search``, then ``rlnas final``, then an int8 export.

Runs the three commands as a user would (separate processes, the CLI's own output kept in
``<out>/*.log``), each into the config's tracking store (or ``--uri``), and prints the
figures the README reports: children and wall time of the search, best validation reward,
test accuracy of every final model (and the ensemble with its gain over the best member),
total wall time, and the int8 TFLite size ratio and accuracy change. The machine's load
average is printed before and after, because on a shared machine it decides the wall times::

    python benchmarks/final_pipeline.py configs/mnist1d_final.yaml --ensemble
    python benchmarks/final_pipeline.py configs/fashion_mnist.yaml --out runs/bench-fashion
    python benchmarks/final_pipeline.py configs/fashion_mnist.yaml --search-run RUN_ID

``--search-run`` skips the search and retrains an earlier one. Everything else that follows
``--`` is passed to ``rlnas final`` (for example ``-- --set final.epochs=20``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"


def step(name: str, argv: list[str], out: Path) -> float:
    """Run one rlnas command; its output goes to ``out/<name>.log``. Returns seconds."""
    print(f"[{time.strftime('%H:%M:%S')}] {name}: rlnas {' '.join(argv)}", flush=True)
    start = time.time()
    with open(out / f"{name}.log", "w") as log:
        code = subprocess.call([sys.executable, "-m", "rlnas", *argv], stdout=log, stderr=log)
    seconds = time.time() - start
    if code != 0:
        sys.exit(f"{name} failed with status {code}; see {out / (name + '.log')}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", help="search config with a `final:` section")
    parser.add_argument("--out", default=None, help="folder for logs and summaries")
    parser.add_argument("--uri", help="tracking store (default: the config's)")
    parser.add_argument("--search-run", help="retrain this earlier search instead of searching")
    parser.add_argument("--ensemble", action="store_true", help="rlnas final --ensemble")
    parser.add_argument("--no-export", action="store_true", help="skip the int8 export")
    parser.add_argument("final_args", nargs="*", help="extra arguments for rlnas final")
    args = parser.parse_intermixed_args()  # options may follow the config, before --

    name = Path(args.config).stem
    out = Path(args.out or f"runs/bench-{name}-{time.strftime('%Y%m%d-%H%M%S')}")
    out.mkdir(parents=True, exist_ok=True)
    store = ["--set", f"tracking.uri={args.uri}"] if args.uri else []
    figures: dict = {"config": args.config, "load_before": load()}
    print(f"load average before: {figures['load_before']}", flush=True)

    if args.search_run:
        run_id, search_seconds = args.search_run, 0.0
    else:
        argv = ["search", "--config", args.config, "--summary", str(out / "search.json")]
        search_seconds = step("search", [*argv, "--no-progress", *store], out)
        s = json.loads((out / "search.json").read_text())
        run_id = s["run_id"]
        figures.update(
            search_children=s["children"],
            search_failed=s["failed"],
            best_val_reward=s["best_reward"],
            tracking_uri=s["tracking_uri"],
        )
    figures.update(search_run_id=run_id, search_seconds=search_seconds)
    uri = args.uri or figures.get("tracking_uri")
    where = ["--uri", uri] if uri else []
    argv = ["final", run_id, "--summary", str(out / "final.json"), *where]
    argv += ["--ensemble"] if args.ensemble else []
    figures["final_seconds"] = step("final", argv + args.final_args, out)
    f = json.loads((out / "final.json").read_text())
    keys = ("rank", "child", "search_reward", "epochs", "test_accuracy", "params")
    figures["final_models"] = [{k: m.get(k) for k in keys} for m in f["models"]]
    figures["final_epochs_at_most"], figures["final_fit"] = f["epochs"], f["fit"]
    if f.get("ensemble"):
        e = f["ensemble"]
        figures["ensemble"] = {
            k: e[k] for k in ("test_accuracy", "gain_over_best_member", "gain_over_rank1")
        }
    figures["search_plus_final_seconds"] = search_seconds + figures["final_seconds"]
    if not args.no_export:
        argv = ["export", run_id, "--tflite", "--quantize", "int8", *where]
        argv += ["-o", str(out / "model-int8.tflite"), "--summary", str(out / "export.json")]
        figures["export_seconds"] = step("export", argv, out)
        e = json.loads((out / "export.json").read_text())
        figures["int8"] = {
            k: e[k]
            for k in (
                "tflite_bytes",
                "float32_tflite_bytes",
                "smaller_than_float32_tflite",
                "keras_test_accuracy",
                "tflite_test_accuracy",
                "accuracy_change_points",
            )
        }
    figures["load_after"] = load()
    (out / "figures.json").write_text(json.dumps(figures, indent=1) + "\n")
    print(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
