"""rlnas's overhead per child: a tracked search against bare ``model.fit`` of the same models.

Rounds of two timed passes over the same children, each pass in a fresh Python process:

* **rlnas**: a real search (the same code path as ``rlnas search``: strict config, the
  controller, the Keras evaluator, the saved state, the MLflow tracker into a temporary
  SQLite store), timed from the first ask to the end of the run, tracking included;
* **bare**: every child of that search rebuilt with the same builder, seed, data and epochs
  and trained with a bare ``model.fit(..., validation_data=..., validation_freq=...)``
  (validated after the same epochs as the search's children), timed the same way.

Every round's search has the same seed, so it trains the same children (checked). The order
of the two passes alternates from round to round, and the figure is the median of the
rounds' ratios (the bar: at most 1.10). The processes' CPU time (all threads: TensorFlow's,
the MLflow writer's) is compared too. On a shared 2-core virtual machine single rounds vary
by 20-30% either way (the same fit runs up to 1.6x slower at times, in CPU time as well: the
virtual cores share physical ones), so take 8 rounds or more and quote the median. One-off
costs of a process (TensorFlow's first graph, the controller's first update) are paid first,
untimed, by a search of two children or a bare fit of two. Separate processes, because Keras models
trained in a loop without rlnas's clean-up leave graphs behind that slow down whatever runs
later in the process.

    .venv/bin/python benchmarks/overhead.py --config configs/demo.yaml --children 12 --rounds 8
    .venv/bin/python benchmarks/overhead.py --config configs/mnist1d.yaml --children 8

Children train one at a time in the search's process (``executor.kind=inline`` whatever the
config says), as they do in the bare pass.
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


def bare_pass(trials, space, data, child) -> list[float]:
    """Train each trial's model with plain Keras; seconds per child (build + fit)."""
    import keras

    from rlnas.keras_build import build_model, compile_model

    times = []
    for trial in trials:
        blueprint = space.blueprint(trial.architecture)
        start = time.perf_counter()
        keras.utils.set_random_seed(trial.seed)
        model = build_model(blueprint, data.spec)
        compile_model(model, blueprint.training)
        model.fit(
            data.x_train,
            data.y_train,
            batch_size=blueprint.training.batch_size,
            epochs=child.epochs,
            validation_data=(data.x_val, data.y_val),
            validation_freq=1 if child.validate == "every_epoch" else child.epochs,
            verbose=0,
        )
        times.append(time.perf_counter() - start)
        del model
        keras.backend.clear_session(free_memory=False)
    return times


def tracked_search(cfg, children: int):
    """One search of ``cfg`` into a fresh temporary store: (wall seconds, result)."""
    from rlnas.commands.search import prepare

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp}/mlflow.db"
        prepared = prepare(cfg, progress=False)
        start, cpu = time.perf_counter(), time.process_time()
        with prepared.tracker:
            result = prepared.search.run()
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    assert len(result.trials) == children, (len(result.trials), children)
    return seconds, cpu, result


