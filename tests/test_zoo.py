"""Saved controllers: Keras weights + JSON card, loaded back only into the same space."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rlnas import zoo
from rlnas.errors import ConfigError, ControllerError, TrackingError
from rlnas.space import Space
from rlnas.strategies.reinforce import ReinforceConfig, ReinforceController

pytest.importorskip("tensorflow")
CFG = ReinforceConfig(hidden_size=16, batch_size=50)


class OtherToy(Space):
    """The toy space with other widths, no `depth` and a new decision."""

    name = "toy"

    def declare(self, d):
        width = d.choice("width", [8, 16, 128])
        act = d.choice("act", ["relu", "tanh", "gelu"])
        norm = d.choice("norm", ["batch", "layer"])
        dropout = d.choice("dropout", [0.0, 0.25, 0.5])
        return width, act, norm, dropout


def weights(controller):
    return [w.numpy() for w in controller.keras_model.weights]


@pytest.fixture
def saved(tmp_path, toy_space):
    controller = ReinforceController(toy_space, CFG, seed=1)
    folder = tmp_path / "controllers" / "toy"
    card = zoo.save_controller(controller, folder, task="t1", children=5, best_reward=0.9)
    return controller, folder, card


def test_folder_holds_keras_weights_and_a_card(saved, toy_space):
    controller, folder, card = saved
    assert sorted(p.name for p in folder.iterdir()) == ["card.json", "controller.weights.h5"]
    assert (folder / "controller.weights.h5").read_bytes()[:4] == b"\x89HDF"  # HDF5, no pickle
    data = json.loads((folder / "card.json").read_text())
    assert data["format"] == "rlnas-controller" and data["format_version"] == 1
    assert data["space"] == json.loads(json.dumps(toy_space.describe()))
    assert data["controller"]["hidden_size"] == 16 and "from_" not in data["controller"]
    assert data["tasks"] == ["t1"] and data["children"] == 5 and data["best_reward"] == 0.9
    assert data["rlnas_version"] == __import__("rlnas").__version__
    assert len(data["lineage"]) == 1 and data["lineage"][0]["task"] == "t1"
    assert zoo.read_card(folder) == card
    assert [d.name for d in card.signature()] == [d.name for d in toy_space.signature]


def test_load_restores_the_policy(saved, toy_space):
    controller, folder, _ = saved
    loaded = zoo.load_controller(str(folder), toy_space, seed=7)
    fresh = ReinforceController(toy_space, CFG, seed=7)
    for a, b in zip(weights(controller), weights(loaded)):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, c) for a, c in zip(weights(loaded), weights(fresh)))
    assert loaded.greedy() == controller.greedy()
    assert loaded.config.batch_size == CFG.batch_size  # settings from the card


class Unrelated(Space):
    """A space with no decision in common with the toy space."""

    name = "unrelated"

    def declare(self, d):
        return d.choice("colour", ["red", "green"]), d.choice("size", [1, 2, 3])


def test_a_space_with_nothing_in_common_says_what_differs(saved):
    _, folder, _ = saved
    with pytest.raises(ControllerError) as err:
        zoo.load_controller(str(folder), Unrelated())
    msg = str(err.value)
    assert "shares no decision (name and choice) with this one" in msg
    assert "space 'toy' saved, 'unrelated' here" in msg
    assert "decisions only in this space: `colour`, `size`" in msg
    assert "\n" not in msg


def test_shared_decisions_transfer_and_the_rest_is_named(saved, caplog):
    controller, folder, _ = saved
    fresh = ReinforceController(OtherToy(), CFG, seed=3)
    loaded = zoo.load_controller(str(folder), OtherToy(), seed=3)
    note = caplog.text
    assert "not transferred: `width` choices [128]; `norm` (new decision)" in note
    src, dst, new = weights(controller), weights(loaded), weights(fresh)
    for k in (1, 2, 3):  # the LSTM kernels and bias are copied whole
        np.testing.assert_array_equal(dst[k], src[k])
    old_p, p = controller.policy, loaded.policy
    old_step = {d.name: d.step for d in old_p.signature}
    for t, decision in enumerate(p.signature):
        for i, choice in enumerate(decision.choices):
            col, row = p.offset[t] + i, p.base[t] + i
            if (
                decision.name in old_step
                and choice in old_p.signature[old_step[decision.name]].choices
            ):
                u = old_step[decision.name]
                j = old_p.signature[u].choices.index(choice)
                np.testing.assert_array_equal(dst[4][:, col], src[4][:, old_p.offset[u] + j])
                np.testing.assert_array_equal(dst[0][row], src[0][old_p.base[u] + j])
            else:  # width 128 and every `norm` choice keep their fresh initialisation
                np.testing.assert_array_equal(dst[4][:, col], new[4][:, col])
                np.testing.assert_array_equal(dst[0][row], new[0][row])


def test_warm_start_samples_hotter_for_the_first_updates(saved, toy_space):
    _, folder, _ = saved
    cfg = ReinforceConfig(hidden_size=16, batch_size=2, warm_updates=2, warm_temperature=3.0)
    controller = ReinforceController(toy_space, cfg, seed=0)
    assert controller.temperature == cfg.temperature
    zoo.warm_start(controller, str(folder))
    temps = []
    for _ in range(4):
        temps.append(controller.temperature)
        for _ in range(cfg.batch_size):
            controller.tell(controller.ask(), 1.0)
    assert temps == [3.0, 3.0, cfg.temperature, cfg.temperature]


def test_hidden_size_must_match(saved, toy_space):
    _, folder, _ = saved
    other = ReinforceController(toy_space, ReinforceConfig(hidden_size=8), seed=0)
    with pytest.raises(ControllerError, match=r"controller.hidden_size: .* has 16 units"):
        zoo.warm_start(other, str(folder))


def test_corrupt_or_missing_files(saved, toy_space, tmp_path):
    _, folder, _ = saved
    target = ReinforceController(toy_space, CFG, seed=0)
    weights_file = folder / "controller.weights.h5"
    data = bytearray(weights_file.read_bytes())
    data[-10] ^= 0xFF
    weights_file.write_bytes(bytes(data))
    with pytest.raises(ControllerError, match=r"controller.weights.h5' is corrupt"):
        zoo.warm_start(target, str(folder))
    weights_file.unlink()
    with pytest.raises(ControllerError, match=r"controller.weights.h5' does not exist"):
        zoo.warm_start(target, str(folder))
    card = json.loads((folder / "card.json").read_text())
    (folder / "card.json").write_text(json.dumps({**card, "format_version": 99}))
    with pytest.raises(ControllerError, match=r"card format version 99 is newer"):
        zoo.read_card(folder)
    (folder / "card.json").write_text("{not json")
    with pytest.raises(ControllerError, match=r"card.json' is not valid JSON"):
        zoo.read_card(folder)
    with pytest.raises(ControllerError, match=r"controller.from: '.*nowhere' is not a saved"):
        zoo.warm_start(target, str(tmp_path / "nowhere"))


def test_a_warm_started_controller_records_its_lineage(saved, toy_space, tmp_path):
    _, folder, _ = saved
    controller = ReinforceController(toy_space, CFG, seed=3)
    zoo.warm_start(controller, str(folder))
    card = zoo.save_controller(
        controller, tmp_path / "second", task="t2", children=3, best_reward=0.5
    )
    assert card.tasks == ["t1", "t2"] and card.children == 8
    assert [e["task"] for e in card.lineage] == ["t1", "t2"]


def test_save_controller_names_are_checked(tmp_path):
    with pytest.raises(ConfigError, match=r"--save-controller: expected a name"):
        zoo.controller_dir("../x", tmp_path)
    (tmp_path / "taken").mkdir()
    with pytest.raises(ConfigError, match=r"already exists"):
        zoo.controller_dir("taken", tmp_path)
    assert zoo.controller_dir("ok-1.2_b", tmp_path) == tmp_path / "ok-1.2_b"


def test_controller_artifact_of_a_tracked_search_loads_by_run_uri(
    tmp_path, toy_space, toy_evaluator
):
    from rlnas.executors import InlineExecutor
    from rlnas.search import Budget, Search
    from rlnas.tracking import MLflowTracker

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    saver = zoo.ControllerSaver()
    tracker = MLflowTracker(uri, "zoo", task="toytask", artifacts=[saver])
    controller = ReinforceController(toy_space, CFG, seed=5)
    Search(controller, InlineExecutor(toy_evaluator()), Budget(3), observers=[tracker]).run()
    assert saver.card.tasks == ["toytask"]
    loaded = zoo.load_controller(f"runs:/{tracker.run_id}/controller", toy_space, tracking_uri=uri)
    for a, b in zip(weights(controller), weights(loaded)):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(TrackingError, match=r"runs:/0123456789abcdef/controller' cannot be"):
        zoo.load_controller("runs:/0123456789abcdef/controller", toy_space, tracking_uri=uri)
