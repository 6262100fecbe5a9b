"""A search session, shared by ``rlnas search`` and ``rlnas resume``: prepare, run, report.

:func:`prepare` builds and checks every part before the MLflow parent run exists (the
options, the Ray cluster, the store, the data and space, the saved controller to start from)
and returns a :class:`Prepared` search; :func:`execute` runs it with Ctrl-C and SIGTERM
stopping it cleanly, saves the controller if asked, writes the summary and reports::

    p = prepare(cfg, save_controller="mnist1d", progress=False)
    status = execute(p, cfg, args)  # the command's exit status
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlnas import factory, registry, shared_search, zoo
from rlnas.checkpoint import Checkpoint, state_root
from rlnas.config import Config, to_dict
from rlnas.errors import ConfigError, FieldError
from rlnas.evaluators.config import reward_metric
from rlnas.final import check_test_time_views
from rlnas.final_steps import task_label
from rlnas.progress import ProgressBar, clock
from rlnas.search import Budget, FailurePolicy, Search, SearchResult
from rlnas.space import Space
from rlnas.strategies.base import Strategy
from rlnas.tracking import DEFAULT_URI, MLflowTracker, normalize_uri, view

log = logging.getLogger("rlnas.data")


def add_run_options(p: argparse.ArgumentParser) -> None:
    """The options every command that runs a search takes (search and resume)."""
    p.add_argument("--summary", metavar="PATH", help="write a JSON summary of the search here")
    p.add_argument(
        "--save-controller",
        metavar="NAME",
        help="save the trained controller to controllers/NAME when the search finishes",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")


@dataclass
class Prepared:
    """A search ready to run, with its tracker, progress bar and checkpoint."""

    search: Search
    tracker: MLflowTracker
    progress: ProgressBar | None
    save_to: Path | None
    """``controllers/NAME`` of ``--save-controller``, checked to be free."""
    checkpoint: Checkpoint | None = None
    saver: zoo.ControllerSaver = field(default_factory=zoo.ControllerSaver)
    """Adds the controller to the parent run's artifacts as the search ends."""
    cfg: Config | None = None
    """The resolved config (weight sharing re-scores and retrains after the search)."""


def prepare(
    cfg: Config,
    *,
    save_controller: str | None = None,
    progress: bool = True,
    resume: tuple[str, dict[str, Any]] | None = None,
) -> Prepared:
    """Build and check every part of the search before anything is written to MLflow.

    ``resume``: (run id, saved state) of a search to continue instead of a new one.
    """
    save_to = _check_options(cfg, save_controller)
    saver = zoo.ControllerSaver()
    tracker = MLflowTracker.from_config(cfg, artifacts=[saver])
    tracker.connect()  # an unreachable store stops us before any work
    space = factory.make_search_space(cfg)  # loads and checks the data
    if cfg.task.name != "nb201":  # the splits the search uses, as the parent run's inputs
        data = factory.load_task_data(cfg)
        for note in data.notes:  # how the user's data was read, once the space accepted it
            log.warning("%s", note)
        splits = {"training": (data.x_train, data.y_train), "validation": (data.x_val, data.y_val)}
        tracker.datasets = (splits, task_label(cfg))
    space.check_width(cfg.final.width_multiplier)  # now, not when `rlnas final` runs
    if cfg.final.test_time_flip or cfg.final.test_time_shift:  # now, not hours later
        check_test_time_views(cfg.final, cfg.task.name, factory.load_task_data(cfg).spec)
    strategy = _strategy(cfg, space, tracker.tracking_uri, warm=resume is None)
    executor = factory.make_executor(cfg)
    s = cfg.search
    bar = ProgressBar(s.children, wall_seconds=s.wall_seconds) if progress else None
    checkpoint = Checkpoint(
        state_root(tracker.tracking_uri),
        lambda: {
            "run_id": tracker.run_id,
            "tracking_uri": tracker.tracking_uri,
            "experiment": tracker.experiment,
            "experiment_id": tracker.experiment_id,
            "config": to_dict(cfg),
        },
    )
    search = Search(
        strategy,
        executor,
        Budget(children=s.children, cost_seconds=s.budget_seconds, wall_seconds=s.wall_seconds),
        seed=cfg.seed,
        failures=FailurePolicy(reward=s.failed_reward, max_consecutive=s.max_failures),
        observers=[tracker] + ([bar] if bar else []),
        checkpoint=checkpoint,
        preload=tracker.earlier_rewards if s.cache_across_searches else None,
        objectives=s.parsed_objectives,
        scalarization=s.scalarization,
    )
    if resume is not None:
        _load(search, tracker, bar, *resume)
    prepared = Prepared(search, tracker, bar, save_to, checkpoint, saver, cfg)
    if cfg.shared.enabled:  # weight sharing: a table of children, shared weights saved
        shared_search.attach(prepared, cfg)
    return prepared


