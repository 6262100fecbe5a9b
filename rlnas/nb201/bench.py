"""Search strategies side by side on the NAS-Bench-201 table (``rlnas bench nb201``).

Every strategy runs through the same :class:`~rlnas.search.Search` loop, executor and
table evaluator as a real ``nb201`` search, with the controller and evolution settings of
a search config (``configs/nb201-cifar10.yaml``), once per seed. One search per seed and
strategy runs ``max(queries)`` look-ups; the best reward within each budget is read off its
trajectory: within ``N`` queries, the first ``N`` children; within ``S`` seconds, the
children whose summed cost stays <= ``S`` (what a search with that cost budget would have
evaluated, since the first child over the budget ends it uncounted).

The reward is the 200-epoch TEST accuracy (the table has no full validation column), as in
the table-lookup comparison of the NAS-Bench-201 paper, whose figures are printed beside
ours. Seeds are split over worker processes; each reuses one controller through
``reset(seed)``. The controller samples and learns in NumPy, so no worker imports a deep
learning framework.
"""

from __future__ import annotations

import contextlib
import logging
import math
import multiprocessing
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace

import numpy as np

from rlnas import factory
from rlnas.config import Config
from rlnas.errors import require, require_one_of
from rlnas.executors import InlineExecutor
from rlnas.nb201.table import load_table
from rlnas.nb201.vocabulary import DATASETS
from rlnas.search import Budget, FailurePolicy, Search
from rlnas.trial import Trial, TrialState

log = logging.getLogger("rlnas.bench")

STRATEGIES = ("reinforce", "rea", "random")
PUBLISHED_SOURCE = (
    "Dong & Yang, NAS-Bench-201, ICLR 2020, Table 5: CIFAR-10 test accuracy, "
    "mean ± std, 12,000 s budget"
)
PUBLISHED_BUDGET = "12000s"
PUBLISHED = {  # dataset -> strategy -> (mean, std) at PUBLISHED_BUDGET
    "cifar10": {"random": (93.70, 0.36), "reinforce": (93.85, 0.37), "rea": (93.92, 0.30)},
}
PUBLISHED_OPTIMUM = {"cifar10": 94.37}
Result = dict[str, dict[str, dict[str, float]]]  # strategy -> budget label -> figures


@dataclass(frozen=True)
class BenchSettings:
    """What to compare: strategies, seeds and budgets (the CLI flags)."""

    dataset: str = "cifar10"
    strategies: tuple[str, ...] = STRATEGIES
    seeds: int = 300
    """Searches per strategy, with seeds ``first_seed .. first_seed + seeds - 1``."""
    budget_seconds: tuple[float, ...] = (12000.0,)
    """Budgets in simulated training seconds (12 x the per-epoch time of each child)."""
    queries: tuple[int, ...] = (150, 500)
    """Budgets in table look-ups (children)."""
    workers: int = 2
    """Processes the seeds are split over (1: run in this process)."""
    first_seed: int = 0

    def __post_init__(self) -> None:
        require_one_of("--dataset", self.dataset, DATASETS)
        require(bool(self.strategies), "--strategies", "", "a comma-separated list")
        for name in self.strategies:
            require_one_of("--strategies", name, STRATEGIES)
        require(
            len(set(self.strategies)) == len(self.strategies),
            "--strategies",
            ",".join(self.strategies),
            "each strategy once",
        )
        require(self.seeds >= 1, "--seeds", self.seeds, "an integer >= 1")
        require(
            bool(self.budget_seconds or self.queries),
            "--budget-seconds/--queries",
            "",
            "at least one budget",
        )
        for b in self.budget_seconds:
            require(math.isfinite(b) and b > 0, "--budget-seconds", b, "numbers > 0")
        for q in self.queries:
            require(q >= 1, "--queries", q, "integers >= 1")
        require(self.workers >= 1, "--workers", self.workers, "an integer >= 1")

    @property
    def labels(self) -> list[str]:
        """Budget labels in output order: ``12000s``, then ``150q``, ``500q``."""
        return [seconds_label(b) for b in self.budget_seconds] + [f"{q}q" for q in self.queries]


