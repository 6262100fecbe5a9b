"""The super-network computes each child's function, and a new child never retraces."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow")

import keras  # noqa: E402

from rlnas.keras_build import build_layers_model  # noqa: E402
from rlnas.keras_build.supernet import SuperNet, load_child_weights  # noqa: E402
from rlnas.spaces.layers import LayersConfig, LayersSpace  # noqa: E402
from rlnas.strategies.random_search import RandomSearch  # noqa: E402
from rlnas.tasks import TaskSpec  # noqa: E402

ONE_TRAINING = dict(
    learning_rates=(1e-3,),
    batch_sizes=(32,),
    optimizers=("sgd",),
    dropouts=(0.0,),
    weight_decays=(0.0,),
    augmentations=("none",),
)


def _space(kind: str, stem: int | None = None) -> LayersSpace:
    if kind == "sequence":
        spec = TaskSpec(input_shape=(24, 1), input_kind="sequence", num_classes=5)
        reduce = (1,)
    else:
        spec = TaskSpec(input_shape=(8, 8, 3), input_kind="image", num_classes=4)
        reduce = (0, 2)
    cfg = LayersConfig(
        num_layers=4,
        operations=("conv", "sepconv", "maxpool", "avgpool", "identity"),
        filters=(4, 8),
        kernel_sizes=(3, 5),
        strides=(1,),
        activations=("relu", "tanh", "gelu"),
        merges=("add",),
        reduce_after=reduce,
        stem_filters=stem,
        **ONE_TRAINING,
    )
    return LayersSpace(cfg, spec)


def _architectures(space: LayersSpace, n: int, seed: int = 0):
    strategy = RandomSearch(space, seed=seed)
    return [strategy.ask().architecture for _ in range(n)]


@pytest.mark.parametrize(
    "kind, stem",
    # a stem narrower than the widest layer (padded), and one wider (the widest channels)
    [("sequence", None), ("image", None), ("sequence", 6), ("image", 12)],
)
def test_supernet_restricted_to_a_child_computes_the_standalone_child(kind, stem):
    space = _space(kind, stem)
    keras.utils.set_random_seed(1)
    net = SuperNet(space.cfg, space.spec)
    x = np.random.default_rng(0).normal(size=(16,) + space.spec.input_shape).astype("float32")
    checked_skips = checked_projections = 0
    for architecture in _architectures(space, 12, seed=3):
        blueprint = space.blueprint(architecture)
        model = build_layers_model(blueprint, space.spec)
        weights = net.child_weights(blueprint)
        load_child_weights(model, weights)
        expected = np.asarray(model(x, training=True))  # batch statistics, as the super-net
        logits = np.asarray(net.logits(x, *net.path(blueprint)))
        got = np.exp(logits - logits.max(-1, keepdims=True))
        got /= got.sum(-1, keepdims=True)
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
        checked_skips += sum(len(layer.skips) for layer in blueprint.layers)
        checked_projections += sum("proj" in name for name in weights)
    assert checked_skips and checked_projections  # the skips and projections were exercised
    assert ("stem_conv" in weights) == (stem is not None)
    if stem is not None:
        assert model.get_layer("stem_conv").filters == stem


@pytest.mark.parametrize("stem", [None, 6])
def test_layer_zero_reads_the_input_channels_not_the_widest_layer(stem):
    """Padding a 1-channel input to the widest layer's channels would make layer 0's
    convolutions cost as much as a full-width layer's: its kernels read what comes in."""
    space = _space("image", stem)
    net = SuperNet(space.cfg, space.spec)
    seen = stem or space.spec.input_shape[-1]
    first = [w for (i, _), w in net.op_weights.items() if i == 0]
    later = [w for (i, _), w in net.op_weights.items() if i == 1]
    assert first and later
    for w in first:
        assert (w["kernel"] if "kernel" in w else w["pointwise"]).shape[-2] == seen
    for w in later:
        assert (w["kernel"] if "kernel" in w else w["pointwise"]).shape[-2] == net.channels


def test_weights_differ_between_children_so_the_comparison_can_fail():
    space = _space("sequence")
    net = SuperNet(space.cfg, space.spec)
    a, b = _architectures(space, 2, seed=5)
    x = np.random.default_rng(0).normal(size=(8,) + space.spec.input_shape).astype("float32")
    la = np.asarray(net.logits(x, *net.path(space.blueprint(a))))
    lb = np.asarray(net.logits(x, *net.path(space.blueprint(b))))
    assert not np.allclose(la, lb)


def test_new_architectures_do_not_retrace():
    space = _space("sequence")
    net = SuperNet(space.cfg, space.spec)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16,) + space.spec.input_shape).astype("float32")
    y = rng.integers(0, space.spec.num_classes, size=16).astype("int32")
    architectures = _architectures(space, 20, seed=7)
    assert len({a.hash for a in architectures}) == 20
    before = [np.asarray(v).copy() for v in net.trainable_variables]
    for architecture in architectures:
        path = net.path(space.blueprint(architecture))
        loss, accuracy = net.train_step(x, y, *path)
        correct, loss_sum = net.eval_step(x[:8], y[:8], *path)
        assert np.isfinite(float(loss)) and 0 <= float(correct) <= 8
    assert net.traces == {"train": 1, "eval": 1}
    after = [np.asarray(v) for v in net.trainable_variables]
    assert any(not np.array_equal(a, b) for a, b in zip(before, after))  # it trained


def test_training_on_one_child_lowers_its_loss():
    space = _space("sequence")
    keras.utils.set_random_seed(0)
    net = SuperNet(space.cfg, space.spec)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(64,) + space.spec.input_shape).astype("float32")
    y = (x[:, :, 0].mean(axis=1) > 0).astype("int32")
    path = net.path(space.blueprint(_architectures(space, 1, seed=2)[0]))
    first = float(net.eval_step(x, y, *path)[1])
    for _ in range(30):
        net.train_step(x, y, *path)
    assert float(net.eval_step(x, y, *path)[1]) < first
