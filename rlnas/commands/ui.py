"""``rlnas ui``: the MLflow UI on the tracking store, bound to 127.0.0.1 only.

The server (``mlflow ui`` and the uvicorn processes it starts) runs in a process group of
its own, so that Ctrl-C or SIGTERM to ``rlnas ui`` ends the whole group: nothing keeps
serving after the command has returned. A signal that cannot be caught (``kill -9``) leaves
no cleanup to ``rlnas ui``, so the group's leader is a guard (:func:`guard`, this module run
with ``--guard``) that starts the server and ends the group once ``rlnas ui`` is gone.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from rlnas.commands import add_command

_GRACE_SECONDS = 10.0
"""How long the server may take to exit after SIGTERM before its group is killed."""
_WATCH_SECONDS = 0.5
"""How often the guard checks that ``rlnas ui`` is still there."""


def register(subparsers) -> None:
    p = add_command(subparsers, "ui", "open the MLflow UI on the tracking store (127.0.0.1)", run)
    p.add_argument("--uri", help="tracking store URI (default: as rlnas search uses)")
    p.add_argument("--port", type=int, default=5000, help="port (default 5000)")


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
    """Serve the MLflow UI for the local tracking store on 127.0.0.1. Default store:
    $MLFLOW_TRACKING_URI, else sqlite:///runs/mlflow.db."""
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
    return serve(command(uri, args.port))


class _Terminated(Exception):
    """SIGTERM arrived (raised by the handler ``serve`` installs)."""


def serve(cmd: list[str]) -> int:
    """Run ``cmd`` in a new process group until it exits, or until Ctrl-C or SIGTERM here
    ends the group (exit status 130 or 143)."""

    def terminated(signum, frame):
        raise _Terminated

    previous = signal.signal(signal.SIGTERM, terminated), signal.getsignal(signal.SIGINT)
    server = None
    try:
        guarded = [sys.executable, "-m", "rlnas.commands.ui", "--guard", str(os.getpid()), *cmd]
        server = subprocess.Popen(guarded, start_new_session=True)
        return server.wait()
    except KeyboardInterrupt:
        return 130
    except _Terminated:
        return 143
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):  # a second one must not cut the cleanup
            signal.signal(sig, signal.SIG_IGN)
        if server is not None:
            end_group(server.pid, server)  # the leader of a new session: its pid is the group
        signal.signal(signal.SIGTERM, previous[0])
        signal.signal(signal.SIGINT, previous[1])


def end_group(group: int, leader: subprocess.Popen) -> None:
    """End every process of process group ``group``: SIGTERM, then, once ``leader`` has
    exited or the grace period is over, SIGKILL to what is left; return once none runs."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        leader.wait(_GRACE_SECONDS)
    with contextlib.suppress(ProcessLookupError):  # workers that outlived their parent
        os.killpg(group, signal.SIGKILL)
    leader.wait()
    # a killed process closes its sockets as it exits, which a loaded machine can delay:
    # return once none is left, so that the port is free when the command has returned
    deadline = time.monotonic() + _GRACE_SECONDS
    while group_alive(group) and time.monotonic() < deadline:
        time.sleep(0.05)


def group_alive(group: int) -> bool:
    """Whether a process of process group ``group`` is still running (zombies have ended:
    their sockets are closed, only their exit status waits to be collected)."""
    proc = Path("/proc")
    if not proc.is_dir():  # no /proc: ask the kernel, which counts zombies as members
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # it ended while the folder was read
            continue
        if int(fields[2]) == group and fields[0] not in ("Z", "X"):
            return True
    return False


def guard(parent: int, cmd: list[str]) -> int:
    """Run ``cmd`` and return its exit status; if process ``parent`` (the ``rlnas ui`` that
    started this guard) goes away first, end this process group (``cmd`` and whatever it
    started): SIGTERM, then SIGKILL after the grace period. Run as the leader of a new
    session, so that the group is the server's alone."""
    server = subprocess.Popen(cmd)
    while True:
        try:
            return server.wait(_WATCH_SECONDS)
        except subprocess.TimeoutExpired:
            if os.getppid() == parent:
                continue
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the guard outlives the SIGTERM
        end_group(os.getpgrp(), server)  # its SIGKILL ends the guard too


if __name__ == "__main__":
    if len(sys.argv) < 4 or sys.argv[1] != "--guard" or not sys.argv[2].isdigit():
        sys.exit("usage: python -m rlnas.commands.ui --guard PARENT_PID COMMAND...")
    sys.exit(guard(int(sys.argv[2]), sys.argv[3:]))
