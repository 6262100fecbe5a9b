"""``rlnas ui``'s server ends with ``rlnas ui``, however that ends: Ctrl-C and SIGTERM are
caught and end the server's process group; SIGKILL cannot be caught, so a guard process
leads the group and ends it. A stand-in server (a process that starts a child, as
``mlflow ui`` starts uvicorn) keeps the test free of MLflow's start-up time."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc (Linux)")

SERVER = textwrap.dedent(
    """
    import os, subprocess, sys, time
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    print(os.getpid(), child.pid, flush=True)
    time.sleep(600)
    """
)

UI = textwrap.dedent(
    """
    import sys
    from rlnas.commands.ui import serve
    sys.exit(serve([sys.executable, "-c", sys.argv[1]]))
    """
)


def running(pid: int) -> bool:
    """Whether ``pid`` is a process that has not ended (a zombie has ended)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["kill-9", "sigterm"])
def test_the_server_and_its_children_end_with_rlnas_ui(sig):
    ui = subprocess.Popen(
        [sys.executable, "-c", UI, SERVER], stdout=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    pids: list[int] = []
    try:
        pids = [int(p) for p in ui.stdout.readline().split()]
        assert len(pids) == 2 and all(map(running, pids)), pids
        os.kill(ui.pid, sig)
        code = ui.wait(timeout=60)
        assert code == (-signal.SIGKILL if sig == signal.SIGKILL else 143)
        deadline = time.monotonic() + 60  # a wait limit, not a timing assertion
        while any(map(running, pids)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(map(running, pids)), [p for p in pids if running(p)]
    finally:
        for pid in pids:
            if running(pid):
                os.kill(pid, signal.SIGKILL)
        if ui.poll() is None:
            os.killpg(ui.pid, signal.SIGKILL)
            ui.wait()
