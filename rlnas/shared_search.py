"""The parts of a weight-sharing search around the search loop: attach, then finish.

:func:`attach` adds what a shared search records and saves to a prepared search: the
shared weights' checkpoint beside the search's state (restored on resume), the MLflow
table of shared children instead of a child run each, the shared phase's end-of-search
tables under ``shared/``, and a parent run kept RUNNING for what follows. :func:`finish`
ends it as ENAS does: the best ``shared.rescore_top`` children by shared reward are
re-scored on the whole validation split with the shared weights, and the best
``shared.retrain_top`` of those are trained from scratch by the standard evaluator, as the
children of a second, short search recorded into the same parent run and saved child by
child (``retrain.npz``), so that ``rlnas final``, ``rlnas export``, the registry and the zoo
find ordinary child runs and a resume retrains only what was not finished.

The shared phase searches the config's space with each ``train/*`` list cut to its first
value (those decisions cannot share weights); the retraining replays its architectures into
the whole space. With ``shared.retrain_trials`` > 1 each retrained architecture is trained
``retrain_trials`` times, with the shared phase's training and with other settings of the
``train/*`` lists (:func:`with_training`), so that they are searched where they matter::

    prepared = prepare(cfg)            # rlnas.commands.session; attach() is called there
    result = prepared.search.run()     # the parent run stays RUNNING
    retraining = finish(prepared, cfg, result)
    retraining.result.best             # the best retrained child
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlnas.space import Architecture, Decision, Sample, Space, Value
from rlnas.strategies.base import Metrics, SpaceExhausted, Strategy, Update
from rlnas.trial import Trial, TrialState

log = logging.getLogger(__name__)

RETRAIN_FILE = "retrain.npz"
"""The retraining search's state, beside the shared search's ``search.npz``."""


class Listed(Strategy):
    """Proposes the given architectures in order, then is exhausted; learns nothing.

    ``name`` is the search's strategy, whose children these are (the parent run's name and
    the child runs' ``rlnas.strategy`` tag keep it); the state is how many were asked."""

    name = "retrain"

    def __init__(
        self, space: Space, architectures: Iterable[Architecture], name: str = "retrain"
    ) -> None:
        super().__init__(space, seed=0, unique=False)
        self.architectures = list(architectures)
        self.asked = 0
        self.name = name

    def ask(self) -> Sample:
        if self.asked >= len(self.architectures):
            raise SpaceExhausted("every listed architecture was proposed")
        self.asked += 1
        return self.space.replay(self.architectures[self.asked - 1])[0]

    def tell(self, sample: Sample, reward: float | None, metrics: Metrics = None) -> Update:
        return None

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "asked": self.asked}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.asked = int(state["asked"])


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


def rescore(
    evaluator: Any, top: Sequence[Trial], retrain: int, trials: int = 1
) -> list[dict[str, Any]]:
    """``top``'s rows re-scored on the whole validation split with the shared weights of
    ``evaluator``, best first; the first ``retrain`` are marked to be retrained, each as
    ``trials`` children from ``retrained_child`` on (the first with the shared phase's
    training, as :func:`with_training` lists them)."""
    rows = [
        {
            "child": t.number,
            "hash": t.architecture.hash,
            "shared_reward": t.reward,
            "rescored": evaluator.rescore(t.architecture),
            "retrained": False,
            "retrained_child": None,
        }
        for t in top
    ]
    rows.sort(key=lambda r: -r["rescored"])
    for k, r in enumerate(rows[:retrain]):
        r["retrained"], r["retrained_child"] = True, k * trials
    return rows


def with_training(
    space: Space, architectures: Sequence[Architecture], trials: int, seed: int
) -> list[Architecture]:
    """Each architecture ``trials`` times: as it is (the shared phase's training), then with
    ``trials - 1`` other settings of its ``train/*`` decisions, distinct, drawn from the
    product of their choices in ``space`` with ``random.Random(seed)``. The same arguments
    give the same list, so a resumed retraining rebuilds it: for two architectures ``a``
    and ``b`` and ``trials=2``, ``[a, a', b, b']``, where ``a'`` is ``a`` with another
    learning rate, say."""
    train = [d for d in space.signature if d.name.startswith("train/")]
    settings = math.prod(len(d.choices) for d in train)
    rng = random.Random(seed)
    out = []
    for arch in architectures:
        own = _setting_number(train, arch)
        others = [n + (n >= own) for n in rng.sample(range(settings - 1), trials - 1)]
        out += [arch] + [Architecture({**arch, **_setting(train, n)}) for n in others]
    return out


def _setting_number(train: Sequence[Decision], arch: Architecture) -> int:
    """``arch``'s values of the ``train`` decisions as a number in the product of their
    choices (mixed radix, the last decision counting fastest)."""
    n = 0
    for d in train:
        n = n * len(d.choices) + d.index_of(arch[d.name])
    return n


def _setting(train: Sequence[Decision], n: int) -> dict[str, Value]:
    """The values of the ``train`` decisions numbered ``n`` (see :func:`_setting_number`)."""
    values = {}
    for d in reversed(train):
        n, k = divmod(n, len(d.choices))
        values[d.name] = d.choices[k]
    return values


