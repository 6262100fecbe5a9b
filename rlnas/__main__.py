"""``python -m rlnas`` is the ``rlnas`` command."""

from rlnas.cli import run

run()
