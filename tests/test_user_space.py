"""Your own space: a ``build(d, spec)`` function searched, replayed, resumed and retrained.

The spaces live in ``tests/user_models.py`` and are named by import path, as a user's YAML
names them (``space: {build: user_models:build}``); they run through the real CLI.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from conftest import ToySpace

from rlnas import cli
from rlnas.errors import SpaceError
from rlnas.space import Space
from rlnas.strategies import RandomSearch
from rlnas.tasks import TaskSpec

mlflow = pytest.importorskip("mlflow")

SPEC = TaskSpec(input_shape=(8, 8, 1), input_kind="image", num_classes=10)


# -- the decider's conveniences (no Keras) ------------------------------------------------
class Grid(Space):
    name = "grid"

    def declare(self, d):
        depth = d.int("depth", 1, 7, step=3)
        return {
            "depth": depth,
            "rate": d.float("rate", low=0.0, high=0.5, step=0.25),
            "lr": d.float("lr", [1e-3, 3e-3]),
            "skip": d.bool("skip"),
            "width": d.int("width", 8, 16, step=8, active=depth > 1),
        }


def test_int_float_bool_are_choices_over_their_grid():
    sig = {d.name: d.choices for d in Grid().signature}
    assert sig == {
        "depth": (1, 4, 7),
        "rate": (0.0, 0.25, 0.5),
        "lr": (0.001, 0.003),
        "skip": (False, True),
        "width": (8, 16),
    }
    _, blueprint = Grid().replay({"depth": 1, "rate": 0.25, "lr": 0.003, "skip": True})
    assert blueprint["width"] is None and blueprint["skip"] is True


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda d: d.int("n", 3, 1), "decision `n`: expected integers low <= high"),
        (lambda d: d.int("n", 1, 3, step=0), "step >= 1, got (low=1, high=3, step=0)"),
        (lambda d: d.float("f", low=0.0, high=1.0), "decision `f`: expected values, or low"),
    ],
)
def test_bad_grids_name_the_decision(call, message):
    class Bad(Space):
        def declare(self, d):
            return call(d)

    with pytest.raises(SpaceError) as e:
        Bad().signature  # noqa: B018
    assert message in str(e.value)


def test_a_run_that_declares_fewer_decisions_names_the_missing_one():
    class Short(ToySpace):
        calls = 0

        def declare(self, d):
            Short.calls += 1
            if Short.calls == 1:
                return super().declare(d)
            d.choice("width", [8, 16, 32, 64])
            return {}

    with pytest.raises(SpaceError, match="`act` was not declared this time"):
        Short().sample(lambda decision, mask: 0)


# -- a user's Keras function --------------------------------------------------------------
def test_a_signature_change_is_refused_naming_the_decision():
    import user_models

    from rlnas.spaces.user import UserSpace

    user_models._calls["n"] = 0
    space = UserSpace(user_models.changes_signature, SPEC)
    space.check()
    with pytest.raises(SpaceError) as e:
        RandomSearch(space, seed=0).ask()
    assert "declared `c` at step 1 where its signature has `b`" in str(e.value)


def test_sampling_stops_after_the_last_decision_and_the_child_builds_in_full():
    import keras

    from rlnas.spaces.user import UserSpace

    built = []

    def build(d, spec):
        units = d.choice("units", [4, 8])
        built.append(units)  # after the last decision: runs only when the model is built
        inputs = keras.Input(spec.input_shape)
        x = keras.layers.Dense(units)(keras.layers.Flatten()(inputs))
        return keras.Model(inputs, keras.layers.Dense(spec.num_classes)(x))

    space = UserSpace(build, SPEC)
    space.check()
    assert built == [4]  # the dry build
    sample = RandomSearch(space, seed=3).ask()
    blueprint = space.blueprint(sample.architecture)
    assert built == [4]
    model = blueprint.build()
    assert built == [4, sample.architecture["units"]]
    assert model.layers[-2].units == sample.architecture["units"]


def test_a_regression_model_is_checked_against_its_targets_not_its_classes():
    import keras

    from rlnas.spaces.user import UserSpace

    spec = TaskSpec((10,), "flat", 0, task="regression", target_mean=(150.0,), target_std=(77.0,))
    space = UserSpace(lambda d, spec: None, spec)

    def model(units):
        inputs = keras.Input(spec.input_shape)
        return keras.Model(inputs, keras.layers.Dense(units)(inputs))

    space.check_model(model(1))  # one linear output for the one target
    with pytest.raises(ValueError) as e:
        space.check_model(model(2))
    assert "expected (None, 1): one unit per regression target" in str(e.value)


# -- end to end through the CLI -----------------------------------------------------------
CONFIG = """\
seed: 0
task: {{name: digits, train_subset: 100}}
space: {{build: "user_models:{build}"}}
strategy: {strategy}
child: {{epochs: 1, steps_per_epoch: 2{child}}}
search: {{children: {children}, max_failures: 5}}
controller: {{batch_size: 2}}
executor: {{kind: {executor}, workers: 2}}
final: {{epochs: 1, top_k: 1, register: false}}
tracking: {{uri: "{uri}", experiment: user}}
"""


def search(
    tmp_path, *, build="build", strategy="random", children=3, executor="inline", child="", extra=()
) -> tuple[int, dict, str]:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    text = CONFIG.format(
        build=build,
        strategy=strategy,
        children=children,
        executor=executor,
        child=child,
        uri=uri,
    )
    (tmp_path / "c.yaml").write_text(textwrap.dedent(text))
    out = tmp_path / "s.json"
    status = cli.main(
        ["search", "-c", str(tmp_path / "c.yaml"), "--summary", str(out), "--no-progress", *extra]
    )
    return status, (json.loads(out.read_text()) if out.exists() else {}), uri


def children_of(uri: str, run_id: str):
    client = mlflow.MlflowClient(uri)
    exp = client.get_experiment_by_name("user")
    runs = client.search_runs([exp.experiment_id], f"tags.mlflow.parentRunId = '{run_id}'")
    return client, sorted(runs, key=lambda r: int(r.data.tags["rlnas.child"]))


@pytest.mark.parametrize("strategy", ["reinforce", "random", "rea"])
def test_every_strategy_searches_a_user_space_and_its_best_child_replays(tmp_path, strategy):
    status, summary, uri = search(tmp_path, strategy=strategy, children=4)
    assert status == 0 and summary["children"] == 4 and summary["failed"] == 0
    _, runs = children_of(uri, summary["run_id"])
    assert len(runs) == 4
    assert {"depth", "units_0", "act_0", "train/learning_rate"} <= set(runs[0].data.params)
    import user_models

    from rlnas.spaces.user import UserSpace

    space = UserSpace(user_models.build, SPEC)
    model = space.blueprint(summary["best_decisions"]).build()
    assert model.output_shape == (None, 10)


def test_process_workers_import_the_user_module_and_final_retrains_the_best(tmp_path, capsys):
    status, summary, uri = search(tmp_path, executor="process", children=3)
    assert status == 0 and summary["children"] == 3 and summary["failed"] == 0
    out = tmp_path / "f.json"
    assert cli.main(["final", summary["run_id"], "--uri", uri, "--summary", str(out)]) == 0
    final = json.loads(out.read_text())
    assert [m["status"] for m in final["models"]] == ["FINISHED"]
    assert final["space"] == "user_models:build"


def test_a_user_space_search_resumes_after_an_interrupt(tmp_path, monkeypatch):
    import user_models

    monkeypatch.setattr(user_models, "INTERRUPT_AT", 1)
    status, _, uri = search(tmp_path, child=", train: user_models:train_or_interrupt")
    assert status == 130
    client = mlflow.MlflowClient(uri)
    exp = client.get_experiment_by_name("user")
    parent = [
        r for r in client.search_runs([exp.experiment_id]) if "rlnas.child" not in r.data.tags
    ]
    run_id = parent[0].info.run_id
    monkeypatch.setattr(user_models, "INTERRUPT_AT", None)
    out = tmp_path / "r.json"
    assert cli.main(["resume", run_id, "--uri", uri, "--summary", str(out), "--no-progress"]) == 0
    summary = json.loads(out.read_text())
    assert summary["children"] == 3 and summary["status"] == "FINISHED"
    _, runs = children_of(uri, run_id)
    assert sorted(int(r.data.tags["rlnas.child"]) for r in runs if r.info.status == "FINISHED") == [
        0,
        1,
        2,
    ]


@pytest.mark.parametrize(
    "setting, message",
    [
        ("space: no_such_module:build", "`space`: expected an importable module"),
        ("space: user_models:missing", "`space`: expected a name that module 'user_models'"),
        ("space: user_models:NOT_CALLABLE", "`space`: expected a callable build(d, spec)"),
        ("space: user_models:no_model", "returns a keras.Model; it returned str"),
        ("space: not-a-path", "`space`: expected one of layers, nb201, nasnet, or an import"),
        ("strategy: user_models:build", "`strategy`: expected a subclass of rlnas.strategies"),
        ("child: {train: user_models:NOT_CALLABLE}", "`child.train`: expected a callable"),
        (
            "final: {width_multiplier: 2}",
            "`final.width_multiplier`: expected 1 for space `user_models:build` (its "
            "blueprints have no widths",
        ),
    ],
)
def test_bad_user_code_stops_with_one_line_and_no_mlflow_run(tmp_path, capsys, setting, message):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    body = f"task: {{name: digits}}\n{setting}\ntracking: {{uri: '{uri}'}}\n"
    if not setting.startswith("space"):
        body += "space: user_models:build\n"
    (tmp_path / "c.yaml").write_text(body)
    assert cli.main(["search", "-c", str(tmp_path / "c.yaml"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    if (tmp_path / "mlflow.db").exists():
        assert mlflow.MlflowClient(uri).search_runs(["0"]) == []


def test_a_failing_build_is_a_failed_child_with_its_traceback(tmp_path, caplog):
    status, summary, uri = search(tmp_path, build="fails_when_deep", children=4)
    assert status == 0 and 0 < summary["failed"] < 4
    client, runs = children_of(uri, summary["run_id"])
    failed = [r for r in runs if r.data.tags.get("rlnas.failure_reason")]
    assert len(failed) == summary["failed"]
    message = failed[0].data.tags["rlnas.message"]
    assert "ValueError: depth 2 is not supported" in message and "\n" not in message
    path = client.download_artifacts(failed[0].info.run_id, "traceback.txt", str(tmp_path))
    text = Path(path).read_text()
    assert "user_models.py" in text and "raise ValueError" in text


def test_a_model_that_does_not_fit_the_task_is_a_failed_child(tmp_path):
    status, summary, uri = search(tmp_path, build="wrong_head", children=2)
    assert summary["failed"] == 2
    _, runs = children_of(uri, summary["run_id"])
    assert "expected (None, 10): one unit per class" in runs[0].data.tags["rlnas.message"]


def test_own_training_loop_and_own_strategy_by_import_path(tmp_path):
    status, summary, uri = search(
        tmp_path,
        strategy="user_models:MyRandom",
        child=", train: user_models:train, keep_weights: true",
    )
    assert status == 0 and summary["failed"] == 0
    client, runs = children_of(uri, summary["run_id"])
    parent = client.get_run(summary["run_id"])
    assert parent.data.params["strategy"] == "user_models:MyRandom"
    assert all("child/accuracy" not in r.data.metrics for r in runs)  # not rlnas's loop
    best = [r for r in runs if r.data.tags["rlnas.child"] == str(summary["best_child"])][0]
    names = {a.path for a in client.list_artifacts(best.info.run_id)}
    assert "weights.weights.h5" in names