def _check_options(cfg: Config, save_controller: str | None) -> Path | None:
    """Check the options that need no data, before the store is created; the folder of
    ``--save-controller``, if given."""
    save_to = None
    if save_controller is not None:
        if cfg.strategy != "reinforce":
            raise ConfigError(
                f"--save-controller: only the reinforce strategy has a controller to save; "
                f"this config uses strategy {cfg.strategy!r}."
            )
        save_to = zoo.controller_dir(save_controller)
    if cfg.controller.from_ and cfg.strategy != "reinforce":
        raise FieldError(
            "controller.from", cfg.controller.from_, "null unless strategy is reinforce"
        )
    registry.check_paths(cfg)  # the user's strategy and training loop, by import path
    if cfg.executor.kind == "ray":
        # lazy: the Ray executor's module is slow to import, and only Ray searches need it
        from rlnas.executors.ray_executor import check_reachable, cluster_address

        address, field = cluster_address(cfg.executor)  # the config's, else RAY_ADDRESS
        if address is not None:
            check_reachable(address, field=field)
    return save_to


def _strategy(cfg: Config, space: Space, tracking_uri: str, *, warm: bool) -> Strategy:
    """The strategy of ``cfg``, warm-started from ``controller.from`` for a new search (a
    resumed one has its own state)."""
    source = cfg.controller.from_ if warm else None
    if source:  # before TensorFlow starts
        zoo.check_source(source, space, cfg.controller.hidden_size, tracking_uri=tracking_uri)
    strategy = factory.make_strategy(cfg, space)
    if source:
        zoo.warm_start(strategy, source, tracking_uri=tracking_uri)  # type: ignore[arg-type]
    return strategy


def _load(
    search: Search,
    tracker: MLflowTracker,
    bar: ProgressBar | None,
    run_id: str,
    state: dict[str, Any],
) -> None:
    """Continue the search of ``run_id`` from its saved ``state``."""
    search.load_state_dict(state)
    tracker.resume(run_id)
    if bar is not None:  # the children of the earlier runs count too
        trained = [t for t in search.trials if t.state.finished and t.cached_from is None]
        bar.done = sum(t.state.value in ("COMPLETE", "FAILED") for t in trained)
        bar.failed = sum(t.state.value == "FAILED" for t in trained)
        bar.best = search.best.reward if search.best is not None else None


