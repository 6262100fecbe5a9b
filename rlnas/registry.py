"""Spaces and strategies by name: the built-ins, or the user's own by import path.

A config names a built-in (``space: layers``, ``strategy: rea``), an import path
``package.module:attribute`` (``space: my_models:build``, ``strategy: my_pkg.search:Greedy``)
or a Python file and an attribute (``space: /home/me/search.py:build``)::

    space = make_space(cfg, spec)        # a built-in, or UserSpace(build) for an import path
    strategy = make_strategy(cfg, space)

An import path resolves as Python imports it, with the current folder on ``sys.path`` (so a
``my_models.py`` beside the config is found, also by ``rlnas search`` run as a console
script); worker processes inherit that ``sys.path``. A Python file named by path travels
with the search as its text (:func:`file_sources`), so that a worker on another machine (a
Ray cluster) runs the code the search started with, even where the file does not exist; a
module that the file imports from beside it must be importable there too (a package, or
an import path, which Ray ships). :func:`provide` registers an object
under a path in this process only (what :func:`rlnas.search` does with a function that
cannot be imported by its name, a lambda or a closure, say).
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rlnas.errors import FieldError

if TYPE_CHECKING:
    from rlnas.config import Config
    from rlnas.space import Space
    from rlnas.strategies.base import Strategy
    from rlnas.tasks import TaskSpec

_PROVIDED: dict[str, Any] = {}

_SOURCES: dict[str, bytes] = {}
"""The code of each Python file loaded by path in this process (by the path as written),
the driver's as read, a worker's as shipped to it (:func:`ship`)."""


def _layers(cfg: Config, spec: TaskSpec) -> Space:
    from rlnas.spaces.layers import LayersSpace

    return LayersSpace(cfg.layers, spec)


def _nasnet(cfg: Config, spec: TaskSpec) -> Space:
    from rlnas.spaces.nasnet import NasnetSpace

    return NasnetSpace(cfg.nasnet, spec)


def _reinforce(cfg: Config, space: Space) -> Strategy:
    from rlnas.strategies.reinforce import ReinforceController

    return ReinforceController(space, cfg.controller, seed=cfg.seed, unique=cfg.search.unique)


def _random(cfg: Config, space: Space) -> Strategy:
    from rlnas.strategies.random_search import RandomSearch

    return RandomSearch(space, seed=cfg.seed, unique=cfg.search.unique)


def _rea(cfg: Config, space: Space) -> Strategy:
    from rlnas.strategies.evolution import RegularizedEvolution

    return RegularizedEvolution(space, cfg.evolution, seed=cfg.seed, unique=cfg.search.unique)


def _nsga(cfg: Config, space: Space) -> Strategy:
    from rlnas.strategies.evolution import EvolutionConfig
    from rlnas.strategies.nsga import NsgaEvolution

    evolution = None if cfg.evolution == EvolutionConfig() else cfg.evolution  # nsga's own
    return NsgaEvolution(
        space, cfg.search.parsed_objectives, evolution, seed=cfg.seed, unique=cfg.search.unique
    )


SPACES: dict[str, Callable[[Config, TaskSpec], Space]] = {"layers": _layers, "nasnet": _nasnet}
"""Built-in Keras spaces by name (``nb201`` is a table's space: see :mod:`rlnas.factory`)."""
STRATEGIES: dict[str, Callable[[Config, Space], Strategy]] = {
    "reinforce": _reinforce,
    "random": _random,
    "rea": _rea,
    "nsga": _nsga,
}


def provide(path: str, obj: Any) -> None:
    """Make ``obj`` what ``path`` resolves to in this process."""
    _PROVIDED[path] = obj


def path_of(obj: Any) -> str:
    """The import path ``module:qualname`` that names ``obj``."""
    return f"{obj.__module__}:{obj.__qualname__}"


def resolve(path: str, field: str) -> Any:
    """The object that ``path`` (``package.module:attribute``) names, else one FieldError."""
    if path in _PROVIDED:
        return _PROVIDED[path]
    module_name, _, attr = path.rpartition(":")
    here = os.getcwd()
    if here not in sys.path and "" not in sys.path:
        sys.path.insert(0, here)  # the user's modules beside the config
    try:
        obj: Any = (
            _load_file(module_name)
            if module_name.endswith(".py")
            else importlib.import_module(module_name)
        )
    except (ImportError, OSError) as exc:
        raise FieldError(
            field, path, f"an importable module ({type(exc).__name__}: {exc})"
        ) from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise FieldError(field, path, f"a name that module {module_name!r} defines")
        obj = getattr(obj, part)
    return obj


def _load_file(file: str) -> Any:
    """The module of a Python file, loaded once per process (as ``rlnas_file_<digest>``; its
    ``if __name__ == "__main__":`` block does not run). A script's own functions are named
    this way by :func:`rlnas.search`, so that ``rlnas final`` and worker processes find
    them. The code is the text shipped with the search (:func:`ship`) where there is one,
    else the file's."""
    import hashlib
    import importlib.machinery
    import types

    where = os.path.abspath(file)
    name = "rlnas_file_" + hashlib.sha256(where.encode()).hexdigest()[:12]
    if name in sys.modules:
        return sys.modules[name]
    code = _SOURCES.get(file)
    if code is None:
        if not os.path.isfile(where):
            raise ImportError(f"no file {where!r}")
        with open(where, "rb") as f:
            code = f.read()
    module = types.ModuleType(name)
    module.__file__ = where
    module.__spec__ = importlib.machinery.ModuleSpec(name, None, origin=where)
    sys.modules[name] = module
    try:
        exec(compile(code, where, "exec"), module.__dict__)
    except BaseException:
        del sys.modules[name]
        raise
    _SOURCES[file] = code
    return module


def file_sources(cfg: Config) -> dict[str, bytes]:
    """The code of the Python files that ``cfg`` names by path (space, strategy, training
    loop), as this process loaded it: what a worker elsewhere runs in their place."""
    out = {}
    for field, path in (
        ("space", cfg.space),
        ("strategy", cfg.strategy),
        ("child.train", cfg.child.train),
    ):
        file = (path or "").rpartition(":")[0]
        if file.endswith(".py") and path not in _PROVIDED:
            resolve(path, field)  # loads it, if it is not yet
            out[file] = _SOURCES[file]
    return out


def ship(sources: dict[str, bytes]) -> None:
    """In a worker: run ``sources`` (from :func:`file_sources`) for those files, not what
    this machine has (or lacks) under their paths."""
    _SOURCES.update(sources)


def make_space(cfg: Config, spec: TaskSpec) -> Space:
    """The space that ``cfg.space`` names, for inputs ``spec``."""
    if cfg.space in SPACES:
        return SPACES[cfg.space](cfg, spec)
    from rlnas.spaces.user import UserSpace

    build = resolve(cfg.space, "space")
    if _is_space_class(type(build)):  # a Space object given to rlnas.search
        return build
    if isinstance(build, type) and _is_space_class(build):
        return build(spec) if _takes_argument(build) else build()
    if not callable(build):
        raise FieldError("space", cfg.space, "a callable build(d, spec) -> keras.Model")
    space = UserSpace(build, spec, name=cfg.space)
    space.check()
    return space


def make_strategy(cfg: Config, space: Space) -> Strategy:
    """The strategy that ``cfg.strategy`` names, seeded with ``cfg.seed``."""
    if cfg.strategy in STRATEGIES:
        return STRATEGIES[cfg.strategy](cfg, space)
    return strategy_class(cfg)(space, seed=cfg.seed, unique=cfg.search.unique)


def strategy_class(cfg: Config) -> type:
    """The user's Strategy subclass that ``cfg.strategy`` names (checked)."""
    from rlnas.strategies.base import Strategy

    cls = resolve(cfg.strategy, "strategy")
    if not (isinstance(cls, type) and issubclass(cls, Strategy)):
        raise FieldError("strategy", cfg.strategy, "a subclass of rlnas.strategies.base.Strategy")
    return cls


def importable(cfg: Config) -> tuple[Any, ...]:
    """The user's objects that ``cfg`` names and that another process imports by their
    name (module-level objects of a module other than ``__main__``)."""
    out = []
    for path in (cfg.space, cfg.strategy, cfg.child.train):
        if path is None or path in SPACES or path in STRATEGIES or ":" not in path:
            continue
        obj = resolve(path, "space")
        module = getattr(obj, "__module__", None)
        name = getattr(obj, "__qualname__", "")
        if module and module != "__main__" and "<" not in name and path == f"{module}:{name}":
            out.append(obj)
    return tuple(out)


def check_paths(cfg: Config) -> None:
    """Resolve the strategy's and the training loop's import paths (before any data)."""
    if cfg.strategy not in STRATEGIES:
        strategy_class(cfg)
    if cfg.child.train is not None and not callable(resolve(cfg.child.train, "child.train")):
        raise FieldError("child.train", cfg.child.train, "a callable train(model, data, d)")


def _is_space_class(obj: type) -> bool:
    from rlnas.space import Space

    return issubclass(obj, Space)


def _takes_argument(cls: type) -> bool:
    import inspect

    try:
        return len(inspect.signature(cls).parameters) >= 1
    except (TypeError, ValueError):
        return False
