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
from rlnas import quiet
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


class HelpFormatter(argparse.HelpFormatter):
    """Help that states each option's default, where it has one worth stating (not None,
    False or an empty list) and its text does not already say it."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (
            "default" in text.lower()
            or default is None
            or default is False
            or default == []
            or default is argparse.SUPPRESS
            or not action.option_strings
        ):
            return action.help
        return f"{text} (default: %(default)s)"


class Parser(argparse.ArgumentParser):
    """An argument parser whose help shows defaults; its sub-command parsers are too."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
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


def quiet_frameworks(verbose: int) -> None:
    """Keep TensorFlow's start-up chatter (oneDNN, CUDA and CPU-feature notices) off the
    console, unless the user asks for log messages (``--verbose``) or chose a TensorFlow
    log level of their own. Works only before TensorFlow is imported."""
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    # MLflow 3 draws a progress bar on stderr for every artifact download (a config read back)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    if verbose or "TF_CPP_MIN_LOG_LEVEL" in os.environ:
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"  # errors surface as Python exceptions
    os.environ[quiet.ASKED] = "1"  # worker processes may call quiet.quiet_if_asked()
    quiet.quiet_tensorflow_import()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)  # parsing imports no framework
    quiet_frameworks(args.verbose)
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