def one(kind: str, config: str, children: int, trials_file: str, sets: list[str]) -> dict:
    """One timed pass in this process (after an untimed warm-up); its figures."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from rlnas.config import load_config
    from rlnas.factory import load_task_data, make_space
    from rlnas.trial import Trial, TrialState

    # children one at a time in this process, as the bare pass trains them
    sets = ["executor.kind=inline", *sets]
    cfg = load_config(config, [f"search.children={children}", *sets])
    if kind == "rlnas":
        tracked_search(load_config(config, ["search.children=2", *sets]), 2)  # warm-up
        seconds, cpu, result = tracked_search(cfg, children)
        done = [t for t in result.trials if t.state is TrialState.COMPLETE]
        Path(trials_file).write_text(json.dumps([t.to_dict() for t in result.trials]))
        return {
            "per_child": seconds / len(result.trials),
            "cpu": cpu / len(result.trials),
            "fit": statistics.fmean(t.cost for t in done),
            "children": [[t.architecture.hash, t.seed] for t in result.trials],
        }
    trials = [Trial.from_dict(d) for d in json.loads(Path(trials_file).read_text())]
    trials = [t for t in trials if t.state is TrialState.COMPLETE]
    space, data = make_space(cfg), load_task_data(cfg)
    bare_pass(trials[:2], space, data, cfg.child)  # warm-up
    cpu = time.process_time()
    per_child = statistics.fmean(bare_pass(trials, space, data, cfg.child))
    return {"per_child": per_child, "cpu": (time.process_time() - cpu) / len(trials)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "configs" / "demo.yaml"))
    parser.add_argument("--children", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--one", choices=("rlnas", "bare"), help=argparse.SUPPRESS)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="config override, as rlnas search --set")  # fmt: skip
    parser.add_argument("--trials", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.config, args.children, args.trials, args.set)))
        return 0

    def run(kind: str, trials: str) -> dict:
        command = [sys.executable, __file__, "--one", kind, "--config", args.config]
        command += ["--children", str(args.children), "--trials", trials]
        command += [f"--set={item}" for item in args.set]
        proc = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
        if proc.returncode != 0:
            sys.exit(f"the {kind} pass failed:\n{proc.stderr[-3000:]}")
        return json.loads(proc.stdout.strip().splitlines()[-1])

    rows, reference = [], None
    with tempfile.TemporaryDirectory() as tmp:
        trials = str(Path(tmp, "trials.json"))
        for r in range(args.rounds):
            passes: dict[str, dict] = {}
            order = ("rlnas", "bare") if r % 2 == 0 or reference is None else ("bare", "rlnas")
            for kind in order:
                passes[kind] = run(kind, trials)
                if kind == "rlnas":
                    children = passes["rlnas"]["children"]
                    assert reference in (None, children), "a round trained other children"
                    reference = children
            row = {
                "rlnas": passes["rlnas"]["per_child"],
                "fit": passes["rlnas"]["fit"],
                "bare": passes["bare"]["per_child"],
                "rlnas_cpu": passes["rlnas"]["cpu"],
                "bare_cpu": passes["bare"]["cpu"],
            }
            row["ratio"] = row["rlnas"] / row["bare"]
            row["cpu_ratio"] = row["rlnas_cpu"] / row["bare_cpu"]
            rows.append(row)
            print(
                f"round {r + 1} ({' then '.join(order)}): rlnas {row['rlnas']:.2f} s/child (fit "
                f"+ validation {row['fit']:.2f}), bare {row['bare']:.2f} s/child, ratio "
                f"{row['ratio']:.3f}; CPU {row['rlnas_cpu']:.2f} against {row['bare_cpu']:.2f} "
                f"s/child, ratio {row['cpu_ratio']:.3f}  (load {os.getloadavg()[0]:.2f})",
                flush=True,
            )
    from rlnas.config import load_config

    cfg = load_config(args.config, args.set)
    print(
        f"config: {args.config}  children: {args.children}  epochs: {cfg.child.epochs}  "
        f"validated: {cfg.child.validate}  rounds: {args.rounds}"
    )
    for key, label in (
        ("rlnas", "rlnas search (tracked)"),
        ("fit", "  of which fit + validation"),
        ("bare", "bare model.fit"),
        ("rlnas_cpu", "rlnas search, CPU time"),
        ("bare_cpu", "bare model.fit, CPU time"),
    ):
        print(f"{label:32}{statistics.median(row[key] for row in rows):8.2f} s/child (median)")
    for key, what in (("ratio", "wall time"), ("cpu_ratio", "CPU time")):
        ratios = sorted(row[key] for row in rows)
        print(
            f"ratio rlnas / bare, {what}: median {statistics.median(ratios):.3f} of "
            f"{len(ratios)} rounds ({', '.join(f'{x:.3f}' for x in ratios)})  (bar: <= 1.10)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
