"""Benchmarks of search strategies on tabular benchmarks (``rlnas bench ...``).

``register`` adds the ``bench`` command to the CLI; its sub-commands live in
:mod:`rlnas.bench.command` (today ``nb201``, :mod:`rlnas.bench.nb201`). Importing this
package loads neither TensorFlow nor MLflow.
"""

from __future__ import annotations


def register(subparsers) -> None:
    """Add ``bench`` (with its sub-commands) to the ``rlnas`` parser."""
    from rlnas.bench import command

    parser = subparsers.add_parser(
        "bench",
        help="compare search strategies on a tabular benchmark",
        description="Compare search strategies over many seeds on a tabular benchmark "
        "(table look-ups instead of training).",
    )
    sub = parser.add_subparsers(dest="bench", metavar="BENCHMARK", required=True)
    command.register_nb201(sub)