@contextmanager
def sigterm_as_ctrl_c() -> Iterator[None]:
    """SIGTERM (a scheduler's preemption, ``kill``) stops the search as Ctrl-C does."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_search(p: Prepared) -> tuple[SearchResult, dict[str, Any]]:
    """Run a prepared search (shared by the commands and :func:`rlnas.search`); the result
    and its summary, with the controller saved if asked.

    A weight-sharing search then re-scores its best children and retrains them alone
    (:func:`rlnas.shared_search.finish`): the result and the summary are the retrained
    children's, the shared phase's summary under ``shared``."""
    retraining = None
    try:
        with sigterm_as_ctrl_c(), p.tracker:  # the parent run never stays RUNNING
            result = p.search.run()
            if p.cfg is not None and p.tracker.keep_running and p.tracker.status == "RUNNING":
                retraining = shared_search.finish(p, p.cfg, result)
    finally:
        if p.progress is not None:
            p.progress.close()
    if p.tracker.status == "FINISHED" and p.checkpoint is not None:  # all of it is in MLflow
        p.checkpoint.remove()
    summary = p.tracker.summary(result)
    if retraining is not None:
        summary = retraining.summary(summary)
        result = retraining.result or result
    if p.save_to is not None:
        _save(p, summary)
    return result, summary


def execute(p: Prepared, cfg: Config, args: argparse.Namespace) -> int:
    """Run a prepared search, then report it; the exit status of the command."""
    result, summary = run_search(p)
    if args.summary:
        path = Path(args.summary)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(summary, indent=1) + "\n")
    _report(cfg, result, summary, p.search.strategy.space.name)
    again = f"rlnas resume {summary['run_id']}"
    if result.stopped == "interrupted":
        print(f"Search interrupted, its state saved; continue it with: {again}", file=sys.stderr)
        return 130
    if result.stopped == "aborted":
        print(
            f"rlnas: error: search aborted: {result.message} (state saved; `{again}` continues it)",
            file=sys.stderr,
        )
        return 2
    return 0


def _save(p: Prepared, summary: dict[str, Any]) -> None:
    """``--save-controller``: the controller into ``controllers/NAME`` if the search finished."""
    if summary["status"] != "FINISHED":
        print(
            f"Controller not saved to {p.save_to}: the search did not finish; it is in the "
            f"run's artifacts (runs:/{summary['run_id']}/controller).",
            file=sys.stderr,
        )
        return
    trained_on = summary.get("shared", summary)  # a shared search: the shared rewards
    zoo.save_controller(
        p.search.strategy,  # type: ignore[arg-type]  # --save-controller: reinforce only
        p.save_to,
        task=p.tracker.task,
        children=trained_on["children"],
        best_reward=trained_on["best_reward"],
        run_id=summary["run_id"],
    )
    summary["saved_controller"] = str(p.save_to)


def _reward_name(cfg: Config) -> str:
    """What a reward is, as the report names it: the table's accuracy, or the child metric
    resolved for the task (a minimised metric is rewarded as its negative)."""
    if cfg.task.name == "nb201":
        return "table accuracy"
    child = reward_metric(cfg.child, factory.load_task_data(cfg).spec.task)
    return child.metric if child.maximise else f"-{child.metric}"


def _report(cfg: Config, result: SearchResult, summary: dict[str, Any], space: str) -> None:
    """The best architecture and where to look at the search (stdout)."""
    out = sys.stdout
    shared = summary.get("shared")
    if shared is not None:  # weight sharing: the shared phase, then the retrained children
        rows, trials = summary["rescored"], cfg.shared.retrain_trials
        settings = f" with {trials} training settings each" if trials > 1 else ""
        print(
            f"Shared weights: {shared['children']} children rewarded in "
            f"{clock(shared['wall_seconds'])} (best shared reward {shared['best_reward']:.4f}); "
            f"the best {len(rows)} re-scored, {sum(r['retrained'] for r in rows)} retrained "
            f"alone{settings}.",
            file=out,
        )
    best = result.best
    if best is None:
        print("No child completed.", file=out)
    else:
        print(f"Best child {best.number}: reward {best.reward:.4f} ({_reward_name(cfg)})", file=out)
        width = max(len(k) for k in best.architecture)
        for name, value in best.architecture.items():
            print(f"  {name:<{width}}  {value}", file=out)
    print(
        f"{summary['children']} children ({summary['failed']} failed, {summary['cached']} "
        f"cached) in {clock(result.wall_seconds)}; stopped: {result.stopped}. MLflow run "
        f"{summary['run_id']} in experiment {summary['experiment']!r} ({summary['status']}).",
        file=out,
    )
    if "saved_controller" in summary:
        print(f"Controller saved to {summary['saved_controller']}.", file=out)
    uri, experiment = summary["tracking_uri"], summary["experiment_id"]
    if uri.startswith(("http://", "https://")):  # the children by reward, decisions as columns
        print(f"Compare the children: {view.url(uri, experiment, space)}", file=out)
        return
    local = view.url("http://127.0.0.1:5000", experiment, space)
    ui = "rlnas ui" if uri == normalize_uri(DEFAULT_URI) else f"rlnas ui --uri {uri}"
    print(f"Open the UI: {ui}   (then {local})", file=out)
