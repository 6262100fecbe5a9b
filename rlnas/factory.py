"""Assemble the parts of a search from a :class:`~rlnas.config.Config`.

Each function builds one part and checks what it can before any work starts, so that a bad
config or bad data stops the command with one line. ``make_evaluator`` is also what worker
processes call (through ``functools.partial``) to build their own evaluator.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING

from rlnas.config import Config
from rlnas.executors import Evaluator, Executor, InlineExecutor
from rlnas.space import Space
from rlnas.strategies.base import Strategy

if TYPE_CHECKING:
    from rlnas.tasks import TaskSpec


@functools.lru_cache(maxsize=4)
def load_task_data(cfg: Config):
    """The task's data (loaded and checked once per process and config)."""
    from rlnas.tasks import load_task

    return load_task(cfg.task, seed=cfg.seed)


def make_space(cfg: Config, spec: TaskSpec | None = None) -> Space:
    """The search space of ``cfg`` (data-dependent masks need the task's input shape):
    for inputs ``spec`` if given (``rlnas final``), else for the task's data, loaded."""
    if cfg.space == "nb201":
        from rlnas.spaces.nb201 import Nb201Space

        return Nb201Space()
    if cfg.task.name == "nb201":
        from rlnas.errors import FieldError

        raise FieldError("space", cfg.space, "nb201 for task nb201 (a table of nb201 cells)")
    if spec is None:
        spec = load_task_data(cfg).spec  # type: ignore[attr-defined]
    if cfg.space == "nasnet":
        from rlnas.spaces.nasnet import NasnetSpace

        return NasnetSpace(cfg.nasnet, spec)
    from rlnas.spaces.layers import LayersSpace

    return LayersSpace(cfg.layers, spec)


def make_evaluator(cfg: Config) -> Evaluator:
    """The evaluator of ``cfg``: a table look-up for nb201, else Keras child training."""
    if cfg.task.name == "nb201":
        from rlnas.evaluators.table import Nb201Evaluator

        return Nb201Evaluator(cfg.task.dataset)
    from rlnas.evaluators.keras_child import KerasEvaluator

    return KerasEvaluator(make_space(cfg), load_task_data(cfg), cfg.child)


def evaluator_factory(cfg: Config) -> Callable[[], Evaluator]:
    """A picklable function that builds the evaluator (in a worker process, say)."""
    return functools.partial(make_evaluator, cfg)


def make_strategy(cfg: Config, space: Space) -> Strategy:
    """The strategy of ``cfg``, seeded with ``cfg.seed``."""
    unique = cfg.search.unique
    if cfg.strategy == "random":
        from rlnas.strategies.random_search import RandomSearch

        return RandomSearch(space, seed=cfg.seed, unique=unique)
    if cfg.strategy == "rea":
        from rlnas.strategies.evolution import RegularizedEvolution

        return RegularizedEvolution(space, cfg.evolution, seed=cfg.seed, unique=unique)
    from rlnas.strategies.reinforce import ReinforceController

    return ReinforceController(space, cfg.controller, seed=cfg.seed, unique=unique)


def make_executor(cfg: Config) -> Executor:
    """The executor of ``cfg`` (inline in the main process by default)."""
    kind = cfg.executor.kind
    if kind == "process":
        from rlnas.executors.process import ProcessExecutor

        return ProcessExecutor(evaluator_factory(cfg), cfg.executor)
    if kind == "ray":
        from rlnas.executors.ray_executor import RayExecutor

        return RayExecutor(evaluator_factory(cfg), cfg.executor)
    return InlineExecutor(make_evaluator(cfg))
