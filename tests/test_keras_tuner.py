"""rlnas.keras_tuner: KerasTuner's loop driven by the REINFORCE controller.

Most tests run KerasTuner's real loop (``Tuner.search``) with a formula in place of training
(:class:`Formula`); one trains tiny Keras models on scikit-learn's digits end to end.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

keras_tuner = pytest.importorskip("keras_tuner")

from rlnas.errors import ControllerError, SpaceError  # noqa: E402
from rlnas.keras_tuner import ReinforceOracle  # noqa: E402
from rlnas.strategies.reinforce import ReinforceConfig  # noqa: E402

MAX = keras_tuner.Objective("score", "max")


class Formula(keras_tuner.Tuner):
    """KerasTuner's own loop; a trial builds the hypermodel (registering what it declares)
    and scores its values with ``score(values)`` instead of training."""

    def __init__(self, score, **kwargs):
        super().__init__(**kwargs)
        self.score = score

    def run_trial(self, trial, *args, **kwargs):
        self.hypermodel.build(trial.hyperparameters)
        return {"score": float(self.score(trial.hyperparameters.values))}


def tune(tmp_path, build, score, oracle, name="p", overwrite=True):
    tuner = Formula(
        score,
        oracle=oracle,
        hypermodel=build,
        directory=str(tmp_path),
        project_name=name,
        overwrite=overwrite,
    )
    tuner.search(verbose=0)
    return tuner


def values_in_order(oracle):
    return [oracle.trials[k].hyperparameters.values for k in sorted(oracle.trials, key=int)]


# -- hyperparameters to decisions -----------------------------------------------------------
def test_hyperparameter_types_map_to_decisions_and_values():
    oracle = ReinforceOracle(objective=MAX, seed=3)
    hp = oracle.hyperparameters
    hp.Choice("act", ["relu", "tanh", "gelu"])
    hp.Boolean("bn")
    hp.Int("units", 32, 128, step=32)
    hp.Float("lr", 1e-4, 1e-2, step=10, sampling="log")
    hp.Float("dropout", 0.0, 0.5, step=0.25)
    hp.Float("decay", 1e-5, 1e-3, sampling="log")  # no step: a grid of grid_points values
    hp.Int("depth", 1, 3)
    hp.Fixed("epochs", 3)
    response = oracle.populate_space("0")
    assert response["status"] == "RUNNING"
    decisions = {d["name"]: d["choices"] for d in oracle.space.describe()["decisions"]}
    assert decisions["act"] == ["relu", "tanh", "gelu"]
    assert decisions["bn"] == [False, True]
    assert decisions["units"] == [32, 64, 96, 128]
    assert decisions["lr"] == [1e-4, 1e-3, 1e-2]
    assert decisions["dropout"] == [0.0, 0.25, 0.5]
    assert decisions["depth"] == [1, 2, 3]
    decay = decisions["decay"]
    assert len(decay) == 10 and decay[0] == pytest.approx(1e-5) and decay[-1] == 1e-3
    assert np.allclose(np.diff(np.log(decay)), np.log(10) / 4.5)  # even in log scale
    assert "epochs" not in decisions  # a fixed value is no decision
    values = response["values"]
    assert values["epochs"] == 3
    for name, choices in decisions.items():
        assert values[name] in choices
    assert type(values["units"]) is int and type(values["bn"]) is bool
    assert type(values["lr"]) is float


def test_too_many_values_is_one_clear_error():
    oracle = ReinforceOracle(objective=MAX, max_choices=50)
    oracle.hyperparameters.Int("units", 1, 1000)
    with pytest.raises(SpaceError, match=r"`units` has .* more than max_choices=50"):
        oracle.populate_space("0")


def test_conditional_scopes_become_inactive_decisions():
    oracle = ReinforceOracle(objective=MAX, seed=0, unique=False)
    hp = oracle.hyperparameters
    hp.Choice("model", ["mlp", "cnn"])
    with hp.conditional_scope("model", ["mlp"]):
        hp.Int("units", 16, 64, step=16)
        hp.Choice("size", [1, 2])
    with hp.conditional_scope("model", ["cnn"]):
        hp.Choice("filters", [8, 16])
        hp.Choice("size", [3, 5])  # the same name in another scope
    names = None
    seen = set()
    for i in range(30):
        values = oracle.populate_space(str(i))["values"]
        sample = oracle._asked[str(i)]
        names = [d.name for d in oracle.space.signature]
        active = {n for n, a in zip(names, sample.actions) if a >= 0}
        if values["model"] == "mlp":
            assert active == {"model", "units", "size"}
            assert set(values) == {"model", "units", "size"} and values["size"] in (1, 2)
        else:
            assert active == {"model", "filters", "size~2"}
            assert set(values) == {"model", "filters", "size"} and values["size"] in (3, 5)
        seen.add(values["model"])
    assert names == ["model", "units", "size", "filters", "size~2"]
    assert seen == {"mlp", "cnn"}


def test_conditional_scopes_through_keras_tuner(tmp_path):
    def build(hp):
        kind = hp.Choice("model", ["mlp", "cnn"])
        with hp.conditional_scope("model", ["mlp"]):
            if kind == "mlp":
                hp.Int("units", 16, 64, step=16)
        with hp.conditional_scope("model", ["cnn"]):
            if kind == "cnn":
                hp.Choice("filters", [8, 16])

    oracle = ReinforceOracle(objective=MAX, max_trials=8, seed=1)
    tune(tmp_path, build, lambda v: v.get("units", 0) / 64, oracle)
    for values in values_in_order(oracle):
        assert ("units" in values) == (values["model"] == "mlp")
        assert ("filters" in values) == (values["model"] == "cnn")


# -- a space that grows --------------------------------------------------------------------
def build_loop(hp):
    for i in range(hp.Int("layers", 1, 3)):
        hp.Choice(f"units_{i}", [8, 16, 32])


def test_hyperparameters_that_appear_after_the_first_build(tmp_path):
    oracle = ReinforceOracle(
        objective=MAX, max_trials=25, seed=0, config=ReinforceConfig(batch_size=2)
    )
    tuner = Formula(
        lambda v: v["layers"] / 3,
        oracle=oracle,
        hypermodel=build_loop,
        directory=str(tmp_path),
        project_name="grow",
        overwrite=True,
    )
    # KerasTuner's start-up build registered what the defaults reach
    assert [hp.name for hp in oracle.hyperparameters.space] == ["layers", "units_0"]
    tuner.search(verbose=0)
    assert [d.name for d in oracle.space.signature] == ["layers", "units_0", "units_1", "units_2"]
    assert len(oracle.trials) == 25
    assert all(t.status == "COMPLETED" for t in oracle.trials.values())
    hashes = {json.dumps(v, sort_keys=True) for v in values_in_order(oracle)}
    assert len(hashes) == 25  # no values proposed twice, across the growth


def test_a_grown_space_keeps_what_the_shared_decisions_learnt():
    oracle = ReinforceOracle(objective=MAX, seed=0)
    oracle.hyperparameters.Choice("a", [1, 2, 3])
    oracle.populate_space("0")
    first = oracle.controller
    oracle.populate_space("1")
    assert oracle.controller is first  # the same space: the same controller
    first.policy.weights = [w + 0.5 for w in first.policy.weights]  # as if it had learnt
    first.policy_changed()
    oracle.hyperparameters.Choice("b", [True, False])
    oracle.populate_space("2")
    grown = oracle.controller
    assert grown is not first and [d.name for d in grown.space.signature] == ["a", "b"]
    lstm = slice(1, 4)  # kernel, recurrent kernel, bias: copied whole
    for old, new in zip(first.policy.weights[lstm], grown.policy.weights[lstm]):
        np.testing.assert_array_equal(old, new)
    old_w, new_w = first.policy.weights[4], grown.policy.weights[4]
    np.testing.assert_array_equal(old_w[:, :3], new_w[:, :3])  # the head of `a`
    assert not np.array_equal(new_w[:, 3:5], old_w[:, :2])  # `b` starts fresh


# -- rewards and learning ------------------------------------------------------------------
TARGET = {f"d{i}": i % 4 for i in range(6)}


def build_six(hp):
    for name in TARGET:
        hp.Choice(name, [0, 1, 2, 3])


def toy_score(values):
    return sum(values[k] == t for k, t in TARGET.items()) / len(TARGET)


def test_reinforce_beats_random_search_on_a_toy_objective(tmp_path):
    late = {"reinforce": [], "random": []}
    for seed in (1, 2, 3):
        oracles = {
            "reinforce": ReinforceOracle(objective=MAX, max_trials=60, seed=seed),
            "random": keras_tuner.oracles.RandomSearchOracle(
                objective=MAX, max_trials=60, seed=seed
            ),
        }
        for kind, oracle in oracles.items():
            tune(tmp_path, build_six, toy_score, oracle, name=f"{kind}{seed}")
            scores = [oracle.trials[k].score for k in sorted(oracle.trials)]
            late[kind].append(np.mean(scores[30:]))
    assert np.mean(late["reinforce"]) > np.mean(late["random"]) + 0.15, late


def test_a_minimised_objective_is_told_negated(tmp_path):
    oracle = ReinforceOracle(
        objective=keras_tuner.Objective("score", "min"),
        max_trials=4,
        seed=0,
        config=ReinforceConfig(batch_size=100),  # no update: the rewards wait in `pending`
    )
    tune(tmp_path, build_six, toy_score, oracle)
    told = [r for _, r in oracle.controller.pending]
    scores = [oracle.trials[k].score for k in sorted(oracle.trials)]
    assert told == pytest.approx([-s for s in scores])


# -- resume, warm starts ---------------------------------------------------------------------
def test_resume_continues_exactly_where_it_stopped(tmp_path):
    whole = ReinforceOracle(objective=MAX, max_trials=12, seed=5)
    tune(tmp_path, build_six, toy_score, whole, name="whole")
    tune(
        tmp_path,
        build_six,
        toy_score,
        ReinforceOracle(objective=MAX, max_trials=7, seed=5),
        name="cut",
    )
    resumed = ReinforceOracle(objective=MAX, max_trials=12, seed=5)
    tuner = tune(tmp_path, build_six, toy_score, resumed, name="cut", overwrite=False)
    assert tuner.oracle is resumed and len(resumed.trials) == 12
    assert values_in_order(resumed) == values_in_order(whole)
    for a, b in zip(resumed.controller.policy.weights, whole.controller.policy.weights):
        np.testing.assert_array_equal(a, b)


def test_state_survives_json(tmp_path):
    oracle = ReinforceOracle(objective=MAX, max_trials=5, seed=2)
    tune(tmp_path, build_six, toy_score, oracle)
    state = json.loads(json.dumps(oracle.get_state()))
    copy = ReinforceOracle(objective=MAX, max_trials=5, seed=2)
    copy.trials = oracle.trials
    copy.set_state(state)
    assert copy.controller.state_dict().keys() == oracle.controller.state_dict().keys()
    assert copy.controller.step == oracle.controller.step
    assert copy.populate_space("5")["values"] == oracle.populate_space("5")["values"]


def test_warm_start_from_a_saved_controller(tmp_path):
    trained = ReinforceOracle(objective=MAX, max_trials=20, seed=0)
    tune(tmp_path, build_six, toy_score, trained, name="first")
    trained.save_controller(tmp_path / "ctl", task="toy")
    warm = ReinforceOracle(objective=MAX, seed=9, warm_start=str(tmp_path / "ctl"))
    build_six(warm.hyperparameters)
    warm.populate_space("0")
    assert warm.controller.config == trained.controller.config
    for a, b in zip(warm.controller.policy.weights, trained.controller.policy.weights):
        np.testing.assert_array_equal(a, b)


def test_warm_start_from_another_space_is_one_clear_error(tmp_path):
    oracle = ReinforceOracle(objective=MAX, max_trials=2, warm_start="controllers/nb201-cifar10")
    with pytest.raises(ControllerError, match=r"^warm_start: .* shares no decision"):
        tune(tmp_path, build_six, toy_score, oracle)
    assert oracle.trials == {}  # before any trial


# -- end to end: a ten-line KerasTuner script, tracked in MLflow ----------------------------
@pytest.mark.slow
def test_ten_line_script_on_digits_tracked_in_mlflow(tmp_path):
    import keras
    from mlflow import MlflowClient
    from sklearn.datasets import load_digits

    def build(hp):
        model = keras.Sequential(
            [
                keras.Input((64,)),
                keras.layers.Dense(
                    hp.Int("units", 16, 64, step=16), activation=hp.Choice("act", ["relu", "tanh"])
                ),
                keras.layers.Dense(10, activation="softmax"),
            ]
        )
        lr = hp.Float("lr", 1e-3, 1e-2, step=10, sampling="log")
        model.compile(
            keras.optimizers.Adam(lr), "sparse_categorical_crossentropy", metrics=["accuracy"]
        )
        return model

    x, y = load_digits(return_X_y=True)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    oracle = ReinforceOracle(
        objective="val_accuracy", max_trials=3, seed=0, tracking_uri=uri, experiment="kt"
    )
    tuner = keras_tuner.Tuner(
        oracle=oracle,
        hypermodel=build,
        directory=str(tmp_path),
        project_name="digits",
        overwrite=True,
    )
    tuner.search(x[:600] / 16, y[:600], validation_split=0.3, epochs=1, verbose=0)

    best = tuner.get_best_hyperparameters()[0].values
    assert best["units"] in (16, 32, 48, 64) and best["act"] in ("relu", "tanh")
    client = MlflowClient(uri)
    parent = client.get_run(oracle.run_id)
    assert parent.info.status == "FINISHED" and parent.data.tags["rlnas.kind"] == "search"
    assert parent.data.metrics["search/children"] == 3
    children = client.search_runs(
        [parent.info.experiment_id], f"tags.mlflow.parentRunId = '{oracle.run_id}'"
    )
    scores = sorted(t.score for t in oracle.trials.values())
    assert sorted(r.data.metrics["reward"] for r in children) == pytest.approx(scores)
    assert {r.data.params["act"] for r in children} <= {"relu", "tanh"}
    artifacts = {a.path for a in client.list_artifacts(oracle.run_id)}
    assert {"space.json", "best_architecture.json", "controller"} <= artifacts


def test_warm_start_from_the_zoo_transfers_the_decisions_named_alike():
    def oracle(**kwargs):
        o = ReinforceOracle(objective=MAX, **kwargs)
        o.hyperparameters.Choice("layer_0/op", ["conv", "sepconv", "maxpool", "identity"])
        o.hyperparameters.Choice("train/optimizer", ["adam", "rmsprop"])
        o.hyperparameters.Choice("width", [8, 16])  # not in the saved space: starts fresh
        o.populate_space("0")
        return o.controller.policy.weights

    source = "controllers/mnist1d-layers"
    warm, again, cold = (
        oracle(seed=1, warm_start=source),
        oracle(seed=2, warm_start=source),
        oracle(seed=1),
    )
    np.testing.assert_array_equal(warm[1], again[1])  # the LSTM kernel: from the file
    assert not np.array_equal(warm[1], cold[1])
    assert not np.array_equal(warm[4][:, 6:8], again[4][:, 6:8])  # `width`'s head: fresh