def attach(prepared: Any, cfg: Any) -> None:
    """Checkpoint the shared weights and log a table, not child runs (shared mode only)."""
    from rlnas.checkpoint import state_dir
    from rlnas.evaluators.shared import SharedWeightsCheckpoint
    from rlnas.tracking.shared_log import SharedRunLog

    tracker, search = prepared.tracker, prepared.search
    tracker.log_children = False
    tracker.results_prefix = "shared"  # the search's own tables are the retrained children's
    tracker.keep_running = True  # finish() re-scores and retrains into the run, then ends it
    evaluator = search.executor.evaluator

    def folder():
        return state_dir(tracker.tracking_uri, tracker.run_id) if tracker.run_id else None

    # before the tracker: the table and the weights are written before the run is closed
    search.observers = [SharedWeightsCheckpoint(evaluator, folder), SharedRunLog(tracker)] + list(
        search.observers
    )


@dataclass
class Retraining:
    """The end of a shared search: the re-scored rows and the retraining search."""

    rows: list[dict[str, Any]]
    """``shared_rescored.csv``: the best shared children re-scored, best first."""
    result: Any
    """The retraining search's :class:`~rlnas.search.SearchResult` (its children are the
    search's child runs); None when nothing was retrained."""
    tracker: Any
    """The tracker that recorded the retrained children into the parent run and ended it."""

    def summary(self, shared: dict[str, Any]) -> dict[str, Any]:
        """The search's summary: the retrained children's (what ``rlnas final`` takes), with
        the shared phase's summary under ``shared`` and the re-scored rows under
        ``rescored``; the shared phase's alone when nothing was retrained."""
        out = shared if self.result is None else self.tracker.summary(self.result)
        if self.result is not None:
            out["shared"] = {k: v for k, v in shared.items() if k not in _PLACE}
        out["rescored"] = self.rows
        return out


_PLACE = ("run_id", "tracking_uri", "experiment", "experiment_id", "status")
"""Summary keys the shared phase and the retraining share (where the run is)."""


def finish(prepared: Any, cfg: Any, result: Any) -> Retraining:
    """Re-score the best shared children on the whole validation split and retrain the best
    ``shared.retrain_top`` from scratch into the same parent run, which it ends; each is
    retrained ``shared.retrain_trials`` times, with its own and other ``train/*`` values.

    The retraining is a search of its own, saved after every child into ``retrain.npz``
    beside the shared search's state (with the re-scored rows): a resumed search that had
    begun it re-scores nothing and retrains only the children not finished yet."""
    from rlnas import factory
    from rlnas.checkpoint import Checkpoint, state_dir
    from rlnas.executors import InlineExecutor
    from rlnas.search import Budget, Search
    from rlnas.tracking import MLflowTracker
    from rlnas.tracking.shared_log import log_rescored

    parent = prepared.tracker
    folder = state_dir(parent.tracking_uri, parent.run_id)
    saved = _saved(folder / RETRAIN_FILE)
    if saved is None:
        top = best_distinct(result.trials, cfg.shared.rescore_top)
        evaluator = prepared.search.executor.evaluator
        rows = rescore(evaluator, top, cfg.shared.retrain_top, cfg.shared.retrain_trials)
        stamp = time.time()
    else:
        rows, stamp = saved["header"]["rows"], float(saved["header"]["stamp"])
    log_rescored(parent, rows, stamp)
    by_number = {t.number: t.architecture for t in result.trials}
    best = [by_number[r["child"]] for r in rows if r["retrained"]]
    if not best:  # shared.retrain_top: 0, or no child completed
        parent.end("FINISHED")
        return Retraining(rows, None, None)
    standard = _standard(cfg)
    space = factory.make_space(standard)  # the whole space: train/* lists uncut
    chosen = with_training(space, best, cfg.shared.retrain_trials, cfg.seed)
    tracker = MLflowTracker.from_config(cfg)
    tracker.resume(parent.run_id)
    checkpoint = Checkpoint(
        folder.parent,
        lambda: {"run_id": parent.run_id, "rows": rows, "stamp": stamp},
        file=RETRAIN_FILE,
    )
    retrain = Search(
        Listed(space, chosen, name=prepared.search.strategy.name),
        InlineExecutor(factory.make_evaluator(standard)),
        Budget(children=len(chosen)),
        seed=cfg.seed,
        observers=[tracker],
        checkpoint=checkpoint,
    )
    if saved is not None:
        retrain.load_state_dict(saved["search"])
    with tracker:
        retrained = retrain.run()
    parent.end(by=tracker)
    log.info("retrained %d children: rewards %s", len(chosen), [t.reward for t in retrained.trials])
    return Retraining(rows, retrained, tracker)


def _saved(path: Path) -> dict[str, Any] | None:
    """The retraining's saved state, if a resumed search had begun it."""
    from rlnas.checkpoint import read

    return read(path) if path.is_file() else None


def _standard(cfg: Any) -> Any:
    """``cfg`` with shared mode off: the standard evaluator's settings."""
    import dataclasses

    return dataclasses.replace(cfg, shared=dataclasses.replace(cfg.shared, enabled=False))
