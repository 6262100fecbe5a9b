"""``rlnas ui`` ends its MLflow server and every process the server started, on SIGTERM and
on Ctrl-C (SIGINT), leaving the port closed (no orphaned uvicorn worker keeps serving)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from doubles import terminal_sigint

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads Linux's /proc"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serving(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def stat(pid: int) -> tuple[str, int, str] | None:
    """(state, parent pid, start time) of a live process, else None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    if fields[0] in ("Z", "X"):
        return None
    return fields[0], int(fields[1]), fields[19]


def descendants(root: int) -> dict[int, str]:
    """Live descendants of ``root``, each with its start time (a reused pid differs)."""
    table = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (info := stat(int(entry.name))) is not None:
            table[int(entry.name)] = info
    found: dict[int, str] = {}
    parents = {root}
    while True:
        more = {p: i[2] for p, i in table.items() if i[1] in parents and p not in found}
        if not more:
            return found
        found.update(more)
        parents |= set(more)


def alive(processes: dict[int, str]) -> list[int]:
    return [p for p, start in processes.items() if (i := stat(p)) is not None and i[2] == start]


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    import mlflow

    uri = f"sqlite:///{tmp_path_factory.mktemp('ui') / 'mlflow.db'}"
    mlflow.MlflowClient(uri).search_experiments()  # creates the store
    return uri


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_ui_ends_its_server_and_all_its_children(store, sig):
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    ui = subprocess.Popen(
        [sys.executable, "-m", "rlnas", "ui", "--uri", store, "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=terminal_sigint,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        while not serving(port):
            assert ui.poll() is None, ui.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the UI did not start serving"
            time.sleep(0.5)
        started = descendants(ui.pid)
        assert started, "the UI runs its server as a child process"
        ui.send_signal(sig)
        code = ui.wait(60)
    finally:
        if ui.poll() is None:
            ui.kill()
            ui.wait()
    assert code == {signal.SIGTERM: 143, signal.SIGINT: 130}[sig]
    assert not serving(port)
    assert alive(started) == []
