"""Training decisions in a weight-sharing search: fixed in the shared phase, searched when
the best children are retrained (``shared.retrain_trials``)."""

from __future__ import annotations

import json

import pytest
from test_shared_search import SHARED, _runs, _table, _write

from rlnas import cli
from rlnas.config import load_config
from rlnas.errors import FieldError
from rlnas.shared_search import with_training
from rlnas.space import Architecture, Space

TWO_RATES = ["layers.learning_rates=[0.01,0.003]"]


@pytest.mark.parametrize(
    "overrides, field, words",
    [
        (TWO_RATES, "layers.learning_rates", "set shared.retrain_trials > 1"),
        (["layers.batch_sizes=[32,64]"], "layers.batch_sizes", "cannot share weights"),
        (["shared.retrain_trials=2"], "shared.retrain_trials", "no training setting to search"),
        (["shared.retrain_trials=0"], "shared.retrain_trials", "an integer >= 1"),
        (TWO_RATES + ["shared.retrain_trials=3"], "shared.retrain_trials", "at most 2"),
        (
            TWO_RATES + ["shared.retrain_trials=2", "shared.retrain_top=0"],
            "shared.retrain_trials",
            "retrain_top 0",
        ),
    ],
)
def test_train_lists_need_retrain_trials_and_the_reverse_in_one_line(
    tmp_path, overrides, field, words
):
    path = _write(tmp_path, "sqlite:///unused.db")
    with pytest.raises(FieldError) as info:
        load_config(path, overrides)
    message = str(info.value)
    assert message.startswith(f"`{field}`") and words in message and "\n" not in message


def test_several_training_values_with_retrain_trials_are_accepted_and_the_cli_says_why_not(
    tmp_path, capsys
):
    path = _write(tmp_path, f"sqlite:///{tmp_path}/m.db")
    cfg = load_config(path, TWO_RATES + ["shared.retrain_trials=2"])
    assert cfg.shared.retrain_trials == 2 and cfg.layers.learning_rates == (0.01, 0.003)
    load_config(path, ["nasnet.optimizers=[adam,sgd]", "shared.retrain_trials=2", "space=nasnet"])
    code = cli.main(["search", "-c", path, "--set", TWO_RATES[0], "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "layers.learning_rates" in err[0] and "retrain_trials" in err[0]


class _Trained(Space):
    """A network decision and two training decisions: 3 x 2 training settings."""

    name = "trained"

    def declare(self, d):
        width = d.choice("width", [8, 16])
        lr = d.choice("train/learning_rate", [0.01, 0.003, 0.001])
        batch = d.choice("train/batch_size", [32, 64])
        return width, lr, batch


def _firsts(width: int) -> Architecture:
    return Architecture({"width": width, "train/learning_rate": 0.01, "train/batch_size": 32})


def test_each_architecture_is_tried_with_its_own_training_then_other_distinct_settings():
    space = _Trained()
    best = [_firsts(16), _firsts(8)]
    listed = with_training(space, best, 3, seed=7)
    assert listed == with_training(space, best, 3, seed=7)  # a resume rebuilds the same list
    assert listed != with_training(space, best, 3, seed=8)
    assert [a["width"] for a in listed] == [16, 16, 16, 8, 8, 8]
    assert listed[0] == best[0] and listed[3] == best[1]  # the shared phase's training first
    for group in (listed[:3], listed[3:]):
        assert len(set(group)) == 3  # distinct settings
    for arch in listed:
        space.replay(arch)  # every one is an architecture of the space
    assert with_training(space, best, 1, seed=7) == best
    # every setting once when trials is their number; its own need not be the first values
    own = Architecture({"width": 8, "train/learning_rate": 0.003, "train/batch_size": 64})
    every = with_training(space, [own], 6, seed=0)
    assert every[0] == own and len(set(every)) == 6


@pytest.mark.slow
def test_a_shared_search_retrains_its_best_with_each_training_setting_and_final_replays_them(
    tmp_path,
):
    import rlnas
    from rlnas.final_runs import prepare

    store = f"sqlite:///{tmp_path}/mlflow.db"
    config = json.loads(json.dumps(SHARED))
    config["layers"]["learning_rates"] = [0.01, 0.003]
    config["shared"].update(rescore_top=2, retrain_top=1, retrain_trials=2)
    config["search"]["children"] = 10
    result = rlnas.search(
        config=config, tracking_uri=store, experiment="shared", keep_weights=False, progress=False
    )
    client, parents, children = _runs(store)
    run_id = parents[0].info.run_id
    table = _table(client, run_id, "shared_children.csv")
    assert len(table) == 10
    assert {json.loads(r["decisions"])["train/learning_rate"] for r in table} == {0.01}
    rescored = _table(client, run_id, "shared_rescored.csv")
    assert [r["retrained_child"] for r in rescored] == ["0", ""]

    assert len(children) == 2
    decisions = {}
    for child in children:
        path = client.download_artifacts(child.info.run_id, "architecture.json")
        with open(path) as f:
            decisions[int(child.data.tags["rlnas.child"])] = json.load(f)["decisions"]
    assert Architecture(decisions[0]).hash == rescored[0]["hash"]  # as the shared phase had it
    assert decisions[0]["train/learning_rate"] == 0.01
    assert decisions[1] == {**decisions[0], "train/learning_rate": 0.003}

    # the results replay into the whole space: the Python API's and rlnas final's
    for trial in result.result.trials:
        result.space.replay(trial.architecture)
    plan = prepare(run_id, ["final.top_k=2"], store)
    rates = [blueprint.training.learning_rate for _, _, blueprint in plan.members]
    assert sorted(rates) == [0.003, 0.01]
    best = max(children, key=lambda r: (r.data.metrics["reward"], -int(r.data.tags["rlnas.child"])))
    assert plan.members[0][0].run_id == best.info.run_id