def seconds_label(budget: float) -> str:
    return f"{int(budget)}s" if float(budget).is_integer() else f"{budget:g}s"


# -- one process: many seeds ----------------------------------------------------------------
def read_budgets(trials: list[Trial], settings: BenchSettings) -> dict[str, tuple[float, int]]:
    """Best reward and children counted within each budget, read off one search's trials."""
    counted = np.array(
        [
            t.cached_from is None and t.state in (TrialState.COMPLETE, TrialState.FAILED)
            for t in trials
        ]
    )
    rewards = np.array(
        [t.reward if t.state is TrialState.COMPLETE else -np.inf for t in trials], float
    )
    n_children = np.cumsum(counted)
    spent = np.cumsum(np.where(counted, [t.cost for t in trials], 0.0))
    out: dict[str, tuple[float, int]] = {}
    for b in settings.budget_seconds:
        within = spent <= b
        out[seconds_label(b)] = (_best(rewards[within]), int(counted[within].sum()))
    for q in settings.queries:
        within = (n_children < q) | ((n_children == q) & counted)
        out[f"{q}q"] = (_best(rewards[within]), int(counted[within].sum()))
    return out


def _best(rewards: np.ndarray) -> float:
    return float(rewards.max()) if rewards.size and np.isfinite(rewards.max()) else math.nan


def run_seeds(
    config: Config, settings: BenchSettings, seeds: list[int]
) -> tuple[dict[str, list[dict[str, tuple[float, int]]]], dict[str, float]]:
    """Run every strategy of ``settings`` on ``seeds`` in this process.

    Returns, per strategy, one ``{label: (best reward, children)}`` per seed, and the wall
    seconds each strategy took.
    """
    cfg = replace(config, task=replace(config.task, name="nb201", dataset=settings.dataset))
    space = factory.make_space(cfg)
    evaluator = factory.make_evaluator(cfg)
    max_q = max(settings.queries, default=None)
    max_s = max(settings.budget_seconds, default=None)
    out: dict[str, list[dict[str, tuple[float, int]]]] = {}
    walls: dict[str, float] = {}
    for name in settings.strategies:
        start = time.perf_counter()
        search = _searcher(cfg, name, space, evaluator)
        per_seed = []
        for seed in seeds:
            if max_q is None:
                per_seed.append(read_budgets(search(seed, Budget(cost_seconds=max_s)), settings))
                continue
            trials = search(seed, Budget(children=max_q))
            found = read_budgets(trials, settings)
            spent = sum(t.cost for t in trials if t.cached_from is None)
            if max_s is not None and spent <= max_s and len(trials) >= max_q:
                # the look-up budget ended before the cost budget: run that one apart
                longer = read_budgets(search(seed, Budget(cost_seconds=max_s)), settings)
                for b in settings.budget_seconds:
                    found[seconds_label(b)] = longer[seconds_label(b)]
            per_seed.append(found)
        out[name] = per_seed
        walls[name] = time.perf_counter() - start
        log.info("%s: %d seeds in %.1f s", name, len(seeds), walls[name])
    return out, walls


def _searcher(cfg: Config, name: str, space, evaluator) -> Callable[[int, Budget], list[Trial]]:
    """``search(seed, budget) -> trials``: one search of strategy ``name``, as ``rlnas
    search`` would run it with this seed. A strategy with ``reset`` is built once and reset
    per seed (REINFORCE re-initializes its policy in place)."""
    failures = FailurePolicy(cfg.search.failed_reward, cfg.search.max_failures)
    strategy = None

    def search(seed: int, budget: Budget) -> list[Trial]:
        nonlocal strategy
        if strategy is None or not strategy.can_reset:
            strategy = factory.make_strategy(replace(cfg, strategy=name, seed=seed), space)
        else:
            strategy.reset(seed)
        return Search(strategy, InlineExecutor(evaluator), budget, seed, failures).run().trials

    return search


