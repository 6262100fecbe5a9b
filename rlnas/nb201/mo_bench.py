"""Multi-objective strategies on NAS-Bench-201 + HW-NAS-Bench: hypervolume per look-up budget.

``rlnas bench nb201 --objectives accuracy,latency:pixel3`` runs each strategy over many
seeds through the same :class:`~rlnas.search.Search` loop a real multi-objective ``nb201``
search uses (reinforce, random and rea are told the scalarised reward of
``search.scalarization``; nsga ranks the objective vectors). After ``N`` look-ups the
hypervolume of every cell looked up so far is taken against the **reference point** of the
table's medians (each objective's median over all 15,625 cells: only cells better than a
typical cell in every objective count) and reported as a fraction of the hypervolume of the
whole table's front (1.0 = the true front found). Cells without a value for a device (the
Edge TPU's 4,699 gaps) count as looked up but add no volume.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace

import numpy as np

from rlnas import factory
from rlnas.config import Config
from rlnas.executors import InlineExecutor
from rlnas.hw_table import load_hw_table
from rlnas.nb201.bench import single_threaded_children
from rlnas.nb201.table import load_table
from rlnas.objectives import Objective
from rlnas.pareto import hypervolume
from rlnas.search import Budget, FailurePolicy, Search
from rlnas.trial import Trial, TrialState

MO_STRATEGIES = ("reinforce", "random", "nsga", "rea")


@dataclass(frozen=True)
class Problem:
    """The objectives' values of every cell, the reference point and the best hypervolume."""

    objectives: tuple[Objective, ...]
    reference: tuple[float, ...]
    best: float
    """Hypervolume of the whole table's front."""

    @property
    def maximize(self) -> list[bool]:
        return [o.maximize for o in self.objectives]


def make_problem(objectives: Sequence[Objective], dataset: str) -> Problem:
    """The reference point (the table's medians) and the whole table's front hypervolume."""
    nb, hw = load_table(), load_hw_table()
    columns = []
    for o in objectives:
        if o.device is None:  # the reward: test accuracy
            columns.append(np.asarray(nb.test_acc[dataset], np.float64))
        else:
            columns.append(hw.column(o.device, o.name.partition(":")[0]))
    values = np.column_stack(columns)
    finite = values[np.all(np.isfinite(values), axis=1)]
    reference = tuple(float(np.median(finite[:, j])) for j in range(finite.shape[1]))
    best = hypervolume(finite, reference, [o.maximize for o in objectives])
    return Problem(tuple(objectives), reference, best)


def hv_at(trials: Sequence[Trial], problem: Problem, budgets: Sequence[int]) -> list[float]:
    """Hypervolume fraction of the first ``b`` freshly looked-up cells, per budget ``b``."""
    points = []
    for t in trials:
        if t.cached_from is not None or t.state is not TrialState.COMPLETE:
            continue
        points.append([o.value(t.reward, t.metrics) for o in problem.objectives])
    array = np.array(points, np.float64).reshape(len(points), len(problem.objectives))
    out = []
    for b in budgets:
        head = array[:b]
        head = head[np.all(np.isfinite(head), axis=1)]
        out.append(hypervolume(head, problem.reference, problem.maximize) / problem.best)
    return out


def run_mo_seeds(
    config: Config, strategies: Sequence[str], budgets: Sequence[int], seeds: Sequence[int]
) -> tuple[dict[str, list[list[float]]], dict[str, float]]:
    """Per strategy, one list of hypervolume fractions (one per budget) per seed, and the
    process seconds each strategy took."""
    objectives = config.search.parsed_objectives
    problem = make_problem(objectives, config.task.dataset)
    space = factory.make_space(config)
    evaluator = factory.make_evaluator(config)
    failures = FailurePolicy(config.search.failed_reward, config.search.max_failures)
    out: dict[str, list[list[float]]] = {}
    walls: dict[str, float] = {}
    for name in strategies:
        start = time.perf_counter()
        strategy = None
        out[name] = []
        for seed in seeds:
            if strategy is None or not strategy.can_reset:
                strategy = factory.make_strategy(replace(config, strategy=name, seed=seed), space)
            else:
                strategy.reset(seed)
            search = Search(
                strategy,
                InlineExecutor(evaluator),
                Budget(children=max(budgets)),
                seed,
                failures,
                objectives=objectives,
                scalarization=config.search.scalarization,
            )
            out[name].append(hv_at(search.run().trials, problem, budgets))
        walls[name] = time.perf_counter() - start
    return out, walls


def summarize_mo(per_seed: dict[str, list[list[float]]], budgets: Sequence[int]) -> dict:
    """strategy -> ``{N}q`` -> {mean, std, seeds} of the hypervolume fraction."""
    results: dict = {}
    for name, rows in per_seed.items():
        array = np.array(rows, np.float64)
        results[name] = {
            f"{b}q": {
                "mean": round(float(array[:, j].mean()), 4),
                "std": round(float(array[:, j].std()), 4),
                "seeds": len(rows),
            }
            for j, b in enumerate(budgets)
        }
    return results


def format_mo_table(results: dict, problem: Problem, budgets: Sequence[int], seeds: int) -> str:
    """A markdown table of the hypervolume fractions, with the reference point stated."""
    names = ", ".join(o.name for o in problem.objectives)
    ref = ", ".join(f"{o.name} {v:.4g}" for o, v in zip(problem.objectives, problem.reference))
    head = ["strategy", *[f"HV@{b} look-ups" for b in budgets]]
    lines = [
        f"NAS-Bench-201 x HW-NAS-Bench, objectives {names}; {seeds} seeds: hypervolume as a "
        "fraction of the whole table's front, mean ± std",
        f"Reference point (the table's medians): {ref}; whole-table front hypervolume "
        f"{problem.best:.4g}.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "|".join(["---"] + ["---:"] * len(budgets)) + "|",
    ]
    for name, per_budget in results.items():
        cells = [
            f"{per_budget[f'{b}q']['mean']:.4f} ± {per_budget[f'{b}q']['std']:.4f}" for b in budgets
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _worker(args: tuple[Config, tuple[str, ...], tuple[int, ...], list[int]]):
    return run_mo_seeds(*args)


def run_mo_bench(
    config: Config,
    strategies: Sequence[str],
    budgets: Sequence[int],
    seeds: Sequence[int],
    workers: int = 2,
) -> tuple[dict, dict[str, float], Problem]:
    """All seeds, split over ``workers`` processes; returns the summary, the process seconds
    per strategy and the problem (reference point, best hypervolume)."""
    seeds = list(seeds)
    workers = max(1, min(workers, len(seeds)))
    order = [seeds[k::workers] for k in range(workers)]
    jobs = [(config, tuple(strategies), tuple(budgets), part) for part in order]
    if workers == 1:
        parts = [_worker(jobs[0])]
    else:
        ctx = multiprocessing.get_context("spawn")
        with single_threaded_children(), ProcessPoolExecutor(workers, mp_context=ctx) as pool:
            parts = list(pool.map(_worker, jobs))
    per_seed: dict[str, dict[int, list[float]]] = {}
    walls: dict[str, float] = {}
    for (found, wall), part in zip(parts, order):
        for name, rows in found.items():
            per_seed.setdefault(name, {}).update(zip(part, rows))
            walls[name] = walls.get(name, 0.0) + wall[name]
    ordered = {name: [per_seed[name][s] for s in seeds] for name in strategies}
    problem = make_problem(config.search.parsed_objectives, config.task.dataset)
    return summarize_mo(ordered, budgets), walls, problem
