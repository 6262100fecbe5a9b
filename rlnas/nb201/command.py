"""``rlnas bench nb201``: flags, the run, the printed table, results.json and MLflow.

    rlnas bench nb201 --dataset cifar10 --strategies reinforce,rea,random --seeds 300 \\
        --budget-seconds 12000 --queries 150,500 --out results.json

The controller and evolution settings come from a search config (default
``configs/nb201-cifar10.yaml``, the file a real ``nb201`` search uses); ``--set`` changes
them the way ``rlnas search --set`` does. The run is logged to MLflow as one parent run
(params, summary metrics, ``results.json``, ``table.md`` and ``config.yaml``), written by
:mod:`rlnas.tracking.bench_log`.

With ``--objectives accuracy,latency:pixel3`` it compares multi-objective searches instead
(reinforce, random and nsga by default): the hypervolume after each ``--queries`` budget
(:mod:`rlnas.nb201.mo_bench`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from rlnas.commands import add_command
from rlnas.config import Config, TrackingConfig, dump_yaml, load_config, to_dict
from rlnas.errors import ConfigError, require, require_one_of
from rlnas.nb201.bench import BenchSettings, format_table, run_bench
from rlnas.nb201.evaluator import PROTOCOL_NOTE
from rlnas.nb201.mo_bench import MO_STRATEGIES, format_mo_table, run_mo_bench
from rlnas.tracking import connect, flatten, normalize_uri
from rlnas.tracking.bench_log import log_bench_run

DEFAULT_CONFIG = "configs/nb201-cifar10.yaml"
MO_CONFIG = "configs/nb201-pixel3.yaml"
"""The default config of ``--objectives`` (its objectives are replaced by the flag's)."""


def register_nb201(sub) -> None:
    p = add_command(
        sub,
        "nb201",
        "REINFORCE, regularized evolution and random search on NAS-Bench-201",
        run_nb201,
    )
    p.add_argument("--dataset", help="cifar10, cifar100 or imagenet16_120 (default: the config's)")
    p.add_argument(
        "--strategies",
        help="comma-separated (default: reinforce,rea,random; with --objectives "
        "reinforce,random,nsga)",
    )
    p.add_argument(
        "--objectives",
        metavar="LIST",
        help="compare multi-objective searches, e.g. accuracy,latency:pixel3 (search."
        "objectives; the budgets are --queries, --budget-seconds is not used)",
    )
    p.add_argument("--seeds", type=int, default=300, help="searches per strategy")
    p.add_argument(
        "--budget-seconds",
        default="12000",
        help="comma-separated budgets in simulated training seconds ('' for none)",
    )
    p.add_argument(
        "--queries", default="150,500", help="comma-separated budgets in look-ups ('' for none)"
    )
    p.add_argument("--out", metavar="PATH", help="write results.json here")
    p.add_argument(
        "--config",
        "-c",
        metavar="FILE",
        help=f"search config with the controller settings (default: {DEFAULT_CONFIG}; with "
        f"--objectives {MO_CONFIG})",
    )
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value"
    )
    p.add_argument("--workers", type=int, default=2, help="processes to split the seeds over")
    p.add_argument("--first-seed", type=int, default=0, help="seed of the first search")
    p.add_argument("--tracking-uri", help="MLflow store (default: the config's, else runs/)")
    p.add_argument("--experiment", default="rlnas-bench", help="MLflow experiment")
    p.add_argument("--no-track", action="store_true", help="do not log to MLflow")


