"""``rlnas search``: run a search from a YAML config, tracked in MLflow.

Everything that can be checked is checked before the MLflow parent run exists: the config
(strictly), the Ray cluster and the tracking store (reachable), the data and the space, the
saved controller to start from and the ``--save-controller`` name. Bad input therefore leaves
nothing behind that looks like a run.

The search's state is saved beside the tracking store after every child
(:mod:`rlnas.checkpoint`); ``--resume RUN_ID`` (or ``rlnas resume``) continues a search that
was stopped or killed, with the config saved with it: ``--config`` and ``--resume`` exclude
each other. Ctrl-C (or SIGTERM) stops cleanly, exit status 130. The work is
shared with ``rlnas resume`` in :mod:`rlnas.commands.session`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rlnas.commands import add_command, resume, session
from rlnas.commands.session import Prepared, add_run_options, execute, prepare
from rlnas.config import load_config
from rlnas.errors import ConfigError

__all__ = ["Prepared", "add_run_options", "execute", "prepare", "register", "run"]


def register(subparsers) -> None:
    p = add_command(subparsers, "search", "run a search from a YAML config", run)
    start = p.add_mutually_exclusive_group(required=True)
    start.add_argument("--config", "-c", metavar="FILE", help="YAML config file of a new search")
    start.add_argument(
        "--resume",
        metavar="RUN_ID",
        help="continue the stopped or killed search of this MLflow run instead, with the "
        "config saved with it (as `rlnas resume RUN_ID`; its store: --set tracking.uri=URI, "
        "else $MLFLOW_TRACKING_URI, else runs/mlflow.db)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set child.epochs=2 (repeatable); with --resume "
        "only executor.*, search.children, search.wall_seconds, search.budget_seconds and "
        "tracking.uri",
    )
    add_run_options(p)


def run(args: argparse.Namespace) -> int:
    """Run an architecture search described by a YAML config; every child is logged to
    MLflow under the search's parent run."""
    if args.summary and Path(args.summary).is_dir():
        raise ConfigError(f"--summary: {args.summary!r} is a folder; expected a file path.")
    if args.resume:  # the parser allows --config or --resume, never both
        return resume.resume(args.resume, args)
    cfg = load_config(args.config, args.set)
    p = session.prepare(cfg, save_controller=args.save_controller, progress=not args.no_progress)
    return session.execute(p, cfg, args)
