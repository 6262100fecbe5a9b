"""Sub-commands of the ``rlnas`` CLI; each module exposes ``register(subparsers)``."""
