"""Assemble the parts of a search from a :class:`~rlnas.config.Config`.

Each function builds one part and checks what it can before any work starts, so that a bad
config or bad data stops the command with one line. ``make_evaluator`` is also what worker
processes call (through ``functools.partial``) to build their own evaluator.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from rlnas import registry
from rlnas.config import Config
from rlnas.errors import FieldError
from rlnas.evaluators.config import check_metric
from rlnas.evaluators.shared_config import shared_phase
from rlnas.executors import Evaluator, Executor, InlineExecutor
from rlnas.executors.process import ProcessExecutor
from rlnas.executors.ray_executor import RayExecutor
from rlnas.nb201.evaluator import Nb201Evaluator
from rlnas.nb201.space import Nb201Space
from rlnas.space import Space
from rlnas.strategies.base import Strategy
from rlnas.tasks import TaskSpec, load_splits


@functools.lru_cache(maxsize=4)
def load_task_data(cfg: Config):
    """The task's data (loaded and checked once per process and config)."""
    return load_splits(cfg.task)  # an npz may bring its own validation split


def make_space(cfg: Config, spec: TaskSpec | None = None) -> Space:
    """The search space of ``cfg`` (data-dependent masks need the task's input shape):
    for inputs ``spec`` if given (``rlnas final``), else for the task's data, loaded. In
    shared mode too the whole space, which the retraining and ``rlnas final`` replay into
    (the shared phase samples :func:`make_search_space`)."""
    if cfg.space == "nb201":
        return Nb201Space()
    if cfg.task.name == "nb201":
        raise FieldError("space", cfg.space, "nb201 for task nb201 (a table of nb201 cells)")
    if spec is None:
        spec = load_task_data(cfg).spec  # type: ignore[attr-defined]
    check_metric(cfg.child, spec.task)  # before any child trains, in any executor
    return registry.make_space(cfg, spec)


def make_search_space(cfg: Config) -> Space:
    """The space the strategy samples and the evaluator rewards: :func:`make_space`, but in
    shared mode the shared phase's, each ``train/*`` list cut to its first value (the
    decisions that cannot share weights: :func:`~rlnas.evaluators.shared_config.shared_phase`)."""
    if not cfg.shared.enabled:
        return make_space(cfg)
    spec = load_task_data(cfg).spec  # type: ignore[attr-defined]  # cached for cfg
    return make_space(shared_phase(cfg), spec)


def make_evaluator(
    cfg: Config, shipped: tuple = (), sources: dict[str, bytes] | None = None
) -> Evaluator:
    """The evaluator of ``cfg``: a table look-up for nb201, else Keras child training.
    ``shipped``: the user's functions that ``cfg`` names, unused here; ``sources``: the code
    of the files that ``cfg`` names by path (see :func:`evaluator_factory`)."""
    if sources:
        registry.ship(sources)
    if cfg.task.name == "nb201":
        hw = [(o.device, o.name.partition(":")[0]) for o in cfg.search.parsed_objectives]
        return Nb201Evaluator(cfg.task.dataset, hw=[(d, m) for d, m in hw if d])
    if cfg.shared.enabled:  # weight sharing: one super-network rewards every child
        from rlnas.evaluators.shared import SharedEvaluator

        space = make_search_space(cfg)
        return SharedEvaluator(space, load_task_data(cfg), cfg.shared, seed=cfg.seed)
    # Keras (and TensorFlow) load only when a child is trained: the table mode never does
    if cfg.child.train is not None:
        from rlnas.evaluators.user_train import UserTrainEvaluator

        train = registry.resolve(cfg.child.train, "child.train")
        return UserTrainEvaluator(make_space(cfg), load_task_data(cfg), cfg.child, train)
    from rlnas.evaluators.keras_child import KerasEvaluator

    measure = [o.metric for o in cfg.search.parsed_objectives]  # latency_ms, tflite_bytes
    return KerasEvaluator(make_space(cfg), load_task_data(cfg), cfg.child, measure)


def evaluator_factory(cfg: Config) -> Callable[[], Evaluator]:
    """A picklable function that builds the evaluator (in a worker process, say). The
    user's functions that ``cfg`` names by import path ride along, so that Ray ships their
    modules to its workers (:func:`rlnas.executors.ray_executor.code_paths`), and so does
    the code of the files it names by path, so that a worker runs it without the file."""
    return functools.partial(
        make_evaluator, cfg, registry.importable(cfg), registry.file_sources(cfg)
    )


def make_strategy(cfg: Config, space: Space) -> Strategy:
    """The strategy of ``cfg`` (a built-in or an import path), seeded with ``cfg.seed``."""
    return registry.make_strategy(cfg, space)


def make_executor(cfg: Config) -> Executor:
    """The executor of ``cfg`` (inline in the main process by default)."""
    kind = cfg.executor.kind
    if kind == "process":
        return ProcessExecutor(evaluator_factory(cfg), cfg.executor)
    if kind == "ray":
        return RayExecutor(evaluator_factory(cfg), cfg.executor)
    return InlineExecutor(make_evaluator(cfg))
