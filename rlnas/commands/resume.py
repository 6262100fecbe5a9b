"""``rlnas resume RUN_ID``: continue a search that was stopped or killed (even by ``kill -9``).

The search's saved state (:mod:`rlnas.checkpoint`) is found beside its tracking store
(``--uri``, else ``$MLFLOW_TRACKING_URI``, else ``sqlite:///runs/mlflow.db``). The search
then goes on exactly where its state left it: children that were in flight run again with
the same architecture and seed; children the store lacks (the search was killed while
recording them, or the store was down) are recorded, each exactly once; the parent run is
set RUNNING again and finished as usual.

Everything is checked before anything is written: a run that does not exist in this
store, is not an rlnas search, belongs to another experiment or store, or has finished,
is refused with one line (exit status 2). ``rlnas search --resume RUN_ID`` does the same
(its parser refuses ``--config`` beside it: a search resumes with its saved config). Only the
settings in :data:`CHANGEABLE` may be changed with ``--set`` (a resumed search may run on
other hardware, or longer); ``--set tracking.uri=URI`` names the store, as ``--uri`` does.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rlnas.checkpoint import FILE, read, running, state_dir
from rlnas.commands import add_command, session
from rlnas.commands.session import add_run_options
from rlnas.config import Config, TrackingConfig, apply_override, from_dict
from rlnas.errors import ConfigError, TrackingError
from rlnas.tracking.outbox import transient
from rlnas.tracking.store import connect, first_line, normalize_uri, redact, sqlite_path

CHANGEABLE = (
    "executor.",
    "search.children",
    "search.wall_seconds",
    "search.budget_seconds",
    "tracking.retry_seconds",
)
"""Settings that may differ from the saved config when a search is resumed."""


def register(subparsers) -> None:
    p = add_command(subparsers, "resume", "continue a stopped or killed search", run)
    p.add_argument("run_id", metavar="RUN_ID", help="the search's MLflow parent run id")
    p.add_argument("--uri", help="tracking store URI (default: as rlnas search uses)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="change executor.* or the budget (search.children, search.wall_seconds, "
        "search.budget_seconds), e.g. --set executor.workers=4",
    )
    add_run_options(p)


def run(args: argparse.Namespace) -> int:
    """Continue the search of MLflow run RUN_ID from its saved state. Its state lives beside
    the tracking store the search used."""
    if args.summary and Path(args.summary).is_dir():
        raise ConfigError(f"--summary: {args.summary!r} is a folder; expected a file path.")
    return resume(args.run_id, args, uri=args.uri)


def resume(run_id: str, args: argparse.Namespace, *, uri: str | None = None) -> int:
    """Check, rebuild and run the search of ``run_id``; the command's exit status."""
    changes = [item for item in args.set if _key(item) != STORE]
    for item in changes:
        _changeable(_key(item))
    uri = _store(uri, [item for item in args.set if _key(item) == STORE])
    state = load_state(run_id, uri)
    header = state["header"]
    data = header["config"]
    for item in changes:
        apply_override(data, item)
    data.setdefault("tracking", {})["uri"] = header["tracking_uri"]  # where the run is
    cfg = from_dict(Config, data)
    p = session.prepare(
        cfg,
        save_controller=args.save_controller,
        progress=not args.no_progress,
        resume=(run_id, state["search"]),
    )
    return session.execute(p, cfg, args)


STORE = "tracking.uri"
"""The one setting ``--set`` gives a resume that is not a change: where the search's store is."""


def _key(item: str) -> str:
    return item.partition("=")[0].strip()


def _store(uri: str | None, items: list[str]) -> str:
    """The store to resume from: ``--uri``, else ``--set tracking.uri=``, else the default."""
    given: list[str] = []
    for item in items:
        data: dict[str, Any] = {}
        apply_override(data, item)
        value = data["tracking"]["uri"]
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"--set tracking.uri: expected a tracking store URI, got {value!r}.")
        given.append(value.strip())
    if uri is not None and given and given[-1] != uri:
        raise ConfigError(
            f"--set tracking.uri={given[-1]} and --uri {uri} name two stores; give one of them."
        )
    return uri or (given[-1] if given else TrackingConfig().resolved_uri())


def load_state(run_id: str, uri: str) -> dict[str, Any]:
    """The saved state of search ``run_id`` in store ``uri``, checked against the store.

    Writes nothing; every refusal is a one-line :class:`TrackingError` or ConfigError.
    """
    uri = normalize_uri(uri)
    folder = state_dir(uri, run_id)  # checks the id's form first
    db = sqlite_path(uri)
    if db is not None and not db.is_file():
        raise TrackingError(
            f"no tracking store at {str(db)!r}: pass --uri with the store the search used."
        )
    client = connect(uri)
    run = _get_run(client, run_id, uri)
    if run.info.lifecycle_stage == "deleted":
        raise TrackingError(f"run {run_id} is deleted in {redact(uri)!r}; nothing to resume.")
    kind = run.data.tags.get("rlnas.kind")
    if kind != "search":
        what = f"an rlnas {kind} run" if kind else "not a run rlnas made"
        raise TrackingError(f"run {run_id} is not an rlnas search ({what}); nothing to resume.")
    stopped = run.data.tags.get("rlnas.stopped")
    if run.info.status == "FINISHED":
        raise TrackingError(
            f"search run {run_id} finished (stopped: {stopped or 'budget'}); there is nothing "
            "to resume. Start a new search to search further."
        )
    path = folder / FILE
    if not path.is_file():
        raise TrackingError(
            f"no saved state of search run {run_id} in {str(folder.parent)!r} (states are kept "
            "beside the tracking store, or in runs/state/ of the folder a search against a "
            "server ran in)."
        )
    if running(folder):
        raise TrackingError(
            f"search run {run_id} is still running (a process holds {str(folder)!r}); stop "
            "it first, or wait for it."
        )
    state = read(path)
    header = state["header"]
    if header.get("run_id") != run_id or normalize_uri(header["tracking_uri"]) != uri:
        raise TrackingError(
            f"the state in {str(folder)!r} belongs to run {header.get('run_id')} in "
            f"{redact(header['tracking_uri'])!r}, not to run {run_id} in {redact(uri)!r}."
        )
    if run.info.experiment_id != header["experiment_id"]:
        raise TrackingError(
            f"run {run_id} is in experiment {run.info.experiment_id}, but its search ran in "
            f"experiment {header['experiment']!r} ({header['experiment_id']})."
        )
    return state


def _get_run(client, run_id: str, uri: str):
    try:
        return client.get_run(run_id)
    except Exception as exc:
        if transient(exc):
            raise TrackingError(
                f"tracking.uri: the MLflow store {redact(uri)!r} does not answer: {first_line(exc)}"
            ) from None
        raise TrackingError(
            f"run {run_id} does not exist in the tracking store {redact(uri)!r}; expected the "
            "run id `rlnas search` printed (pass --uri if the search used another store)."
        ) from None


def _changeable(key: str) -> None:
    if not key.startswith(CHANGEABLE):
        raise ConfigError(
            f"--set {key}: a resumed search keeps its settings; only executor.* and "
            "search.children, search.wall_seconds, search.budget_seconds can change "
            "(and tracking.uri names the store the search used)."
        )
