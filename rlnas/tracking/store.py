"""The MLflow store: URIs, reachability, experiments and artifact downloads.

Like the rest of :mod:`rlnas.tracking`, the only place rlnas imports MLflow (lazily, inside
the functions). The default store is ``sqlite:///runs/mlflow.db`` with artifacts beside it
in ``runs/artifacts``, both created on first use by a search; :func:`open_store` opens an
existing store for the commands that read one.
"""

from __future__ import annotations

import os
import re
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

from rlnas.config import TrackingConfig
from rlnas.errors import TrackingError

if TYPE_CHECKING:
    from mlflow import MlflowClient

DEFAULT_URI = "sqlite:///runs/mlflow.db"
HTTP_RETRIES = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1"}
"""MLflow's own retries of one HTTP request (unless the user set them): a few seconds, not
MLflow's default of minutes, because the tracker retries a store that went away itself,
without stopping the search (:mod:`rlnas.tracking.outbox`)."""


QUIET_DOWNLOADS = {"MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
"""No MLflow progress bars for the small files rlnas downloads (unless the user set it):
a command's stderr holds its progress lines and its one-line errors."""


def normalize_uri(uri: str) -> str:
    """Make a relative SQLite path absolute (so that runs are found from any folder)."""
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/") and ":memory:" not in uri:
        return prefix + str(Path(uri[len(prefix) :]).resolve())
    return uri


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI, else ``None``."""
    return Path(uri[len("sqlite:///") :]) if uri.startswith("sqlite:///") else None


def connect(uri: str) -> MlflowClient:
    """A client for the store at ``uri``, checked to answer; :class:`TrackingError` if not.

    SQLite stores (and their folder) are created on first use; an HTTP tracking server is
    probed on its ``/health`` endpoint with a short timeout instead of MLflow's minutes of
    retries.
    """
    db = sqlite_path(uri)
    if db is not None:
        try:
            db.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TrackingError(
                f"tracking.uri: cannot create the folder of {redact(uri)!r}: {exc.strerror}."
            ) from None
    elif uri.startswith(("http://", "https://")):
        _probe_server(uri)
        for name, value in HTTP_RETRIES.items():
            os.environ.setdefault(name, value)
    from mlflow import MlflowClient

    try:
        client = MlflowClient(tracking_uri=uri)
        client.search_experiments(max_results=1)
    except Exception as exc:
        raise TrackingError(
            f"tracking.uri: the MLflow store {redact(uri)!r} does not answer: {first_line(exc)}"
        ) from None
    return client


def _probe_server(uri: str, timeout: float = 5.0) -> None:
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout):
            pass
    except urllib.error.HTTPError:
        return  # it answers; a server without /health still is a server
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TrackingError(
            f"tracking.uri: cannot reach the MLflow tracking server at {redact(uri)!r} "
            f"({reason}); "
            "start it, or set tracking.uri or MLFLOW_TRACKING_URI to a reachable store."
        ) from None


def experiment_id(client: MlflowClient, name: str, uri: str) -> str:
    """Id of experiment ``name``, created on first use (artifacts beside a SQLite db)."""
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        if exp.lifecycle_stage == "deleted":
            raise TrackingError(
                f"tracking.experiment: experiment {name!r} is deleted in {redact(uri)!r}; "
                "restore it (`mlflow experiments restore`) or choose another name."
            )
        return exp.experiment_id
    db = sqlite_path(uri)
    location = (db.parent / "artifacts").resolve().as_uri() if db is not None else None
    try:
        return client.create_experiment(name, artifact_location=location)
    except Exception:  # created meanwhile by another process
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


def download_artifacts(artifact_uri: str, tracking_uri: str, dst: str | Path) -> Path:
    """Download ``runs:/<run_id>/<path>`` into ``dst``; :class:`TrackingError` if absent."""
    import mlflow.artifacts  # lazy: importing rlnas.tracking (the CLI's parser) loads no MLflow

    _quiet_downloads()
    connect(tracking_uri)
    try:
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=artifact_uri, dst_path=str(dst), tracking_uri=tracking_uri
        )
    except Exception as exc:
        raise TrackingError(
            f"{artifact_uri!r} cannot be downloaded from {redact(tracking_uri)!r}: "
            f"{first_line(exc)}"
        ) from None
    return Path(local)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]


def redact(uri: str) -> str:
    """A URI without its password (``scheme://user:***@host``), safe to log."""
    return re.sub(r"(//[^/:@]+:)[^/@]+@", r"\1***@", uri)


def open_store(uri: str | None) -> tuple[str, MlflowClient]:
    """The URI and a client of an existing store (``--uri``, else the default of
    ``tracking.uri``): a missing SQLite file is an error, not created."""
    uri = normalize_uri(uri or TrackingConfig().resolved_uri())
    db = sqlite_path(uri)
    if db is not None and not db.is_file():
        raise TrackingError(
            f"--uri: no tracking store at {str(db)!r}; run `rlnas search` first or pass --uri."
        )
    _quiet_downloads()
    return uri, connect(uri)


def _quiet_downloads() -> None:
    for name, value in QUIET_DOWNLOADS.items():
        os.environ.setdefault(name, value)
