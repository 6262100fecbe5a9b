"""``rlnas.search(...)``, ``rlnas.final(...)``, ``rlnas.export(...)``: modules you can call.

The Python entry points (:mod:`rlnas.api`) share their names with the modules that do the
work (``rlnas.search.Search`` stays where it is), so each of those modules is made callable:
calling it calls the function of the same name in :mod:`rlnas.api`. The function is looked
up by name when called, because it loads Keras and MLflow and the modules must not.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any


class _CallableModule(types.ModuleType):
    """A module whose call is ``rlnas.api.<entry>``."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        api = importlib.import_module("rlnas.api")
        return getattr(api, self.__dict__["__rlnas_entry__"])(*args, **kwargs)


def callable_module(module: str, entry: str) -> None:
    """Make the module named ``module`` callable as :mod:`rlnas.api`'s ``entry``."""
    mod = sys.modules[module]
    mod.__dict__["__rlnas_entry__"] = entry
    mod.__class__ = _CallableModule
