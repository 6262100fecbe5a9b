"""``rlnas final RUN_ID``: retrain a search's best architectures, test them once, register them.

Reads the search's resolved config and completed children from MLflow, retrains the best
``final.top_k`` distinct architectures from scratch on training + validation for
``final.epochs`` epochs, evaluates each once on the test split, and logs each as a run
nested under the search with its ``mlflow.keras`` model (logged once) and a Model Registry
version (tagged ``rank``; the alias ``champion`` on rank 1); ``RUN_ID`` may also name a
registered final model of the search (``models:/NAME@champion``); ``--ensemble`` adds one
model averaging them and its gain over the best single model (the work is in
:mod:`rlnas.final_runs`).

Every check (the store, the run id, the config with its overrides, the data, each
architecture) happens before the first final run is created.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rlnas.commands import add_command
from rlnas.errors import ConfigError
from rlnas.final_runs import execute, prepare
from rlnas.progress import clock


def register(subparsers) -> None:
    p = add_command(
        subparsers, "final", "retrain a search's best architectures and test them once", run
    )
    p.add_argument(
        "run_id",
        metavar="RUN_ID",
        help="the search's MLflow parent run id, or a registered final model of it "
        "(models:/NAME@champion, models:/NAME/VERSION)",
    )
    p.add_argument("--top-k", type=int, metavar="K", help="architectures to retrain (final.top_k)")
    p.add_argument("--epochs", type=int, metavar="E", help="training epochs (final.epochs)")
    p.add_argument(
        "--pareto",
        action="store_true",
        help="retrain the members of the search's Pareto front (a multi-objective search)",
    )
    p.add_argument(
        "--max-latency-ms",
        type=float,
        metavar="MS",
        help="retrain the front's most accurate member within this latency (needs a latency "
        "objective)",
    )
    p.add_argument(
        "--width-multiplier",
        type=float,
        metavar="W",
        help="train W times the searched filters in every layer (final.width_multiplier)",
    )
    p.add_argument("--ensemble", action="store_true", help="also evaluate their average")
    p.add_argument(
        "--weighted",
        action="store_true",
        help="weight the ensemble on validation (implies --ensemble)",
    )
    p.add_argument(
        "--test-time-flip",
        action="store_true",
        help="ship models that average the image and its mirror (final.test_time_flip)",
    )
    p.add_argument(
        "--test-time-shift",
        type=int,
        metavar="PIXELS",
        help="also average over views shifted by PIXELS up, down, left, right "
        "(final.test_time_shift)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a value of the search's config, e.g. --set final.schedule=constant",
    )
    p.add_argument("--uri", help="tracking store URI (default: as rlnas search uses)")
    p.add_argument("--summary", metavar="PATH", help="write a JSON summary here")


def flag_overrides(args: argparse.Namespace) -> list[str]:
    out = []
    if args.top_k is not None:
        out.append(f"final.top_k={args.top_k}")
    if args.epochs is not None:
        out.append(f"final.epochs={args.epochs}")
    if args.width_multiplier is not None:
        out.append(f"final.width_multiplier={args.width_multiplier}")
    if args.ensemble or args.weighted:
        out.append("final.ensemble=true")
    if args.weighted:
        out.append("final.weighted=true")
    if args.test_time_flip:
        out.append("final.test_time_flip=true")
    if args.test_time_shift is not None:
        out.append(f"final.test_time_shift={args.test_time_shift}")
    return out + list(args.set)


def run(args: argparse.Namespace) -> int:
    """Retrain the best architectures of a search from scratch on training + validation for
    longer, evaluate each once on the test split, and log and register the models in MLflow."""
    if args.summary and Path(args.summary).is_dir():
        raise ConfigError(f"--summary: {args.summary!r} is a folder; expected a file path.")
    plan = prepare(
        args.run_id,
        flag_overrides(args),
        args.uri,
        pareto=args.pareto,
        max_latency_ms=args.max_latency_ms,
    )
    summary = execute(plan, progress=lambda line: print(line, file=sys.stderr, flush=True))
    if args.summary:
        path = Path(args.summary)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(summary, indent=1) + "\n")
    _report(summary)
    return (
        0 if summary["models"] and all(m["status"] == "FINISHED" for m in summary["models"]) else 1
    )


def _report(summary: dict) -> None:
    """A table of the final models on stdout."""
    print(
        f"Final models of search {summary['search_run_id']} ({summary['task']}, "
        f"{summary['space']}): up to {summary['epochs']} epochs on {summary['fit']}."
    )
    regression = any("test_mae" in m for m in summary["models"])
    figures = f"{'test MAE':>9} {'RMSE':>9} {'R2':>6}" if regression else "test acc macro F1"
    print(
        f"{'rank':>4} {'child':>5} {'search':>8} {'epochs':>6} {figures} "
        f"{'params':>9}  run / registered model"
    )
    for m in summary["models"]:
        if m["status"] != "FINISHED":
            print(f"{m['rank']:>4} {m['child']:>5}  FAILED: {m.get('message', '')}")
            continue
        if regression:
            test = f"{m['test_mae']:>9.4g} {m['test_rmse']:>9.4g} {m['test_r2']:>6.3f}"
        else:
            test = f"{m['test_accuracy']:>8.4f} {m['test_macro_f1']:>8.4f}"
        print(
            f"{m['rank']:>4} {m['child']:>5} {m['search_reward']:>8.4f} {m['epochs']:>6} "
            f"{test} {m['params']:>9}  {m['run_id']} {m['registered'] or ''}"
        )
    e = summary.get("ensemble")
    if e:
        print(
            f"ensemble of {len(e['weights'])} ({e['kind']}): "
            f"test acc {e['test_accuracy']:.4f}, macro F1 {e['test_macro_f1']:.4f}; "
            f"gain over the best member {100 * e['gain_over_best_member']:+.2f} points, over "
            f"rank 1 {100 * e['gain_over_rank1']:+.2f}; {e['run_id']} {e['registered'] or ''}"
        )
    print(
        f"Done in {clock(summary['wall_seconds'])}. Export one: rlnas export "
        f"{summary['search_run_id']} --tflite --quantize int8"
    )
