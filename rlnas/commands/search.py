"""``rlnas search``: run a search from a YAML config, tracked in MLflow.

Everything that can be checked is checked before the MLflow parent run exists: the config
(strictly), the Ray cluster and the tracking store (reachable), the data and the space, the
saved controller to start from and the ``--save-controller`` name. Bad input therefore leaves
nothing behind that looks like a run.

The search's state is saved beside the tracking store after every child
(:mod:`rlnas.checkpoint`); ``--resume RUN_ID`` (or ``rlnas resume``) continues a search that
was stopped or killed. Ctrl-C (or SIGTERM) stops cleanly, exit status 130.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from rlnas.errors import ConfigError, FieldError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "search",
        help="run a search from a YAML config",
        description="Run an architecture search described by a YAML config; every child "
        "is logged to MLflow under the search's parent run.",
    )
    p.add_argument("--config", "-c", metavar="FILE", help="YAML config file (required)")
    p.add_argument(
        "--resume",
        metavar="RUN_ID",
        help="continue the stopped or killed search of this MLflow run instead (its saved "
        "config is used; --config, if given, must agree with it)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set child.epochs=2 (repeatable)",
    )
    add_run_options(p)
    p.set_defaults(func=run)


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

    search: object  # rlnas.search.Search
    tracker: object  # rlnas.tracking.MLflowTracker
    progress: object | None  # rlnas.progress.ProgressBar
    save_to: Path | None
    checkpoint: object = None  # rlnas.checkpoint.Checkpoint


def prepare(
    cfg,
    *,
    save_controller: str | None = None,
    progress: bool = True,
    resume: tuple[str, dict] | None = None,
) -> Prepared:
    """Build and check every part of the search before anything is written to MLflow.

    ``resume``: (run id, saved state) of a search to continue instead of a new one.
    """
    from rlnas import factory, zoo
    from rlnas.checkpoint import Checkpoint, state_root
    from rlnas.config import to_dict
    from rlnas.progress import ProgressBar
    from rlnas.search import Budget, FailurePolicy, Search
    from rlnas.tracking import MLflowTracker, history

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
    if cfg.executor.kind == "ray" and cfg.executor.ray_address:  # before the store is created
        from rlnas.executors.ray_executor import check_reachable

        check_reachable(cfg.executor.ray_address)
    tracker = MLflowTracker.from_config(cfg)
    tracker.connect()  # an unreachable store stops us before any work
    space = factory.make_space(cfg)  # loads and checks the data
    if cfg.final.test_time_flip or cfg.final.test_time_shift:  # now, not hours later
        from rlnas.final import check_test_time_views

        check_test_time_views(cfg.final, cfg.task.name, factory.load_task_data(cfg).spec)
    warm = cfg.controller.from_ if resume is None else None  # a resumed one has its own state
    if warm:  # before TensorFlow starts
        uri = tracker.tracking_uri
        zoo.check_source(warm, space, cfg.controller.hidden_size, tracking_uri=uri)
    strategy = factory.make_strategy(cfg, space)
    if warm:
        zoo.warm_start(strategy, warm, tracking_uri=tracker.tracking_uri)
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

    def earlier(search: Search) -> dict:
        return history.earlier_rewards(
            tracker.client,
            fingerprint=search.fingerprint,
            task=tracker.task,
            space=space.name,
            exclude_parent=tracker.run_id,
        )

    search = Search(
        strategy,
        executor,
        Budget(children=s.children, cost_seconds=s.budget_seconds, wall_seconds=s.wall_seconds),
        seed=cfg.seed,
        failures=FailurePolicy(reward=s.failed_reward, max_consecutive=s.max_failures),
        observers=[tracker] + ([bar] if bar else []),
        checkpoint=checkpoint,
        preload=earlier if s.cache_across_searches else None,
    )
    if resume is not None:
        run_id, state = resume
        search.load_state_dict(state)
        tracker.resume(run_id)
        if bar is not None:  # the children of the earlier runs count too
            trained = [t for t in search.trials if t.state.finished and t.cached_from is None]
            bar.done = sum(t.state.value in ("COMPLETE", "FAILED") for t in trained)
            bar.failed = sum(t.state.value == "FAILED" for t in trained)
            bar.best = search.best.reward if search.best is not None else None
    prepared = Prepared(search, tracker, bar, save_to, checkpoint)
    if cfg.shared.enabled:  # weight sharing: a table of children, shared weights saved
        from rlnas import shared_search

        shared_search.attach(prepared, cfg)
    return prepared


def run(args: argparse.Namespace) -> int:
    from rlnas.config import load_config

    if args.summary and Path(args.summary).is_dir():
        raise ConfigError(f"--summary: {args.summary!r} is a folder; expected a file path.")
    if args.resume:
        from rlnas.commands import resume

        return resume.resume(args.resume, args, config_path=args.config)
    if not args.config:
        raise ConfigError("--config: a YAML config file is required (or --resume RUN_ID).")
    cfg = load_config(args.config, args.set)
    p = prepare(cfg, save_controller=args.save_controller, progress=not args.no_progress)
    return execute(p, cfg, args)


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


def execute(p: Prepared, cfg, args: argparse.Namespace) -> int:
    """Run a prepared search, then report it; the exit status of the command."""
    try:
        with sigterm_as_ctrl_c(), p.tracker:  # the parent run never stays RUNNING
            result = p.search.run()
    finally:
        if p.progress is not None:
            p.progress.close()
    if cfg.shared.enabled and p.tracker.status == "FINISHED":  # re-score, retrain the best
        from rlnas import shared_search

        shared_search.finish(p, cfg, result)
    if p.tracker.status == "FINISHED":  # all of it is in MLflow: the saved state is done
        p.checkpoint.remove()
    summary = p.tracker.summary(result)
    if p.save_to is not None:
        _save(p, result, summary)
    if args.summary:
        path = Path(args.summary)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(summary, indent=1) + "\n")
    _report(cfg, result, summary)
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


def _save(p: Prepared, result, summary: dict) -> None:
    from rlnas import zoo

    if summary["status"] != "FINISHED":
        print(
            f"Controller not saved to {p.save_to}: the search did not finish; it is in the "
            f"run's artifacts (runs:/{summary['run_id']}/controller).",
            file=sys.stderr,
        )
        return
    zoo.save_controller(
        p.search.strategy,
        p.save_to,
        task=p.tracker.task,
        children=summary["children"],
        best_reward=summary["best_reward"],
        run_id=summary["run_id"],
    )
    summary["saved_controller"] = str(p.save_to)


def _report(cfg, result, summary: dict) -> None:
    """The best architecture and where to look at the search (stdout)."""
    from rlnas.progress import clock
    from rlnas.tracking import DEFAULT_URI, normalize_uri

    out = sys.stdout
    best = result.best
    if best is None:
        print("No child completed.", file=out)
    else:
        print(f"Best child {best.number}: reward {best.reward:.4f} ({cfg.child.metric})", file=out)
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
    uri = summary["tracking_uri"]
    if uri.startswith(("http://", "https://")):
        print(f"Open {uri} in a browser to compare the children.", file=out)
    elif uri == normalize_uri(DEFAULT_URI):
        print("Open the UI: rlnas ui   (then http://127.0.0.1:5000)", file=out)
    else:
        print(f"Open the UI: rlnas ui --uri {uri}", file=out)