def _worker(args: tuple[Config, BenchSettings, list[int]]):
    config, settings, seeds = args
    return run_seeds(config, settings, seeds)


# -- all seeds ------------------------------------------------------------------------------
def run_bench(config: Config, settings: BenchSettings) -> tuple[Result, dict[str, float]]:
    """Run the comparison; returns the results and each strategy's wall seconds (summed
    over the worker processes)."""
    seeds = list(range(settings.first_seed, settings.first_seed + settings.seeds))
    workers = min(settings.workers, len(seeds))
    if workers == 1:
        parts = [run_seeds(config, settings, seeds)]
        order = [seeds]
    else:
        order = [seeds[k::workers] for k in range(workers)]
        ctx = multiprocessing.get_context("spawn")  # a clean interpreter, whatever the caller
        with single_threaded_children(), ProcessPoolExecutor(workers, mp_context=ctx) as pool:
            parts = list(pool.map(_worker, [(config, settings, s) for s in order]))
    by_seed: dict[str, dict[int, dict[str, tuple[float, int]]]] = {}
    walls: dict[str, float] = {}
    for (found, wall), part_seeds in zip(parts, order):
        for name, per_seed in found.items():
            by_seed.setdefault(name, {}).update(zip(part_seeds, per_seed))
            walls[name] = walls.get(name, 0.0) + wall[name]
    return summarize(settings, {k: [v[s] for s in seeds] for k, v in by_seed.items()}), walls


@contextlib.contextmanager
def single_threaded_children():
    """One BLAS thread per worker process (set before they start; the user's setting wins):
    the controller's matrices are tiny, and threads of several processes would compete."""
    names = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
    added = [n for n in names if n not in os.environ]
    os.environ.update({n: "1" for n in added})
    try:
        yield
    finally:
        for n in added:
            os.environ.pop(n, None)


def summarize(settings: BenchSettings, per_seed: dict[str, list[dict]]) -> Result:
    """strategy -> label -> {mean, std, queries_mean, seeds} (std over seeds, ddof 0)."""
    results: Result = {}
    for name in settings.strategies:
        results[name] = {}
        for label in settings.labels:
            best = np.array([found[label][0] for found in per_seed[name]], float)
            used = np.array([found[label][1] for found in per_seed[name]], float)
            results[name][label] = {
                "mean": round(float(np.nanmean(best)), 4),
                "std": round(float(np.nanstd(best)), 4),
                "queries_mean": round(float(used.mean()), 2),
                "seeds": len(best),
            }
    return results


def format_table(results: Result, settings: BenchSettings) -> str:
    """A markdown table: mean ± std [mean look-ups] per strategy and budget, with the
    published figures beside them."""
    published = PUBLISHED.get(settings.dataset, {})
    labels = settings.labels
    head = ["strategy", *labels, f"published ({PUBLISHED_BUDGET})"]
    lines = [
        f"NAS-Bench-201 {settings.dataset}, {settings.seeds} seeds: best test accuracy (%) "
        "found, mean ± std [mean look-ups]",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|",
    ]
    for name in settings.strategies:
        cells = [
            f"{r['mean']:.2f} ± {r['std']:.2f} [{r['queries_mean']:.1f}]"
            for r in (results[name][label] for label in labels)
        ]
        pub = published.get(name)
        cells.append(f"{pub[0]:.2f} ± {pub[1]:.2f}" if pub else "n/a")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    optimum = load_table().optimum(settings.dataset)
    pub_opt = PUBLISHED_OPTIMUM.get(settings.dataset)
    lines.append(
        f"| optimum | {optimum:.2f} (table)"
        + " |" * (len(labels) - 1)
        + (f" | {pub_opt:.2f} |" if pub_opt else " | n/a |")
    )
    lines += [
        "",
        "Reward = 200-epoch TEST accuracy (the table has no full validation column); cost of a "
        "look-up = 12 x its per-epoch training time.",
        f"Published: {PUBLISHED_SOURCE}." if published else "Published figures: CIFAR-10 only.",
    ]
    return "\n".join(lines)
