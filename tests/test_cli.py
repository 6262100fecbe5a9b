"""The CLI: bad input -> one line, exit 2, no traceback, no run; Ctrl-C -> 130; summaries."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from doubles import terminal_sigint

from rlnas import cli, factory
from rlnas.executors import InlineExecutor

mlflow = pytest.importorskip("mlflow")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A tracking store shared by the module's commands (created once: it takes seconds)."""
    root = tmp_path_factory.mktemp("cli-store")
    uri = f"sqlite:///{root}/mlflow.db"
    mlflow.MlflowClient(uri).search_experiments()  # create the tables now
    return uri


def run_count(uri: str) -> int:
    client = mlflow.MlflowClient(uri)
    ids = [e.experiment_id for e in client.search_experiments()]
    return len(client.search_runs(ids)) if ids else 0


def rlnas(args, cwd, uri):
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    return subprocess.run(
        [sys.executable, "-m", "rlnas", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=300,
    )


def assert_one_line_error(proc, *fragments):
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("rlnas: error: ")
    for fragment in fragments:
        assert fragment in lines[0]


def config(tmp_path, text: str, name: str = "c.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


# -- bad input, through a real subprocess ---------------------------------------------------
def test_bad_config_key(tmp_path, store):
    path = config(tmp_path, "child: {epoch: 2}")
    proc = rlnas(["search", "--config", path], tmp_path, store)
    assert_one_line_error(proc, "unknown config key `child.epoch`. Did you mean `child.epochs`?")
    assert proc.stdout == ""


def test_missing_config_file_and_bad_set(tmp_path, store):
    proc = rlnas(["search", "--config", "nope.yaml"], tmp_path, store)
    assert_one_line_error(proc, "--config: file 'nope.yaml' does not exist.")
    path = config(tmp_path, "child: {epochs: 1}")
    proc = rlnas(["search", "-c", path, "--set", "child.epochs=0"], tmp_path, store)
    assert_one_line_error(proc, "`child.epochs`: expected an integer >= 1, got 0.")


@pytest.mark.parametrize(
    "args, message",
    [
        (["-c", "c.yaml", "--resume", "0" * 32], "argument --resume: not allowed with argument"),
        (["--resume", "0" * 32, "-c", "c.yaml"], "argument --config/-c: not allowed with argument"),
        (["--set", "child.epochs=2"], "one of the arguments --config/-c --resume is required"),
    ],
)
def test_search_takes_a_config_or_a_run_to_resume_never_both(
    tmp_path, store, capsys, monkeypatch, args, message
):
    monkeypatch.chdir(tmp_path)
    config(tmp_path, "search: {children: 1}")
    before = run_count(store)
    with pytest.raises(SystemExit) as stop:  # refused by the parser, before any work
        cli.main(["search", *args])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"rlnas search: error: {message}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml"]
    assert run_count(store) == before


def npz(tmp_path, **arrays):
    path = tmp_path / "data.npz"
    np.savez(path, **arrays)
    return path


def bad_data_config(tmp_path, case: str) -> str:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 6)).astype("float32")
    y = np.arange(40) % 2
    task = "npz"
    if case == "lengths":
        path = npz(tmp_path, x=x, y=y[:39])
    elif case == "nan":
        x[3, 2] = np.nan
        path = npz(tmp_path, x=x, y=y)
    elif case == "one_class":
        path = npz(tmp_path, x=x, y=np.zeros(40))
    elif case == "missing":
        path = tmp_path / "nowhere.npz"
    else:
        task, path = "image_folder", tmp_path / "images"
        (path / "cats").mkdir(parents=True)
        (path / "cats" / "notes.txt").write_text("no image here")
    return config(tmp_path, f"task: {{name: {task}, path: '{path}'}}\nsearch: {{children: 2}}")


def test_bad_data_stops_before_any_run(tmp_path, store):
    before = run_count(store)
    proc = rlnas(["search", "--config", bad_data_config(tmp_path, "lengths")], tmp_path, store)
    assert_one_line_error(proc, "features have 40 rows but labels have 39")
    assert run_count(store) == before


