"""Sub-commands of the ``rlnas`` CLI; each module exposes ``register(subparsers)``.

:func:`add_command` is how a module adds its sub-command: the command's function documents
what it does, and that docstring opens the sub-command's ``--help``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable


def add_command(
    subparsers,
    name: str,
    summary: str,
    run: Callable[[argparse.Namespace], int] | None = None,
    description: str | None = None,
) -> argparse.ArgumentParser:
    """Add sub-command ``name`` and return its parser. ``summary`` is its line in the parent's
    help; ``run`` (if given) is called with the parsed arguments, and its docstring, white
    space folded, opens the command's own help unless ``description`` is given."""
    text = description if description is not None else (run.__doc__ if run else None)
    parser = subparsers.add_parser(
        name, help=summary, description=" ".join(text.split()) if text else None
    )
    if run is not None:
        parser.set_defaults(func=run)
    return parser