def _numbers(flag: str, text: str, kind: type) -> tuple:
    try:
        values = tuple(kind(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ConfigError(
            f"{flag}: expected {kind.__name__}s separated by commas, got {text!r}."
        ) from None
    return values


def _config_path(path: str | None, default: str = DEFAULT_CONFIG) -> Path:
    if path is not None:
        return Path(path)
    for base in (Path.cwd(), Path(__file__).resolve().parents[2]):
        if (base / default).is_file():
            return base / default
    raise ConfigError(
        f"--config: {default} is neither in the current folder nor in the rlnas "
        "checkout; pass --config FILE (a search config with space: nb201)."
    )


def run_nb201(args: argparse.Namespace) -> int:
    """Run each strategy over many seeds on the NAS-Bench-201 table and print the mean ± std
    of the best test accuracy found within each budget, next to the published figures. The
    reward is the 200-epoch TEST accuracy (the table has no full validation column)."""
    if args.objectives:
        return run_multi_objective(args, _config_path(args.config, MO_CONFIG))
    config_path = _config_path(args.config)
    args.strategies = args.strategies or "reinforce,rea,random"
    cfg = load_config(config_path, args.set)
    if cfg.space != "nb201" or cfg.task.name != "nb201":
        raise ConfigError(
            f"--config: {str(config_path)!r} must search space nb201 on task nb201, "
            f"got space {cfg.space!r} and task {cfg.task.name!r}."
        )
    settings = BenchSettings(
        dataset=args.dataset or cfg.task.dataset,
        strategies=tuple(s.strip() for s in args.strategies.split(",") if s.strip()),
        seeds=args.seeds,
        budget_seconds=_numbers("--budget-seconds", args.budget_seconds, float),
        queries=_numbers("--queries", args.queries, int),
        workers=args.workers,
        first_seed=args.first_seed,
    )
    out = Path(args.out) if args.out else None
    if out is not None and not out.parent.is_dir():
        raise ConfigError(f"--out: folder {str(out.parent)!r} does not exist.")
    uri = None
    if not args.no_track:  # check the store before the work, not after
        uri = normalize_uri(
            args.tracking_uri or TrackingConfig(uri=cfg.tracking.uri).resolved_uri()
        )
        connect(uri)

    print(PROTOCOL_NOTE, file=sys.stderr)
    print(
        f"rlnas bench nb201: {', '.join(settings.strategies)} x {settings.seeds} seeds, "
        f"budgets {', '.join(settings.labels)}, {settings.workers} worker(s), "
        f"config {config_path}",
        file=sys.stderr,
    )
    start = time.perf_counter()
    results, walls = run_bench(cfg, settings)
    wall = time.perf_counter() - start
    table = format_table(results, settings)
    _print_results(table, wall, walls, results, out)
    if uri is not None:
        run_id = log_bench(uri, args.experiment, cfg, settings, results, table, walls, wall)
        print(f"MLflow run {run_id} in {uri} (experiment {args.experiment!r})")
    return 0


def log_bench(uri, experiment, cfg, settings, results, table, walls, wall) -> str:
    """Log the whole benchmark as ONE MLflow run (never one run per look-up)."""
    params = {
        "bench.dataset": settings.dataset,
        "bench.strategies": ",".join(settings.strategies),
        "bench.seeds": str(settings.seeds),
        "bench.first_seed": str(settings.first_seed),
        "bench.budgets": ",".join(settings.labels),
        "bench.workers": str(settings.workers),
        "bench.reward": "200-epoch test accuracy (no full validation column)",
    }
    sections = {k: v for k, v in to_dict(cfg).items() if k in ("controller", "evolution", "search")}
    params.update(flatten(sections))
    metrics = {"bench/wall_seconds": wall}
    metrics.update({f"{k}/process_seconds": v for k, v in walls.items()})
    for name, per_label in results.items():
        for label, r in per_label.items():
            for key in ("mean", "std", "queries_mean"):
                metrics[f"{name}/{label}/{key}"] = float(r[key])
    return log_bench_run(
        uri,
        experiment,
        run_name=f"bench-nb201-{settings.dataset}",
        tags={"rlnas.kind": "bench", "rlnas.benchmark": "nb201", "rlnas.dataset": settings.dataset},
        params=params,
        metrics=metrics,
        dicts={"results.json": results},
        texts={"table.md": table + "\n", "config.yaml": dump_yaml(cfg)},
    )


def run_multi_objective(args: argparse.Namespace, config_path: Path) -> int:
    """``--objectives``: hypervolume per look-up budget, one row per strategy."""
    specs = [s.strip() for s in args.objectives.split(",") if s.strip()]
    objectives = "[" + ", ".join(f"'{s}'" for s in specs) + "]"
    overrides = [*args.set, f"search.objectives={objectives}"]
    if args.dataset:
        overrides.append(f"task.dataset={args.dataset}")
    cfg = load_config(config_path, overrides)
    if cfg.space != "nb201" or cfg.task.name != "nb201":
        raise ConfigError(f"--config: {str(config_path)!r} must search space nb201 on task nb201.")
    strategies = [s.strip() for s in (args.strategies or "reinforce,random,nsga").split(",")]
    for name in strategies:
        require_one_of("--strategies", name, MO_STRATEGIES)
    budgets = _numbers("--queries", args.queries, int)
    require(bool(budgets) and min(budgets) >= 1, "--queries", args.queries, "integers >= 1")
    require(args.seeds >= 1, "--seeds", args.seeds, "an integer >= 1")
    require(args.workers >= 1, "--workers", args.workers, "an integer >= 1")
    out = Path(args.out) if args.out else None
    if out is not None and not out.parent.is_dir():
        raise ConfigError(f"--out: folder {str(out.parent)!r} does not exist.")
    uri = None
    if not args.no_track:
        uri = normalize_uri(
            args.tracking_uri or TrackingConfig(uri=cfg.tracking.uri).resolved_uri()
        )
        connect(uri)
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    print(
        f"rlnas bench nb201 --objectives {','.join(specs)}: {', '.join(strategies)} x "
        f"{args.seeds} seeds, budgets {budgets} look-ups, {args.workers} worker(s)",
        file=sys.stderr,
    )
    start = time.perf_counter()
    results, walls, problem = run_mo_bench(cfg, strategies, budgets, seeds, args.workers)
    wall = time.perf_counter() - start
    table = format_mo_table(results, problem, budgets, args.seeds)
    _print_results(table, wall, walls, results, out)
    if uri is not None:
        _log_mo(uri, args, cfg, specs, strategies, (budgets, problem, results, table, wall))
    return 0


def _print_results(
    table: str, wall: float, walls: dict[str, float], results: object, out: Path | None
) -> None:
    """The comparison on stdout (and as JSON in ``out``, when given)."""
    print(table)
    print(
        f"wall {wall:.1f} s; per strategy (process seconds): "
        + ", ".join(f"{k} {v:.1f} s" for k, v in walls.items())
    )
    if out is not None:
        out.write_text(json.dumps(results, indent=2) + "\n")
        print(f"results written to {out}")


def _log_mo(
    uri: str,
    args: argparse.Namespace,
    cfg: Config,
    specs: list[str],
    strategies: list[str],
    measured: tuple,
) -> None:
    """The multi-objective comparison as one MLflow run (params, metrics, the table)."""
    budgets, problem, results, table, wall = measured
    params = {
        "bench.objectives": ",".join(specs),
        "bench.reference_point": ",".join(f"{v:.6g}" for v in problem.reference),
        "bench.strategies": ",".join(strategies),
        "bench.seeds": str(args.seeds),
        "bench.budgets": ",".join(f"{b}q" for b in budgets),
    }
    metrics = {"bench/wall_seconds": wall}
    for name, per in results.items():
        for label, r in per.items():
            metrics[f"{name}/{label}/hypervolume_mean"] = r["mean"]
            metrics[f"{name}/{label}/hypervolume_std"] = r["std"]
    run_id = log_bench_run(
        uri,
        args.experiment,
        run_name="bench-nb201-multi-objective",
        tags={"rlnas.kind": "bench", "rlnas.benchmark": "nb201-multi-objective"},
        params=params,
        metrics=metrics,
        dicts={"results.json": results},
        texts={"table.md": table + "\n", "config.yaml": dump_yaml(cfg)},
    )
    print(f"MLflow run {run_id} in {uri} (experiment {args.experiment!r})")
