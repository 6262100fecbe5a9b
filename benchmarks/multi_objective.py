"""Multi-objective strategies on NAS-Bench-201 joined with HW-NAS-Bench: hypervolume per budget.

Objectives: CIFAR-10 200-epoch test accuracy (%, maximised) and one device's latency
(ms, minimised; HW-NAS-Bench, CIFAR-10 inputs). Every strategy proposes cells through its
ask/tell interface and each distinct cell costs one table look-up; after 150 and 500
look-ups the hypervolume of all cells looked up so far is taken with the reference point
(accuracy = the table's median, latency = the device's median: only cells better than a
typical cell in both count), and printed as a fraction of the hypervolume of the whole
table's front (1.0 = the true front found).

Strategies:
  random        rlnas RandomSearch (no repeats)
  nsga          rlnas NsgaEvolution (rank + crowding tournament on an aging population)
  reinforce     rlnas ReinforceController, reward = Chebyshev scalarisation with a fresh
                Dirichlet weight vector per controller batch (running normalisation)
  reinforce-lin the same with the linear (weighted-sum) scalarisation
  optuna-nsga2  optuna NSGAIISampler }  through study.ask/tell; a repeated cell is told its
  optuna-tpe    optuna TPESampler    }  value again without counting as a look-up (at
                                        most 3 n trials for n look-ups)

Run (optuna is optional: `pip install rlnas[bench]`):
  PYTHONPATH=. python benchmarks/multi_objective.py --devices pixel3 --seeds 10
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from rlnas.hw_table import load_hw_table
from rlnas.nb201.space import Nb201Space
from rlnas.nb201.table import load_table
from rlnas.nb201.vocabulary import EDGES, OPS, cell_code
from rlnas.objectives import Scalarizer, parse_objectives
from rlnas.pareto import hypervolume
from rlnas.strategies.nsga import NsgaEvolution
from rlnas.strategies.random_search import RandomSearch
from rlnas.strategies.reinforce import ReinforceController

MAXIMIZE = [True, False]


@dataclass(frozen=True)
class Problem:
    device: str
    accuracy: np.ndarray  # by NAS-Bench-201 row
    latency: np.ndarray
    row_by_code: np.ndarray
    reference: tuple[float, float]
    best_hv: float

    def point(self, row: int) -> tuple[float, float]:
        return float(self.accuracy[row]), float(self.latency[row])


def make_problem(device: str) -> Problem:
    nb, hw = load_table(), load_hw_table()
    acc = nb.test_acc["cifar10"]
    lat = hw.column(device, "latency")
    if np.isnan(lat).any():
        raise SystemExit(f"device {device}: {int(np.isnan(lat).sum())} cells lack a latency")
    ref = (float(np.median(acc)), float(np.median(lat)))
    best = hypervolume(np.column_stack([acc, lat]), ref, MAXIMIZE)
    return Problem(device, acc, lat, nb.row_by_code, ref, best)


def rlnas_run(kind: str, seed: int, n: int, prob: Problem) -> list[tuple[float, float]]:
    """Points looked up, in order, by one of rlnas's strategies."""
    space = Nb201Space()
    objectives = parse_objectives(["accuracy", f"latency:{prob.device}"])
    key = objectives[1].metric
    if kind == "random":
        strategy = RandomSearch(space, seed=seed)
    elif kind == "nsga":
        strategy = NsgaEvolution(space, objectives, seed=seed)
    else:
        strategy = ReinforceController(space, seed=seed)
        method = "linear" if kind == "reinforce-lin" else "chebyshev"
        scalar = Scalarizer(objectives, method, seed=seed)
    points = []
    for _ in range(n):
        sample = strategy.ask()
        code = cell_code(tuple(sample.architecture[e] for e in EDGES))
        acc, lat = prob.point(int(prob.row_by_code[code]))
        points.append((acc, lat))
        if kind == "nsga":
            strategy.tell(sample, acc, {key: lat})
        elif kind == "random":
            strategy.tell(sample, acc)
        elif strategy.tell(sample, scalar([acc, lat])):  # an update: next batch, new weights
            scalar.new_weights()
    return points


def optuna_run(kind: str, seed: int, n: int, prob: Problem) -> list[tuple[float, float]]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = (
        optuna.samplers.NSGAIISampler(seed=seed)
        if kind == "optuna-nsga2"
        else optuna.samplers.TPESampler(seed=seed)
    )
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    seen: dict[int, tuple[float, float]] = {}
    points: list[tuple[float, float]] = []
    for _ in range(3 * n):  # repeats are free but bounded
        trial = study.ask()
        code = cell_code(tuple(trial.suggest_categorical(e, OPS) for e in EDGES))
        if code not in seen:
            seen[code] = prob.point(int(prob.row_by_code[code]))
            points.append(seen[code])
        study.tell(trial, list(seen[code]))
        if len(points) >= n:
            break
    return points


RUNNERS: dict[str, Callable[[str, int, int, Problem], list[tuple[float, float]]]] = {
    "random": rlnas_run,
    "nsga": rlnas_run,
    "reinforce": rlnas_run,
    "reinforce-lin": rlnas_run,
    "optuna-nsga2": optuna_run,
    "optuna-tpe": optuna_run,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devices", default="pixel3")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--budgets", default="150,500")
    parser.add_argument("--strategies", default=",".join(RUNNERS))
    args = parser.parse_args()
    budgets = [int(b) for b in args.budgets.split(",")]
    names = args.strategies.split(",")
    for name in names:
        if name not in RUNNERS:
            parser.error(f"--strategies: unknown {name!r}; expected some of {', '.join(RUNNERS)}")
    for device in args.devices.split(","):
        prob = make_problem(device)
        print(
            f"\n## accuracy (cifar10 test %) x latency:{device} (ms); {args.seeds} seeds; "
            f"reference point ({prob.reference[0]:.2f} %, {prob.reference[1]:.3f} ms); "
            f"whole-table front hypervolume {prob.best_hv:.2f}\n"
        )
        head = ["strategy", *[f"HV@{b} (fraction of front)" for b in budgets], "wall s"]
        print("| " + " | ".join(head) + " |")
        print("|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|")
        for name in names:
            start = time.perf_counter()
            hv = np.zeros((args.seeds, len(budgets)))
            for seed in range(args.seeds):
                pts = RUNNERS[name](name, seed, max(budgets), prob)
                for j, b in enumerate(budgets):
                    hv[seed, j] = hypervolume(pts[:b], prob.reference, MAXIMIZE) / prob.best_hv
            wall = time.perf_counter() - start
            cells = [f"{hv[:, j].mean():.4f} ± {hv[:, j].std():.4f}" for j in range(len(budgets))]
            print(f"| {name} | " + " | ".join(cells) + f" | {wall:.1f} |", flush=True)


if __name__ == "__main__":
    main()
