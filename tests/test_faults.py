"""Bad input and faults at the start: one line, exit status 2, and nothing written.

A resume of a run that does not exist, is not an rlnas search, has finished, or belongs to
another experiment or store; a Ray cluster or a tracking server that cannot be reached.
"Nothing written" is checked on the tracking store (every run's status and end time) and
on the file system (every file under the working folder, with its size and time).
"""

from __future__ import annotations

import json
import socket

import pytest
from conftest import ToyEvaluator, ToySpace

from rlnas import cli, factory
from rlnas.executors import InlineExecutor

mlflow = pytest.importorskip("mlflow")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def snapshot(uri: str, folder) -> tuple:
    client = mlflow.MlflowClient(uri)
    ids = [e.experiment_id for e in client.search_experiments()]
    runs = sorted(
        (r.info.run_id, r.info.status, r.info.end_time, tuple(sorted(r.data.tags.items())))
        for r in client.search_runs(ids, max_results=1000)
    )
    files = sorted(
        (str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns)
        for p in folder.rglob("*")
        if p.is_file()
    )
    return runs, files


def one_line(capsys, code: int, *fragments: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("rlnas: error: ") and "Traceback" not in err[0]
    for fragment in fragments:
        assert fragment in err[0], err[0]
    return err[0]


@pytest.fixture(scope="module")
def searches(tmp_path_factory):
    """A store with a finished search and an interrupted one (with its saved state)."""
    root = tmp_path_factory.mktemp("faults")
    uri = f"sqlite:///{root}/mlflow.db"
    config = root / "c.yaml"
    config.write_text(f"strategy: random\nsearch: {{children: 3}}\ntracking: {{uri: '{uri}'}}\n")
    out = {"root": root, "uri": uri, "config": str(config)}
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setattr(factory, "make_space", lambda cfg: ToySpace())
        for name, evaluator in (
            ("finished", ToyEvaluator()),
            ("stopped", ToyEvaluator(interrupt_at=2)),
        ):
            mp.setattr(factory, "make_executor", lambda cfg, e=evaluator: InlineExecutor(e))
            args = ["search", "-c", str(config), "--summary", f"{name}.json", "--no-progress"]
            cli.main(args)
            out[name] = json.loads((root / f"{name}.json").read_text())
    assert out["finished"]["status"] == "FINISHED" and out["stopped"]["status"] == "KILLED"
    client = mlflow.MlflowClient(uri)
    child = client.search_runs(
        [out["finished"]["experiment_id"]], "tags.`rlnas.kind` = 'child'", max_results=1
    )
    out["child"] = child[0].info.run_id
    return out


@pytest.mark.parametrize(
    "case, fragments",
    [
        ("missing", ["does not exist in the tracking store"]),
        ("child", ["is not an rlnas search (an rlnas child run)"]),
        ("finished", ["finished (stopped: budget); there is nothing to resume"]),
        ("form", ["RUN_ID: expected an MLflow run id"]),
        ("experiment", ["--set tracking.experiment: a resumed search keeps its settings"]),
        ("changed", ["--set child.epochs: a resumed search keeps its settings"]),
        ("two_stores", ["--uri", "name two stores; give one of them"]),
        ("no_store", ["no tracking store at"]),
        ("other_store", ["does not exist in the tracking store"]),
    ],
)
def test_a_bad_resume_is_one_line_and_writes_nothing(
    searches, case, fragments, capsys, monkeypatch, tmp_path
):
    root, uri = searches["root"], searches["uri"]
    monkeypatch.chdir(root)
    stopped = searches["stopped"]["run_id"]
    other = f"sqlite:///{tmp_path}/other.db"
    store = ["--set", f"tracking.uri={uri}"]  # the store of `search --resume`
    args = {
        "missing": ["resume", "0123456789abcdef0123456789abcdef", "--uri", uri],
        "child": ["resume", searches["child"], "--uri", uri],
        "finished": ["search", "--resume", searches["finished"]["run_id"], *store],
        "form": ["resume", "../../etc", "--uri", uri],
        "experiment": ["search", "--resume", stopped, *store, "--set", "tracking.experiment=o"],
        "changed": ["search", "--resume", stopped, *store, "--set", "child.epochs=3"],
        "two_stores": ["resume", stopped, "--uri", uri, "--set", f"tracking.uri={other}"],
        "no_store": ["resume", stopped, "--uri", f"sqlite:///{tmp_path}/none.db"],
        "other_store": ["resume", stopped, "--uri", other],
    }[case]
    if case == "other_store":
        mlflow.MlflowClient(other).search_experiments()  # another store that exists
    before = snapshot(uri, root)
    one_line(capsys, cli.main(args), *fragments)
    assert snapshot(uri, root) == before
    assert not (tmp_path / "none.db").exists()


def test_resume_can_change_only_the_executor_and_the_budget(searches, capsys):
    run_id = searches["stopped"]["run_id"]
    code = cli.main(["resume", run_id, "--uri", searches["uri"], "--set", "seed=3"])
    one_line(capsys, code, "--set seed: a resumed search keeps its settings")


def test_unreachable_ray_cluster_and_tracking_server_write_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    port = free_port()
    (tmp_path / "ray.yaml").write_text(
        f"executor: {{kind: ray, ray_address: '127.0.0.1:{port}'}}\n"
        f"tracking: {{uri: 'sqlite:///{tmp_path}/store/mlflow.db'}}\n"
    )
    code = cli.main(["search", "-c", "ray.yaml"])
    one_line(capsys, code, f"cannot reach a Ray cluster at '127.0.0.1:{port}'")
    (tmp_path / "server.yaml").write_text(f"tracking: {{uri: 'http://127.0.0.1:{port}'}}\n")
    code = cli.main(["search", "-c", "server.yaml"])
    one_line(capsys, code, f"cannot reach the MLflow tracking server at 'http://127.0.0.1:{port}'")
    code = cli.main(
        ["resume", "0123456789abcdef0123456789abcdef", "--uri", f"http://127.0.0.1:{port}"]
    )
    one_line(capsys, code, "cannot reach the MLflow tracking server")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["ray.yaml", "server.yaml"]


def test_a_search_still_running_is_not_resumed_twice(searches, capsys, monkeypatch):
    import fcntl
    import os

    from rlnas.checkpoint import LOCK, state_dir

    run_id, uri = searches["stopped"]["run_id"], searches["uri"]
    monkeypatch.chdir(searches["root"])
    fd = os.open(state_dir(uri, run_id) / LOCK, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)  # as the search's own process holds it while it runs
    try:
        code = cli.main(["resume", run_id, "--uri", uri])
    finally:
        os.close(fd)
    one_line(capsys, code, f"search run {run_id} is still running")


def test_search_resume_continues_with_the_saved_config_and_a_longer_budget(
    tmp_path, monkeypatch, capsys
):
    """``rlnas search --resume`` after Ctrl-C: the saved config (its budget raised, the store
    named with ``--set tracking.uri``), the child in flight runs again, the parent run
    finishes."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    (tmp_path / "c.yaml").write_text(
        f"strategy: random\nsearch: {{children: 3}}\ntracking: {{uri: '{uri}'}}\n"
    )
    evaluators = [ToyEvaluator(interrupt_at=1), ToyEvaluator()]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(factory, "make_space", lambda cfg: ToySpace())
    monkeypatch.setattr(factory, "make_executor", lambda cfg: InlineExecutor(evaluators[0]))
    assert cli.main(["search", "-c", "c.yaml", "--summary", "a.json", "--no-progress"]) == 130
    run_id = json.loads((tmp_path / "a.json").read_text())["run_id"]
    assert "continue it with: rlnas resume " + run_id in capsys.readouterr().err
    evaluators.pop(0)
    args = ["search", "--resume", run_id, "--set", f"tracking.uri={uri}"]
    args += ["--set", "search.children=5"]
    assert cli.main([*args, "--summary", "b.json", "--no-progress"]) == 0
    summary = json.loads((tmp_path / "b.json").read_text())
    assert summary["run_id"] == run_id and summary["status"] == "FINISHED"
    assert summary["children"] == 5 and evaluators[0].calls == [1, 2, 3, 4]
    run = mlflow.MlflowClient(uri).get_run(run_id)
    assert run.data.params["search.children"] == "3"  # as it started; the change is noted
    assert json.loads(run.data.tags["rlnas.resumed_with"]) == {"search.children": "5"}
