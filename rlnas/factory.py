"""Assemble the parts of a search from a :class:`~rlnas.config.Config`.

Each function builds one part and checks what it can before any work starts, so that a bad
config or bad data stops the command with one line. ``make_evaluator`` is also what worker
processes call (through ``functools.partial``) to build their own evaluator.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from rlnas.config import Config
from rlnas.errors import FieldError
from rlnas.executors import Evaluator, Executor, InlineExecutor
from rlnas.executors.process import ProcessExecutor
from rlnas.executors.ray_executor import RayExecutor
from rlnas.nb201.evaluator import Nb201Evaluator
from rlnas.nb201.space import Nb201Space
from rlnas.space import Space
from rlnas.spaces.layers import LayersSpace
from rlnas.spaces.nasnet import NasnetSpace
from rlnas.strategies.base import Strategy
from rlnas.strategies.evolution import EvolutionConfig, RegularizedEvolution
from rlnas.strategies.nsga import NsgaEvolution
from rlnas.strategies.random_search import RandomSearch
from rlnas.strategies.reinforce import ReinforceController
from rlnas.tasks import TaskSpec, load_task


@functools.lru_cache(maxsize=4)
def load_task_data(cfg: Config):
    """The task's data (loaded and checked once per process and config)."""
    return load_task(cfg.task, seed=cfg.seed)


def make_space(cfg: Config, spec: TaskSpec | None = None) -> Space:
    """The search space of ``cfg`` (data-dependent masks need the task's input shape):
    for inputs ``spec`` if given (``rlnas final``), else for the task's data, loaded."""
    if cfg.space == "nb201":
        return Nb201Space()
    if cfg.task.name == "nb201":
        raise FieldError("space", cfg.space, "nb201 for task nb201 (a table of nb201 cells)")
    if spec is None:
        spec = load_task_data(cfg).spec  # type: ignore[attr-defined]
    if cfg.space == "nasnet":
        return NasnetSpace(cfg.nasnet, spec)
    return LayersSpace(cfg.layers, spec)


def make_evaluator(cfg: Config) -> Evaluator:
    """The evaluator of ``cfg``: a table look-up for nb201, else Keras child training."""
    if cfg.task.name == "nb201":
        hw = [(o.device, o.name.partition(":")[0]) for o in cfg.search.parsed_objectives]
        return Nb201Evaluator(cfg.task.dataset, hw=[(d, m) for d, m in hw if d])
    # Keras (and TensorFlow) load only when a child is trained: the table mode never does
    from rlnas.evaluators.keras_child import KerasEvaluator

    measure = [o.metric for o in cfg.search.parsed_objectives]  # latency_ms, tflite_bytes
    return KerasEvaluator(make_space(cfg), load_task_data(cfg), cfg.child, measure)


def evaluator_factory(cfg: Config) -> Callable[[], Evaluator]:
    """A picklable function that builds the evaluator (in a worker process, say)."""
    return functools.partial(make_evaluator, cfg)


def make_strategy(cfg: Config, space: Space) -> Strategy:
    """The strategy of ``cfg``, seeded with ``cfg.seed``."""
    unique = cfg.search.unique
    if cfg.strategy == "random":
        return RandomSearch(space, seed=cfg.seed, unique=unique)
    if cfg.strategy == "rea":
        return RegularizedEvolution(space, cfg.evolution, seed=cfg.seed, unique=unique)
    if cfg.strategy == "nsga":
        objectives = cfg.search.parsed_objectives
        evolution = None if cfg.evolution == EvolutionConfig() else cfg.evolution  # nsga's own
        return NsgaEvolution(space, objectives, evolution, seed=cfg.seed, unique=unique)
    return ReinforceController(space, cfg.controller, seed=cfg.seed, unique=unique)


def make_executor(cfg: Config) -> Executor:
    """The executor of ``cfg`` (inline in the main process by default)."""
    kind = cfg.executor.kind
    if kind == "process":
        return ProcessExecutor(evaluator_factory(cfg), cfg.executor)
    if kind == "ray":
        return RayExecutor(evaluator_factory(cfg), cfg.executor)
    return InlineExecutor(make_evaluator(cfg))
