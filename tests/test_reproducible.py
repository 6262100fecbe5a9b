"""Reproducibility as the README states it: two uninterrupted searches with the same seed and
the inline executor give identical trials (architectures, in order, and rewards), for every
strategy, on the NAS-Bench-201 table and with real (tiny) Keras children.

Parallel executors are left out on purpose: a learning strategy sees rewards in the order
they arrive, which varies from run to run (see :mod:`rlnas.search`).
"""

from __future__ import annotations

import pytest

from rlnas import factory
from rlnas.config import load_config
from rlnas.search import Budget, Search


def trials(overrides: list[str], children: int) -> list[tuple[str, float | None, str]]:
    cfg = load_config(None, overrides)
    space = factory.make_space(cfg)
    search = Search(
        factory.make_strategy(cfg, space),
        factory.make_executor(cfg),
        Budget(children=children),
        seed=cfg.seed,
    )
    result = search.run()
    return [(t.architecture.hash, t.reward, t.state.name) for t in result.trials]


@pytest.mark.parametrize("strategy", ["reinforce", "random", "rea"])
def test_same_seed_same_table_search(strategy):
    pytest.importorskip("tensorflow") if strategy == "reinforce" else None
    sets = ["task.name=nb201", "space=nb201", f"strategy={strategy}", "evolution.population=4"]
    one = trials([*sets, "seed=3"], 12)
    assert trials([*sets, "seed=3"], 12) == one
    assert len(one) == 12 and all(state == "COMPLETE" for _, _, state in one)
    assert trials([*sets, "seed=4"], 12) != one  # the seed matters: the test can fail


@pytest.mark.slow
def test_same_seed_same_keras_search():
    pytest.importorskip("tensorflow")
    sets = [
        "task.name=digits", "task.train_subset=60", "space=layers", "strategy=reinforce",
        "layers.num_layers=2", "layers.filters=[4, 8]", "child.epochs=1", "seed=5",
    ]  # fmt: skip
    one = trials(sets, 3)
    assert trials(sets, 3) == one
    assert all(state == "COMPLETE" for _, _, state in one)
