"""The `layers` space: a fixed signature, canonical records, masks that keep children buildable.

No Keras here: the space only declares decisions and returns a framework-free blueprint.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from rlnas.config import Config, from_dict
from rlnas.errors import ConfigError, SpaceError
from rlnas.space import Architecture
from rlnas.spaces.layers import LayersBlueprint, LayersConfig, LayersSpace
from rlnas.strategies import RandomSearch
from rlnas.tasks import TaskSpec

DIGITS = TaskSpec((8, 8, 1), "image", 10)
SEQUENCE = TaskSpec((40, 1), "sequence", 10)
FLAT = TaskSpec((20,), "flat", 3)
PER_LAYER = ("op", "filters", "kernel", "stride", "activation")
TRAIN = ("learning_rate", "batch_size", "optimizer", "dropout", "weight_decay", "augment")


def random_samples(space: LayersSpace, n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        yield space.sample(lambda d, allowed: int(rng.choice(np.flatnonzero(allowed))))


def expected_names(num_layers: int, skips: bool = True) -> list[str]:
    names = []
    for i in range(num_layers):
        names += [f"layer_{i}/{k}" for k in PER_LAYER]
        if skips and i >= 2:
            names += [f"layer_{i}/skip_{j}" for j in range(i - 1)] + [f"layer_{i}/merge"]
    return names + [f"train/{k}" for k in TRAIN]


def test_signature_names_every_decision_in_a_fixed_order():
    space = LayersSpace(LayersConfig(), DIGITS)
    assert [d.name for d in space.signature] == expected_names(6)
    by_name = {d.name: d for d in space.signature}
    assert by_name["layer_3/skip_1"].choices == (False, True)
    assert by_name["layer_0/op"].choices == LayersConfig().operations
    # the signature depends on the config only, not on the input (masks do)
    for spec in (SEQUENCE, FLAT, TaskSpec((32, 32, 3), "image", 10)):
        assert LayersSpace(LayersConfig(), spec).describe() == space.describe()
    no_skips = LayersSpace(LayersConfig(num_layers=3, skip_connections=False), DIGITS)
    assert [d.name for d in no_skips.signature] == expected_names(3, skips=False)


@pytest.mark.parametrize("strides", [(1, 2), (1, 2, 4), (2, 3)])
def test_masks_keep_every_spatial_size_at_least_one(strides):
    space = LayersSpace(LayersConfig(strides=strides, operations=("conv", "maxpool")), DIGITS)
    for sample, blueprint in random_samples(space, 300):
        size = 8
        for layer in blueprint.layers:
            if 1 in strides:
                assert layer.stride <= size, (sample.architecture, size)
            size = math.ceil(size / layer.stride)
        assert size >= 1


def test_six_stride_two_layers_on_8x8_are_masked_after_the_third():
    space = LayersSpace(LayersConfig(operations=("conv",), strides=(1, 2)), DIGITS)
    always_two = lambda d, allowed: len(allowed) - 1 - allowed[::-1].index(True)  # noqa: E731
    sample, blueprint = space.sample(always_two)
    assert [layer.stride for layer in blueprint.layers] == [2, 2, 2, 1, 1, 1]
    step = next(i for i, d in enumerate(space.signature) if d.name == "layer_3/stride")
    assert sample.masks[step] == (True, False)
    record = dict(sample.architecture) | {"layer_3/stride": 2}
    with pytest.raises(SpaceError, match=r"`layer_3/stride`: value 2 is not allowed"):
        space.replay(record)


def test_replay_rebuilds_the_sampled_blueprint_and_hash():
    for spec in (DIGITS, SEQUENCE, FLAT):
        space = LayersSpace(LayersConfig(), spec)
        for sample, blueprint in random_samples(space, 40):
            replayed, again = space.replay(dict(sample.architecture))
            assert isinstance(again, LayersBlueprint) and again == blueprint
            assert replayed == sample
            shuffled = dict(reversed(list(sample.architecture.items())))
            assert Architecture(shuffled).hash == sample.architecture.hash


def test_same_seed_same_architectures():
    def draw(seed: int) -> list[str]:
        strategy = RandomSearch(LayersSpace(LayersConfig(), DIGITS), seed=seed)
        return [strategy.ask().architecture.hash for _ in range(5)]

    assert draw(3) == draw(3) and len(set(draw(3))) == 5 and draw(3) != draw(4)


def _record(**layer0) -> dict:
    """A one-layer record with training decisions."""
    record = {f"layer_0/{k}": v for k, v in layer0.items()}
    return record | {
        "train/learning_rate": 1e-3,
        "train/batch_size": 32,
        "train/optimizer": "adam",
        "train/dropout": 0.0,
        "train/weight_decay": 0.0,
        "train/augment": "none",
    }


def test_inactive_decisions_are_absent_from_records():
    space = LayersSpace(LayersConfig(num_layers=1), DIGITS)
    _, bp = space.replay(_record(op="identity"))
    assert bp.layers[0].filters is None and bp.layers[0].stride == 1
    _, bp = space.replay(_record(op="maxpool", kernel=3, stride=2))
    assert (bp.layers[0].kernel, bp.layers[0].stride, bp.layers[0].activation) == (3, 2, None)
    with pytest.raises(SpaceError, match="`layer_0/filters`, which is inactive"):
        space.replay(_record(op="maxpool", kernel=3, stride=2, filters=16))
    with pytest.raises(SpaceError, match="lacks decision `layer_0/activation`"):
        space.replay(_record(op="conv", filters=16, kernel=3, stride=1))
    for sample, bp in random_samples(LayersSpace(LayersConfig(), DIGITS), 100):
        arch = sample.architecture
        for i, layer in enumerate(bp.layers):
            assert (f"layer_{i}/merge" in arch) == bool(layer.skips)
            assert (f"layer_{i}/filters" in arch) == (layer.op in ("conv", "sepconv"))


def test_flat_inputs_use_the_mlp_variant():
    space = LayersSpace(LayersConfig(), FLAT)
    ops = set()
    for sample, bp in random_samples(space, 100):
        ops |= {layer.op for layer in bp.layers}
        assert not any(k.endswith(("/kernel", "/stride")) for k in sample.architecture)
    assert ops == {"conv", "identity"}
    with pytest.raises(ConfigError, match=r"`layers.operations`: expected conv or identity"):
        LayersSpace(LayersConfig(operations=("maxpool", "sepconv")), FLAT)


def test_layers_config_is_checked():
    with pytest.raises(
        ConfigError,
        match=r"`layers.activations`: expected values .*, got 'rlu'. Did you mean `relu`\?",
    ):
        from_dict(Config, {"layers": {"activations": ["rlu"]}})
    with pytest.raises(ConfigError, match=r"`layers.strides`: expected integers >= 1, got 0"):
        from_dict(Config, {"layers": {"strides": [0, 1]}})


def test_fixed_reductions_halve_the_size_and_mask_the_strides_after_them():
    cfg = LayersConfig(num_layers=5, operations=("conv",), strides=(1, 2), reduce_after=(0, 2))
    space = LayersSpace(cfg, DIGITS)  # 8x8 -> 4x4 after layer 0, 2x2 after layer 2
    always_two = lambda d, allowed: len(allowed) - 1 - allowed[::-1].index(True)  # noqa: E731
    sample, blueprint = space.sample(always_two)
    assert blueprint.reduce_after == (0, 2)
    # layer 0: stride 2 (8 -> 4), pooled to 2; layer 1: stride 2 (2 -> 1), the rest stride 1
    assert [layer.stride for layer in blueprint.layers] == [2, 2, 1, 1, 1]
    assert (
        LayersSpace(LayersConfig(num_layers=5), DIGITS)
        .blueprint({k: v for k, v in sample.architecture.items()})
        .reduce_after
        == ()
    )
    with pytest.raises(ConfigError, match=r"`layers.reduce_after`: expected distinct layer "):
        from_dict(Config, {"layers": {"num_layers": 3, "reduce_after": [3]}})
    with pytest.raises(ConfigError, match=r"`layers.reduce_after`: expected \[\] for flat"):
        LayersSpace(LayersConfig(reduce_after=(1,)), FLAT)


def test_widen_scales_the_filters_of_conv_layers_only_and_keeps_the_rest():
    cfg = LayersConfig(num_layers=4, operations=("conv", "sepconv", "maxpool", "identity"))
    space = LayersSpace(cfg, DIGITS)
    seen = set()
    for _, blueprint in random_samples(space, 40):
        wide = space.widen(blueprint, 1.5)
        assert wide.training == blueprint.training and wide.reduce_after == blueprint.reduce_after
        for old, new in zip(blueprint.layers, wide.layers, strict=True):
            if old.filters is None:
                assert new == old
            else:
                seen.add(old.op)
                assert new.filters == max(1, round(old.filters * 1.5))
                assert (new.op, new.kernel, new.stride, new.skips) == (
                    old.op, old.kernel, old.stride, old.skips,
                )  # fmt: skip
        assert space.widen(blueprint, 1) == blueprint
    assert seen == {"conv", "sepconv"}


def test_a_stem_is_in_every_blueprint_widens_and_is_checked():
    space = LayersSpace(LayersConfig(num_layers=3, stem_filters=24), DIGITS)
    blueprints = [bp for _, bp in random_samples(space, 10)]
    assert {bp.stem_filters for bp in blueprints} == {24}
    assert space.widen(blueprints[0], 1.5).stem_filters == 36
    assert space.widen(blueprints[0], 0.01).stem_filters == 1
    # the stem is the config's, not a decision: the same decisions without it have none
    plain = LayersSpace(LayersConfig(num_layers=3), DIGITS)
    sample = next(random_samples(space, 1))[0]
    assert plain.blueprint(dict(sample.architecture)).stem_filters is None
    with pytest.raises(
        ConfigError, match=r"`layers.stem_filters`: expected an integer in 1..4096 or null, got 0"
    ):
        from_dict(Config, {"layers": {"stem_filters": 0}})
    with pytest.raises(ConfigError, match=r"`layers.stem_filters`: expected null for flat"):
        LayersSpace(LayersConfig(stem_filters=8), FLAT)
