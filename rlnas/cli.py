"""The ``rlnas`` command line: one sub-command per module, errors as one line.

The parser is built from :data:`COMMANDS`, modules that each expose ``register(subparsers)``
(adding a sub-parser whose ``func`` is ``run(args) -> int``). Command modules are light to
import: TensorFlow and MLflow load only when a command runs.

Every :class:`~rlnas.errors.RlnasError` becomes one line on stderr and exit status 2;
Ctrl-C exits 130; a traceback means a bug in rlnas.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
from collections.abc import Sequence

import rlnas
from rlnas.errors import RlnasError

COMMANDS: tuple[str, ...] = (
    "rlnas.commands.search",
    "rlnas.commands.resume",
    "rlnas.commands.ui",
    "rlnas.bench",
    "rlnas.commands.final",
    "rlnas.commands.export",
    "rlnas.commands.controllers",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rlnas",
        description="Reinforcement-learning neural architecture search for Keras, "
        "tracked in MLflow.",
    )
    parser.add_argument("--version", action="version", version=f"rlnas {rlnas.__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more log messages (-vv: debug)"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(name).register(subparsers)
    return parser


def one_line(exc: BaseException) -> str:
    """An error message on one line (messages never need more)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    # quiet the frameworks' start-up chatter before they are imported (users may override)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    args = build_parser().parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="rlnas: %(levelname)s: %(message)s")
    if args.verbose:
        logging.getLogger("rlnas").setLevel(level)
    try:
        return int(args.func(args) or 0)
    except RlnasError as exc:
        print(f"rlnas: error: {one_line(exc)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("rlnas: interrupted", file=sys.stderr)
        return 130


def run() -> None:
    """The ``rlnas`` program: :func:`main`, then exit with its status. Once the status is
    decided, Ctrl-C is ignored: what remains is the interpreter's teardown (about a second
    with TensorFlow loaded), where Python's own handler is gone and a Ctrl-C would kill the
    process by signal instead of letting it report the status of work already done."""
    code = main()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.exit(code)


if __name__ == "__main__":
    run()
