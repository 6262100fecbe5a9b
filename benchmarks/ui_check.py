"""The MLflow UI as a user meets it, in headless Chromium: two small demo searches (a cold and
a warm-started one, a few children, one epoch), a real ``mlflow server`` on a free port of
127.0.0.1, and screenshots of the saved runs view, its chart (parallel coordinates) view, a
parent run and a child run. Everything it starts is stopped at the end.

    python benchmarks/ui_check.py --out /tmp/ui        # then look at /tmp/ui/*.png

Needs ``chromium`` on the PATH (``apt-get install -y chromium``). Not part of the test suite:
it trains real children and drives a browser.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from rlnas import bundled, cli
from rlnas.tracking import view

SMALL = [
    "search.children=4",
    "child.epochs=1",
    "child.steps_per_epoch=5",
    "controller.batch_size=2",
]
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--virtual-time-budget=15000",
    "--window-size=1400,900",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def search(uri: str, extra: list[str], summary: Path) -> str:
    demo = str(bundled.config_path("demo"))
    args = ["search", "-c", demo, "--no-progress", "--summary", str(summary)]
    for item in [*SMALL, f"tracking.uri={uri}", "tracking.experiment=ui-check", *extra]:
        args += ["--set", item]
    if cli.main(args) != 0:
        raise SystemExit("the demo search failed")

    return json.loads(summary.read_text())["run_id"]


@contextlib.contextmanager
def server(db: str, root: Path):
    port = free_port()
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", db]
    command += ["--artifacts-destination", str(root / "artifacts")]
    command += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    with open(root / "server.log", "a") as log:
        proc = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240
        while True:
            try:
                with urllib.request.urlopen(base + "/health", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("mlflow server did not start; see server.log") from None
                time.sleep(0.3)
        yield base
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def screenshot(url: str, path: Path) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        raise SystemExit("chromium is not installed (apt-get install -y chromium)")
    with tempfile.TemporaryDirectory() as profile:
        flags = [*CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--screenshot={path}"]
        subprocess.run([browser, *flags, url], capture_output=True, timeout=120, check=False)
    print(
        f"{path}  {path.stat().st_size / 1e3:.0f} kB  {url}" if path.exists() else f"{url}: no PNG"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="ui-check", help="folder for the screenshots")
    args = parser.parse_args()
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        db = f"sqlite:///{root}/mlflow.db"
        cold = search(db, [], root / "cold.json")
        search(db, ["strategy=random", "seed=1"], root / "random.json")
        import mlflow

        client = mlflow.MlflowClient(db)
        exp = client.get_run(cold).info.experiment_id
        child = client.get_run(cold).data.tags["rlnas.best_run_id"]
        with server(db, root) as base:
            screenshot(view.url(base, exp, "layers"), out / "runs.png")
            screenshot(view.url(base, exp, "layers", compare=True), out / "compare.png")
            screenshot(f"{base}/#/experiments/{exp}/runs/{cold}", out / "parent.png")
            screenshot(f"{base}/#/experiments/{exp}/runs/{child}", out / "child.png")
            screenshot(
                f"{base}/#/experiments/{exp}/runs/{child}/artifacts?path=architecture.svg",
                out / "child-architecture.png",
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
