"""rlnas's multi-objective strategies beside Optuna's samplers on NAS-Bench-201 x HW-NAS-Bench.

The rlnas strategies (reinforce, random, nsga, rea) run exactly as ``rlnas bench nb201
--objectives accuracy,latency:DEVICE`` runs them (:mod:`rlnas.nb201.mo_bench`: the product's
search loop, hypervolume against the table's medians as a fraction of the whole table's
front). This script adds Optuna's ``NSGAIISampler`` and ``TPESampler`` (multi-objective)
through ``study.ask/tell`` on the same problem: a repeated cell is told its values again
without counting as a look-up (at most 3 n trials for n look-ups).

Run (optuna is optional: ``pip install rlnas[bench]``):
  PYTHONPATH=. python benchmarks/multi_objective.py --devices pixel3 --seeds 10
  PYTHONPATH=. python benchmarks/multi_objective.py --strategies optuna-tpe --seeds 30 \\
      --per-seed tpe.jsonl    # TPE takes ~40 s a seed: each seed's figures are kept as it ends
  PYTHONPATH=. python benchmarks/multi_objective.py --strategies reinforce,nsga \\
      --set controller.batch_size=10
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from rlnas.config import load_config
from rlnas.nb201.mo_bench import MO_STRATEGIES, Problem, make_problem, run_mo_seeds
from rlnas.nb201.table import load_table
from rlnas.nb201.vocabulary import EDGES, OPS, cell_code
from rlnas.pareto import hypervolume

OPTUNA = ("optuna-nsga2", "optuna-tpe")
CONFIG = "configs/nb201-pixel3.yaml"  # its objectives are replaced per --devices


def optuna_hv(
    kind: str, seed: int, budgets: list[int], problem: Problem
) -> tuple[list[float], int]:
    """Hypervolume fractions of one Optuna study after each budget of distinct look-ups, and
    how many distinct cells it looked up (fewer than the largest budget when its 3 n trials
    ran out on repeats: a budget beyond that counts only the cells it reached)."""
    import optuna

    from rlnas.hw_table import load_hw_table

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    device = problem.objectives[1].device
    acc = load_table().test_acc["cifar10"]
    lat = load_hw_table().column(device, "latency")
    rows = load_table().row_by_code
    sampler = (
        optuna.samplers.NSGAIISampler(seed=seed)
        if kind == "optuna-nsga2"
        else optuna.samplers.TPESampler(seed=seed)
    )
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    seen: dict[int, tuple[float, float]] = {}
    points: list[tuple[float, float]] = []
    n = max(budgets)
    for _ in range(3 * n):
        trial = study.ask()
        code = cell_code(tuple(trial.suggest_categorical(e, OPS) for e in EDGES))
        if code not in seen:
            row = int(rows[code])
            seen[code] = (float(acc[row]), float(lat[row]))
            points.append(seen[code])
        study.tell(trial, list(seen[code]))
        if len(points) >= n:
            break
    array = np.array(points)
    hv = [
        hypervolume(array[:b], problem.reference, problem.maximize) / problem.best for b in budgets
    ]
    return hv, len(points)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devices", default="pixel3")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument(
        "--per-seed", metavar="PATH", help="append each Optuna seed's figures here (JSON lines)"
    )
    parser.add_argument("--budgets", default="150,500")
    parser.add_argument("--strategies", default=",".join((*MO_STRATEGIES[:3], *OPTUNA)))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    budgets = [int(b) for b in args.budgets.split(",")]
    names = args.strategies.split(",")
    for name in names:
        if name not in (*MO_STRATEGIES, *OPTUNA):
            parser.error(f"--strategies: unknown {name!r}")
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    for device in args.devices.split(","):
        objectives = f"search.objectives=[accuracy, 'latency:{device}']"
        cfg = load_config(CONFIG, [*args.set, objectives])
        problem = make_problem(cfg.search.parsed_objectives, "cifar10")
        ref = ", ".join(f"{v:.4g}" for v in problem.reference)
        print(
            f"\n## accuracy x latency:{device}; seeds {seeds[0]}-{seeds[-1]}; reference point "
            f"({ref}); "
            f"whole-table front hypervolume {problem.best:.4g}\n"
        )
        head = ["strategy", *[f"HV@{b}" for b in budgets], "wall s"]
        print("| " + " | ".join(head) + " |")
        print("|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|")
        for name in names:
            start = time.perf_counter()
            if name in OPTUNA:
                rows = []
                for seed in seeds:
                    hv, n = optuna_hv(name, seed, budgets, problem)
                    rows.append(hv)
                    if args.per_seed:
                        with open(args.per_seed, "a") as f:
                            line = {"device": device, "strategy": name, "seed": seed}
                            f.write(json.dumps({**line, "hv": hv, "looked_up": n}) + "\n")
            else:
                rows = run_mo_seeds(cfg, [name], budgets, seeds)[0][name]
            hv = np.array(rows)
            wall = time.perf_counter() - start
            cells = [f"{hv[:, j].mean():.4f} ± {hv[:, j].std():.4f}" for j in range(len(budgets))]
            print(f"| {name} | " + " | ".join(cells) + f" | {wall:.1f} |", flush=True)


if __name__ == "__main__":
    main()
