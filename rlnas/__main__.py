"""``python -m rlnas`` is the ``rlnas`` command."""

import sys

from rlnas.cli import main

sys.exit(main())
