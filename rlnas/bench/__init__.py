"""The ``rlnas bench`` command: search strategies compared on tabular benchmarks.

``register`` adds ``bench`` to the CLI; each benchmark registers its own sub-command from
the package that owns it (``rlnas bench nb201``: :mod:`rlnas.nb201.command`). Importing this
package loads neither TensorFlow nor MLflow.
"""

from __future__ import annotations

from rlnas.commands import add_command
from rlnas.nb201 import command as nb201_command


def register(subparsers) -> None:
    """Add ``bench`` (with its sub-commands) to the ``rlnas`` parser."""
    parser = add_command(
        subparsers,
        "bench",
        "compare search strategies on a tabular benchmark",
        description="Compare search strategies over many seeds on a tabular benchmark "
        "(table look-ups instead of training).",
    )
    sub = parser.add_subparsers(dest="bench", metavar="BENCHMARK", required=True)
    nb201_command.register_nb201(sub)
