"""A real ``mlflow server`` on 127.0.0.1: parallel searches tracked through its http URI, and
the server going away in the middle of a search.

The server (SQLite backend and artifact store in a temporary folder, a free port) is
started once for the module and stopped by a finalizer, also when a test fails; the fault
tests stop it and start it again on the same port and database.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from doubles import FormulaEvaluator
from doubles import ToySpace as FormulaSpace

from rlnas import checkpoint as ckpt
from rlnas import cli, factory
from rlnas.commands import session as search_command
from rlnas.tracking.outbox import Backoff

mlflow = pytest.importorskip("mlflow")
pytestmark = pytest.mark.slow


class Server:
    """``mlflow server`` in its own process group, on a fixed port and database."""

    def __init__(self, root: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.root = root
        self.db = f"sqlite:///{root}/server.db"
        self.uri = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        mlflow.MlflowClient(self.db).search_experiments()  # the tables, before the server

    def start(self, timeout: float = 240.0) -> None:
        command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", self.db]
        command += ["--artifacts-destination", str(self.root / "artifacts")]
        command += ["--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"]
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        with open(self.root / "server.log", "a") as log:
            self.proc = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("mlflow server exited: " + self.log()[-2000:])
            try:
                with urllib.request.urlopen(self.uri + "/health", timeout=2):
                    return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("mlflow server did not answer /health: " + self.log()[-2000:])

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        with contextlib.suppress(ProcessLookupError):  # anything left in its group
            os.killpg(self.proc.pid, signal.SIGKILL)

    def log(self) -> str:
        path = self.root / "server.log"
        return path.read_text() if path.exists() else ""


@pytest.fixture(scope="module")
def server(tmp_path_factory, request):
    srv = Server(tmp_path_factory.mktemp("mlflow-server"))
    request.addfinalizer(srv.stop)
    srv.start()
    return srv


def write_config(tmp_path: Path, server: Server, experiment: str, **extra: str) -> Path:
    text = f"""\
        seed: 1
        task: {{name: nb201, dataset: cifar10}}
        space: nb201
        strategy: random
        search: {{children: {extra.get("children", 12)}}}
        executor: {{kind: process, workers: 2, recycle_after: null}}
        tracking: {{uri: '{server.uri}', experiment: {experiment},
                    retry_seconds: {extra.get("retry", 300)}}}
    """
    path = tmp_path / f"{experiment}.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def children(client, summary: dict) -> list:
    runs = client.search_runs(
        [summary["experiment_id"]], f"tags.`mlflow.parentRunId` = '{summary['run_id']}'"
    )
    return sorted(runs, key=lambda r: int(r.data.tags["rlnas.child"]))


def test_a_parallel_search_tracked_by_the_server(server, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = write_config(tmp_path, server, "parallel")
    assert cli.main(["search", "-c", str(path), "--summary", "s.json", "--no-progress"]) == 0
    summary = json.loads((tmp_path / "s.json").read_text())
    client = mlflow.MlflowClient(server.uri)
    parent = client.get_run(summary["run_id"])
    assert parent.info.status == "FINISHED" and parent.data.params["executor.kind"] == "process"
    runs = children(client, summary)
    assert [int(r.data.tags["rlnas.child"]) for r in runs] == list(range(12))
    assert all(r.info.status == "FINISHED" for r in runs)
    assert len({r.data.tags["rlnas.architecture_hash"] for r in runs}) == 12
    fingerprint = runs[0].data.tags["rlnas.fingerprint"]
    assert fingerprint.startswith("nb201-table/cifar10")
    best = max(runs, key=lambda r: r.data.metrics["reward"])
    assert parent.data.metrics["search/best_reward"] == best.data.metrics["reward"]
    local = client.download_artifacts(best.info.run_id, "architecture.json", str(tmp_path))
    assert json.loads(Path(local).read_text())["hash"] == best.data.tags["rlnas.architecture_hash"]
    assert not list((tmp_path / "runs" / "state").rglob("search.npz"))  # done: state removed


# -- the server goes away mid-search --------------------------------------------------------
class Hooks(list):
    sleep = 0.3


@pytest.fixture
def slow_toy_search(monkeypatch, tmp_path):
    """``rlnas search`` with toy children of ``hooks.sleep`` seconds (0.3 unless a test sets
    it) in 2 worker processes, and hooks that see every finished child after the tracker
    recorded it."""
    hooks = Hooks()

    def make_executor(cfg):
        from rlnas.executors.process import ProcessExecutor

        evaluator = functools.partial(FormulaEvaluator, sleep=hooks.sleep)
        return ProcessExecutor(evaluator, cfg.executor)

    real_prepare = search_command.prepare

    def prepare(cfg, **kw):
        p = real_prepare(cfg, **kw)
        p.tracker.outbox.backoff = Backoff(cfg.tracking.retry_seconds, first=0.5, longest=2.0)
        p.search.observers.extend(hooks)
        return p

    monkeypatch.setattr(factory, "make_space", lambda cfg: FormulaSpace())
    monkeypatch.setattr(factory, "make_executor", make_executor)
    monkeypatch.setattr(search_command, "prepare", prepare)
    monkeypatch.chdir(tmp_path)
    return hooks


class Outage:
    """Stops the server after child ``at`` and (optionally) starts it again in the
    background; notes the children that finished while it was down."""

    def __init__(self, server: Server, at: int, restart: bool) -> None:
        self.server, self.at, self.restart = server, at, restart
        self.down = False
        self.during: list[int] = []
        self.thread: threading.Thread | None = None

    def trial_finished(self, search, trial):
        if self.down:
            self.during.append(trial.number)
        if trial.number == self.at and not self.down:
            self.server.stop()
            self.down = True
            if self.restart:
                self.thread = threading.Thread(target=self._back)
                self.thread.start()

    def _back(self):
        time.sleep(1.0)
        self.server.start()
        self.down = False


def test_a_server_that_goes_away_and_comes_back_loses_nothing(server, tmp_path, slow_toy_search):
    outage = Outage(server, at=2, restart=True)
    slow_toy_search.append(outage)
    path = write_config(tmp_path, server, "outage", children=10)
    try:
        code = cli.main(["search", "-c", str(path), "--summary", "s.json", "--no-progress"])
    finally:
        if outage.thread is not None:
            outage.thread.join()
    assert code == 0
    assert outage.during, "no child finished while the server was down"
    summary = json.loads((tmp_path / "s.json").read_text())
    client = mlflow.MlflowClient(server.uri)
    assert client.get_run(summary["run_id"]).info.status == "FINISHED"
    runs = children(client, summary)
    assert [int(r.data.tags["rlnas.child"]) for r in runs] == list(range(10))  # once each
    assert all(r.info.status == "FINISHED" for r in runs)
    steps = [m.step for m in client.get_metric_history(summary["run_id"], "child/reward")]
    assert sorted(steps) == list(range(10))


def test_a_server_down_too_long_stops_the_search_and_resume_records_the_rest(
    server, tmp_path, slow_toy_search, capsys
):
    if not server.running():  # the previous test failed with the server down
        server.start()
    outage = Outage(server, at=1, restart=False)
    slow_toy_search.append(outage)
    # 20 children (the toy space holds 21) of 0.8 s on 2 workers: the search outlasts the
    # patience (1 s) plus the first failed write (MLflow's own retries: a few seconds),
    # which it does not wait for
    slow_toy_search.sleep = 0.8
    path = write_config(tmp_path, server, "gone", children=20, retry=1)
    try:
        code = cli.main(["search", "-c", str(path), "--no-progress"])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2
        assert err[-1].startswith("rlnas: error: the tracking store ")
        assert "the search stopped with its state saved" in err[-1] and "rlnas resume" in err[-1]
        (saved,) = (tmp_path / "runs" / "state").rglob("search.npz")
        state = ckpt.read(saved)["search"]
        assert state["stopped"] == "aborted"
        finished = [t["number"] for t in state["trials"] if t["state"] == "COMPLETE"]
        assert len(finished) >= 3  # children that only the saved state holds
    finally:
        server.start()
    run_id = saved.parent.name
    slow_toy_search.remove(outage)
    args = ["resume", run_id, "--uri", server.uri, "--summary", "r.json", "--no-progress"]
    assert cli.main(args) == 0
    summary = json.loads((tmp_path / "r.json").read_text())
    client = mlflow.MlflowClient(server.uri)
    assert client.get_run(run_id).info.status == "FINISHED"
    runs = children(client, summary)
    assert [int(r.data.tags["rlnas.child"]) for r in runs] == list(range(len(runs)))
    assert all(r.info.status == "FINISHED" for r in runs) and len(runs) == 20
    assert summary["children"] == 20
