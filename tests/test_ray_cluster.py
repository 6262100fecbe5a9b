"""The Ray executor joining a real cluster, as Ray users run one: ``ray start --head`` here,
then ``rlnas search`` with ``RAY_ADDRESS`` set (as ``ray job submit`` sets it) and through
``ray job submit`` itself. The cluster runs in its own session and temp folder and is ended
by process group, so that no other Ray on the machine is touched (``ray stop`` would end
every Ray of this user)."""

from __future__ import annotations

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
from pathlib import Path

import pytest

pytest.importorskip("ray")
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
RAY = Path(sys.executable).with_name("ray")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def session_members(sid: int) -> list[int]:
    """Live processes of session ``sid`` (read from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] not in ("Z", "X"):
            found.append(int(entry.name))
    return found


AUTH = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": os.urandom(32).hex()}
"""The cluster's own token (Ray's default token file is shared by every Ray of this user)."""


def start_cluster(dashboard: bool) -> tuple[subprocess.Popen, str, dict]:
    temp = tempfile.mkdtemp(prefix="rlray", dir="/tmp")  # short: Ray's sockets live here
    port = free_port()
    ports = {"gcs": port, "dashboard": free_port()}
    cmd = [
        str(RAY), "start", "--head", "--block", f"--port={port}", "--num-cpus=2",
        f"--temp-dir={temp}", f"--ray-client-server-port={free_port()}",
        "--node-ip-address=127.0.0.1",
        f"--dashboard-agent-listen-port={free_port()}", "--disable-usage-stats",
        f"--include-dashboard={'true' if dashboard else 'false'}",
    ]  # fmt: skip
    if dashboard:
        cmd += ["--dashboard-host=127.0.0.1", f"--dashboard-port={ports['dashboard']}"]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"} | AUTH
    proc = subprocess.Popen(
        cmd, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 90
    wanted = [port] + ([ports["dashboard"]] if dashboard else [])
    while not all(listening(p) for p in wanted):
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_cluster(proc, temp)
            pytest.skip(f"`ray start --head` did not come up: {proc.stderr.read()[-500:]!r}")
        time.sleep(0.5)
    return proc, temp, ports


def stop_cluster(proc: subprocess.Popen, temp: str) -> None:
    for pid in session_members(proc.pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 20
    while session_members(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in session_members(proc.pid):  # what ignored SIGTERM
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    proc.wait(10)
    shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster():
    proc, temp, ports = start_cluster(dashboard=False)
    yield f"127.0.0.1:{ports['gcs']}", Path(temp)
    stop_cluster(proc, temp)
    assert session_members(proc.pid) == []


def write_config(folder: Path, store: Path, children: int = 6) -> Path:
    path = folder / "ray.yaml"
    path.write_text(
        "seed: 0\n"
        "task: {name: nb201, dataset: cifar10}\n"
        "space: nb201\n"
        "strategy: random\n"
        f"search: {{children: {children}}}\n"
        "executor: {kind: ray, workers: 2, threads_per_worker: 1}\n"
        f"tracking: {{uri: 'sqlite:///{store}', experiment: ray}}\n"
    )
    return path


def worker_logs(temp: Path) -> set[str]:
    return {p.name for p in temp.glob("session_*/logs/*worker-*")}


def runs(store: Path) -> list:
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{store}")
    experiment = client.get_experiment_by_name("ray")
    if experiment is None:
        return []
    return client.search_runs([experiment.experiment_id], max_results=1000)


def search_env(address: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["PYTHONPATH"] = str(ROOT)
    env.update(AUTH)
    if address is not None:
        env["RAY_ADDRESS"] = address
    return env


def test_a_search_joins_the_cluster_named_by_ray_address(cluster, tmp_path):
    address, temp = cluster
    before = worker_logs(temp)
    store = tmp_path / "mlflow.db"
    config = write_config(tmp_path, store)
    done = subprocess.run(
        [sys.executable, "-m", "rlnas", "search", "-c", str(config), "--no-progress"],
        cwd=tmp_path, env=search_env(address), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "ValueError" not in done.stderr
    found = runs(store)
    assert {r.info.status for r in found} == {"FINISHED"}
    assert len(found) == 1 + 6  # the search and its six children
    assert len(worker_logs(temp) - before) >= 2  # the actors ran on the cluster's workers


def test_an_unreachable_ray_address_is_one_line_and_leaves_nothing_running(tmp_path):
    store = tmp_path / "mlflow.db"
    config = write_config(tmp_path, store)
    address = f"127.0.0.1:{free_port()}"
    done = subprocess.run(
        [sys.executable, "-m", "rlnas", "search", "-c", str(config), "--no-progress"],
        cwd=tmp_path, env=search_env(address), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].endswith(
        f"`RAY_ADDRESS`: cannot reach a Ray cluster at {address!r} (Connection refused); "
        "expected the address of a running cluster (`ray start --head` prints it), or unset "
        "to start Ray locally."
    )
    assert [r.info.status for r in runs(store) if r.info.status == "RUNNING"] == []


def test_ray_job_submit_runs_a_search_on_the_cluster(tmp_path):
    pytest.importorskip("ray.dashboard.modules.job.sdk")  # the job server: ray[default]
    proc, temp, ports = start_cluster(dashboard=True)
    try:
        store = tmp_path / "mlflow.db"
        config = write_config(tmp_path, store, children=4)
        runtime_env = json.dumps({"env_vars": {"PYTHONPATH": str(ROOT)}})  # for the entrypoint
        done = subprocess.run(
            [str(RAY), "job", "submit", "--address", f"http://127.0.0.1:{ports['dashboard']}",
             "--runtime-env-json", runtime_env, "--",
             sys.executable, "-m", "rlnas", "search", "-c", str(config), "--no-progress"],
            cwd=tmp_path, env=search_env(None), capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
        assert "succeeded" in done.stdout
        found = runs(store)
        assert {r.info.status for r in found} == {"FINISHED"} and len(found) == 1 + 4
    finally:
        stop_cluster(proc, temp)
    assert session_members(proc.pid) == []
