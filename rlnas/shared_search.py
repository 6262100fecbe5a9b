"""The parts of a weight-sharing search around the search loop: attach, then finish.

:func:`attach` adds what a shared search records and saves to a prepared search: the
shared weights' checkpoint beside the search's state (restored on resume) and the MLflow
table of shared children instead of a child run each. :func:`finish` ends it as ENAS does:
the best ``shared.rescore_top`` children by shared reward are re-scored on the whole
validation split with the shared weights, and the best ``shared.retrain_top`` of those are
trained from scratch by the standard evaluator, as the children of a second, short search
recorded into the same parent run, so that ``rlnas final``, ``rlnas export``, the registry
and the zoo find ordinary child runs::

    prepared = prepare(cfg)            # rlnas.commands.search
    attach(prepared, cfg)
    result = prepared.search.run()
    finish(prepared, cfg, result)
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from rlnas.space import Architecture, Sample, Space
from rlnas.strategies.base import SpaceExhausted, Strategy
from rlnas.trial import Trial, TrialState

log = logging.getLogger(__name__)


class Listed(Strategy):
    """Proposes the given architectures in order, then is exhausted; learns nothing."""

    name = "retrain"

    def __init__(self, space: Space, architectures: Iterable[Architecture]) -> None:
        super().__init__(space, seed=0, unique=False)
        self.queue = list(architectures)

    def ask(self) -> Sample:
        if not self.queue:
            raise SpaceExhausted("every listed architecture was proposed")
        return self.space.replay(self.queue.pop(0))[0]

    def tell(self, sample: Sample, reward: float | None) -> Mapping[str, float] | None:
        return None


def best_distinct(trials: Sequence[Trial], n: int) -> list[Trial]:
    """The ``n`` best completed trials by reward, one per architecture."""
    done = [t for t in trials if t.state is TrialState.COMPLETE and t.reward is not None]
    done.sort(key=lambda t: (-t.reward, t.number))
    out, seen = [], set()
    for t in done:
        if t.architecture.hash not in seen:
            seen.add(t.architecture.hash)
            out.append(t)
        if len(out) == n:
            break
    return out


def attach(prepared: Any, cfg: Any) -> None:
    """Checkpoint the shared weights and log a table, not child runs (shared mode only)."""
    from rlnas.checkpoint import state_dir
    from rlnas.evaluators.shared import SharedWeightsCheckpoint
    from rlnas.tracking.shared_log import SharedRunLog

    tracker, search = prepared.tracker, prepared.search
    tracker.log_children = False
    evaluator = search.executor.evaluator

    def folder():
        return state_dir(tracker.tracking_uri, tracker.run_id) if tracker.run_id else None

    # before the tracker: the table and the weights are written before the run is closed
    search.observers = [SharedWeightsCheckpoint(evaluator, folder), SharedRunLog(tracker)] + list(
        search.observers
    )


def finish(prepared: Any, cfg: Any, result: Any) -> list[dict[str, Any]]:
    """Re-score the best shared children on the whole validation split and retrain the best
    ``shared.retrain_top`` from scratch into the same parent run; the re-scored rows."""
    from rlnas import factory
    from rlnas.executors import InlineExecutor
    from rlnas.search import Budget, Search
    from rlnas.tracking import MLflowTracker
    from rlnas.tracking.shared_log import log_rescored

    shared = cfg.shared
    evaluator = prepared.search.executor.evaluator
    top = best_distinct(result.trials, shared.rescore_top)
    rows = [
        {
            "child": t.number,
            "hash": t.architecture.hash,
            "shared_reward": t.reward,
            "rescored": evaluator.rescore(t.architecture),
            "retrained": False,
        }
        for t in top
    ]
    rows.sort(key=lambda r: -r["rescored"])
    for r in rows[: shared.retrain_top]:
        r["retrained"] = True
    log_rescored(prepared.tracker, rows)
    if not shared.retrain_top or not rows:
        return rows
    by_number = {t.number: t for t in top}
    chosen = [by_number[r["child"]].architecture for r in rows[: shared.retrain_top]]
    keras_cfg = _standard(cfg)
    space = prepared.search.strategy.space
    executor = InlineExecutor(factory.make_evaluator(keras_cfg))
    tracker = MLflowTracker.from_config(cfg)
    tracker.resume(prepared.tracker.run_id)
    retrain = Search(
        Listed(space, chosen),
        executor,
        Budget(children=len(chosen)),
        seed=cfg.seed,
        observers=[tracker],
    )
    with tracker:
        retrained = retrain.run()
    for r, t in zip(rows, retrained.trials):
        r["retrained_reward"] = t.reward
    log.info("retrained %d children: rewards %s", len(chosen), [t.reward for t in retrained.trials])
    return rows


def _standard(cfg: Any) -> Any:
    """``cfg`` with shared mode off: the standard evaluator's settings."""
    import dataclasses

    return dataclasses.replace(cfg, shared=dataclasses.replace(cfg.shared, enabled=False))
