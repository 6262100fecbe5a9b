"""``rlnas ui``: the MLflow UI on the tracking store, bound to 127.0.0.1 only."""

from __future__ import annotations

import argparse
import subprocess
import sys


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "ui",
        help="open the MLflow UI on the tracking store (127.0.0.1)",
        description="Serve the MLflow UI for the local tracking store on 127.0.0.1. "
        "Default store: $MLFLOW_TRACKING_URI, else sqlite:///runs/mlflow.db.",
    )
    p.add_argument("--uri", help="tracking store URI (default: as rlnas search uses)")
    p.add_argument("--port", type=int, default=5000, help="port (default 5000)")
    p.set_defaults(func=run)


def command(uri: str, port: int) -> list[str]:
    """The ``mlflow ui`` command line for ``uri``."""
    return [
        sys.executable,
        "-m",
        "mlflow",
        "ui",
        "--backend-store-uri",
        uri,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",  # a local UI needs no more, and each worker imports MLflow (seconds, memory)
    ]


def run(args: argparse.Namespace) -> int:
    from rlnas.config import TrackingConfig
    from rlnas.errors import ConfigError, TrackingError
    from rlnas.tracking import normalize_uri, sqlite_path

    uri = normalize_uri(args.uri or TrackingConfig().resolved_uri())
    if not 1 <= args.port <= 65535:
        raise ConfigError(f"--port: expected a port in 1..65535, got {args.port}.")
    if uri.startswith(("http://", "https://")):
        raise TrackingError(f"{uri} is a tracking server with its own UI: open it in a browser.")
    db = sqlite_path(uri)
    if db is not None and not db.is_file():
        raise TrackingError(
            f"no tracking store at {str(db)!r} yet: run `rlnas search` first, or pass --uri."
        )
    print(f"MLflow UI for {uri} at http://127.0.0.1:{args.port} (Ctrl-C stops it)", flush=True)
    try:
        return subprocess.call(command(uri, args.port))
    except KeyboardInterrupt:
        return 130