@pytest.mark.parametrize(
    "case, fragment",
    [
        ("nan", "NaN/inf values"),
        ("one_class", "expected at least 2 classes"),
        ("missing", "nowhere.npz' does not exist"),
        ("empty_folder", "holds no images"),
    ],
)
def test_each_kind_of_bad_data(tmp_path, store, monkeypatch, capsys, case, fragment):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    before = run_count(store)
    code = cli.main(["search", "--config", bad_data_config(tmp_path, case)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert err[0].startswith("rlnas: error: ") and fragment in err[0]
    assert run_count(store) == before


@pytest.mark.parametrize(
    "task, final, expected",
    [
        (
            "digits",
            "test_time_flip: true",
            "`final.test_time_flip`: expected false for task 'digits' (images whose",
        ),
        (
            "mnist1d",
            "test_time_shift: 1",
            "`final.test_time_shift`: expected 0 for task 'mnist1d' (sequence inputs), got 1;",
        ),
    ],
)
def test_test_time_views_the_task_forbids_are_refused_before_the_search(
    tmp_path, store, monkeypatch, capsys, task, final, expected
):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    before = run_count(store)
    path = config(tmp_path, f"task: {{name: {task}}}\nfinal: {{{final}}}")
    assert cli.main(["search", "--config", path]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert expected in err[0]
    assert run_count(store) == before


def test_tracking_server_down(tmp_path, store):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path = config(tmp_path, f"tracking: {{uri: 'http://127.0.0.1:{port}'}}")
    proc = rlnas(["search", "--config", path], tmp_path, store)
    assert_one_line_error(
        proc, f"cannot reach the MLflow tracking server at 'http://127.0.0.1:{port}'"
    )


def test_controller_options_are_checked_first(tmp_path, store):
    path = config(tmp_path, "strategy: random")
    proc = rlnas(["search", "-c", path, "--save-controller", "x"], tmp_path, store)
    assert_one_line_error(proc, "--save-controller: only the reinforce strategy")
    path = config(tmp_path, "controller: {from: controllers/nope}\nsearch: {children: 1}")
    proc = rlnas(["search", "-c", path], tmp_path, store)
    assert_one_line_error(proc, "controller.from: 'controllers/nope' is not a saved controller")


def test_ui_without_a_store_and_help(tmp_path, store):
    proc = rlnas(["ui", "--uri", f"sqlite:///{tmp_path}/none.db"], tmp_path, store)
    assert_one_line_error(proc, "no tracking store at")
    proc = rlnas(["--help"], tmp_path, store)
    assert proc.returncode == 0
    for command in ("search", "ui", "bench"):
        assert command in proc.stdout


def test_commands_are_light_to_import():
    code = (
        "import sys; from rlnas import cli; cli.build_parser(); "
        "print(sorted(m for m in ('tensorflow', 'mlflow', 'keras') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_program_ignores_ctrl_c_once_its_status_is_decided(tmp_path):
    """``python -m rlnas``: after the command returned, the interpreter's teardown (about a
    second with TensorFlow loaded) runs with SIGINT ignored, so a late Ctrl-C cannot turn a
    finished command into a death by signal. Read at exit by an atexit hook."""
    code = (
        "import atexit, signal, sys; "
        "atexit.register(lambda: print('at exit:', signal.getsignal(signal.SIGINT))); "
        "print('before:', signal.getsignal(signal.SIGINT)); "
        "sys.argv = ['rlnas', 'controllers', 'list', '--root', sys.argv[1]]; "
        "import runpy; runpy.run_module('rlnas', run_name='__main__')"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=terminal_sigint,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "before: <built-in function default_int_handler>", out.stdout
    assert lines[-1] == f"at exit: {signal.SIG_IGN}", out.stdout


# -- the search command in-process, with the toy space and evaluator -------------------------
@pytest.fixture
def toy_parts(monkeypatch, toy_space, toy_evaluator, tmp_path):
    """``rlnas search`` builds the toy space and evaluator instead of the config's."""
    evaluator = toy_evaluator()
    monkeypatch.setattr(factory, "make_space", lambda cfg: toy_space)
    monkeypatch.setattr(factory, "make_executor", lambda cfg: InlineExecutor(evaluator))
    monkeypatch.chdir(tmp_path)
    return evaluator


def toy_config(tmp_path, uri, **search):
    extra = "".join(f"  {k}: {v}\n" for k, v in search.items())
    return config(
        tmp_path,
        f"strategy: random\ntracking: {{uri: '{uri}', experiment: cli}}\n"
        f"search:\n  children: 4\n{extra}",
    )


def test_search_writes_the_summary_and_prints_the_best(tmp_path, store, toy_parts, capsys):
    summary = tmp_path / "out" / "summary.json"
    code = cli.main(["search", "-c", toy_config(tmp_path, store), "--summary", str(summary)])
    out, err = capsys.readouterr()
    assert code == 0
    data = json.loads(summary.read_text())
    for key in (
        "run_id",
        "tracking_uri",
        "experiment",
        "children",
        "failed",
        "best_reward",
        "best_decisions",
        "wall_seconds",
    ):
        assert key in data
    assert data["children"] == 4 and data["failed"] == 0 and data["experiment"] == "cli"
    run = mlflow.MlflowClient(store).get_run(data["run_id"])
    assert run.info.status == "FINISHED"
    assert data["best_reward"] == run.data.metrics["search/best_reward"]
    assert f"Best child {data['best_child']}: reward {data['best_reward']:.4f}" in out
    assert "rlnas ui" in out
    # the address of the saved view (children by reward, decisions as columns) is printed
    view = f"/#/experiments/{data['experiment_id']}/runs?viewStateShareKey=rlnas-"
    assert view in out
    tags = mlflow.MlflowClient(store).get_experiment(data["experiment_id"]).tags
    key = out.split("viewStateShareKey=")[1].split(")")[0].strip()
    assert f"mlflow.sharedViewState.{key}" in tags
    assert "4/4 children" in err  # the progress lines
    inputs = mlflow.MlflowClient(store).get_run(data["run_id"]).inputs.dataset_inputs
    contexts = {t.value for i in inputs for t in i.tags if t.key == "mlflow.data.context"}
    assert contexts == {"training", "validation"}  # the test split is not the search's


def test_ctrl_c_exits_130_with_the_run_killed(tmp_path, store, toy_parts, capsys):
    toy_parts.interrupt_at = 2
    summary = tmp_path / "s.json"
    code = cli.main(["search", "-c", toy_config(tmp_path, store), "--summary", str(summary)])
    assert code == 130
    data = json.loads(summary.read_text())
    assert data["stopped"] == "interrupted" and data["status"] == "KILLED"
    client = mlflow.MlflowClient(store)
    assert client.get_run(data["run_id"]).info.status == "KILLED"
    running = client.search_runs(
        [data["experiment_id"]], "attributes.status = 'RUNNING'", max_results=10
    )
    assert running == []


def test_too_many_failures_exit_2_with_a_failed_run(tmp_path, store, toy_parts, capsys):
    toy_parts.fail = lambda arch, n: True
    summary = tmp_path / "s.json"
    path = toy_config(tmp_path, store, max_failures=2)
    code = cli.main(["search", "-c", path, "--summary", str(summary)])
    err = capsys.readouterr().err
    assert code == 2
    assert "rlnas: error: search aborted: 2 children failed in a row" in err
    data = json.loads(summary.read_text())
    assert data["status"] == "FAILED" and data["failed"] == 2 and data["best_reward"] is None


@pytest.mark.slow
def test_ui_serves_the_store_on_localhost(tmp_path, store):
    import signal
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "rlnas", "ui", "--uri", store, "--port", str(port)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, so that we stop what we started
    )
    try:
        answer = None
        deadline = time.monotonic() + 120  # a wait limit, not a timing assertion
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    answer = r.read().decode()
                    break
            except OSError:
                assert proc.poll() is None, proc.stdout.read()
                time.sleep(0.5)
        assert answer is not None and "OK" in answer
        url = f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/search?max_results=10"
        with urllib.request.urlopen(url, timeout=10) as r:
            assert "experiments" in json.loads(r.read())
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        _stop_servers_on(port)  # what a killed `rlnas ui` could not stop (a loaded machine)


def _stop_servers_on(port: int) -> None:
    """SIGKILL the process group of every process started with ``--port PORT`` (Linux)."""
    if not os.path.isdir("/proc"):
        return
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                args = f.read().split(b"\0")
        except OSError:
            continue
        if b"--port" in args and str(port).encode() in args and int(pid) != os.getpid():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(os.getpgid(int(pid)), signal.SIGKILL)
