"""The `nasnet` super-network computes each child's function, and a new child never retraces."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow")

import keras  # noqa: E402

from rlnas.keras_build import build_nasnet_model  # noqa: E402
from rlnas.keras_build.nasnet_supernet import NasnetSuperNet  # noqa: E402
from rlnas.keras_build.supernet import load_child_weights  # noqa: E402
from rlnas.spaces.nasnet import OPERATIONS, NasnetConfig, NasnetSpace  # noqa: E402
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


def _space(combiners=("add", "concat"), stages: int = 1) -> NasnetSpace:
    spec = TaskSpec(input_shape=(8, 8, 3), input_kind="image", num_classes=4)
    cfg = NasnetConfig(
        num_blocks=3,
        combiners=combiners,
        cells_per_stage=1,
        reduction_stages=stages,
        stem_filters=6,
        filters=4,
        separable_repeats=2,
        **ONE_TRAINING,
    )
    return NasnetSpace(cfg, spec)


def _architectures(space: NasnetSpace, n: int, seed: int = 0):
    strategy = RandomSearch(space, seed=seed)
    return [strategy.ask().architecture for _ in range(n)]


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@pytest.mark.parametrize("combiners, stages", [(("add", "concat"), 2), (("add",), 1)])
def test_supernet_restricted_to_a_child_computes_the_standalone_child(combiners, stages):
    space = _space(combiners, stages)
    keras.utils.set_random_seed(1)
    net = NasnetSuperNet(space.cfg, space.spec)
    x = np.random.default_rng(0).normal(size=(16,) + space.spec.input_shape).astype("float32")
    seen: set[str] = set()
    for architecture in _architectures(space, 6, seed=3):
        blueprint = space.blueprint(architecture)
        model = build_nasnet_model(blueprint, space.spec)
        weights = net.child_weights(blueprint)
        # every layer of the child that has weights gets the super-network's
        assert {layer.name for layer in model.layers if layer.weights} == set(weights)
        load_child_weights(model, weights)
        expected = np.asarray(model(x, training=True))  # batch statistics, as the super-net
        got = _softmax(np.asarray(net.logits(x, *net.path(blueprint))))
        np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-5)
        seen.update(name for name in weights)
        for cell in (blueprint.normal, blueprint.reduction):
            seen.update(op for block in cell.blocks for op in block.ops)
            seen.update(block.combine for block in cell.blocks)
            seen.add(f"unused{min(len(cell.unused), 2)}")
    # what the comparison exercised: every operation, both combiners, one and several loose
    # ends, factorized reductions of cell inputs and of identities, projections of concats
    assert set(OPERATIONS) | set(combiners) | {"unused1", "unused2"} <= seen
    assert any(name.endswith("_in0_path0") for name in seen)
    assert any(name.endswith("_reduce_path0") for name in seen)
    if "concat" in combiners:
        assert any(name.endswith("_proj_conv") for name in seen)


def test_weights_differ_between_children_so_the_comparison_can_fail():
    space = _space()
    net = NasnetSuperNet(space.cfg, space.spec)
    a, b = _architectures(space, 2, seed=5)
    x = np.random.default_rng(0).normal(size=(8,) + space.spec.input_shape).astype("float32")
    la = np.asarray(net.logits(x, *net.path(space.blueprint(a))))
    lb = np.asarray(net.logits(x, *net.path(space.blueprint(b))))
    assert not np.allclose(la, lb)
    # and the same operation at two positions starts from different weights
    first, second = net.w[0, 0, 0, "sep3x3"]["dw0"], net.w[0, 1, 0, "sep3x3"]["dw0"]
    assert not np.allclose(np.asarray(first), np.asarray(second))


def test_new_architectures_trace_nothing_and_train_only_their_weights():
    space = _space()
    net = NasnetSuperNet(space.cfg, space.spec)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16,) + space.spec.input_shape).astype("float32")
    y = rng.integers(0, space.spec.num_classes, size=16).astype("int32")
    architectures = _architectures(space, 20, seed=7)
    assert len({a.hash for a in architectures}) == 20
    before = {v.path: np.asarray(v).copy() for v in net.trainable_variables}
    for architecture in architectures:
        path = net.path(space.blueprint(architecture))
        loss, accuracy = net.train_step(x, y, *path)
        correct, loss_sum = net.eval_step(x[:8], y[:8], *path)
        assert np.isfinite(float(loss)) and 0 <= float(correct) <= 8
    assert net.traces == {"train": 0, "eval": 0}  # eager: no graph per child, none at all
    changed = {v.path for v in net.trainable_variables if not np.array_equal(v, before[v.path])}
    assert changed  # it trained
    # a step moves the weights of its own path only: one child's step leaves the rest alone
    net2 = NasnetSuperNet(space.cfg, space.spec)
    blueprint = space.blueprint(architectures[0])
    before = {v.path: np.asarray(v).copy() for v in net2.trainable_variables}
    net2.train_step(x, y, *net2.path(blueprint))
    changed = {v.path for v in net2.trainable_variables if not np.array_equal(v, before[v.path])}
    used = {v.path for v in _used(net2, blueprint)}
    assert changed == used


def _used(net: NasnetSuperNet, blueprint):
    """The variables of ``blueprint``'s path, found from the branches it names."""
    out = list(net.stem.values()) + [net.head, net.head_bias]
    for c, cell in enumerate(net.cells):
        spec = blueprint.reduction if cell.reduce else blueprint.normal
        taken = {i for block in spec.blocks for i in block.inputs}
        out += [v for k in (0, 1) if k in taken for v in net.w[c, f"in{k}"].values()]
        for j, block in enumerate(spec.blocks):
            for s, (i, op) in enumerate(zip(block.inputs, block.ops)):
                w = net.w[c, j, s, op]
                concat_in = i >= 2 and spec.blocks[i - 2].combine == "concat"
                if op == "identity" and cell.reduce and i < 2:
                    out += list(w["reduce"].values())
                elif op in ("identity", "max3x3", "avg3x3"):
                    out += list(w["proj"].values()) if concat_in and "proj" in w else []
                else:
                    out += list(w.values())
    return out


def test_training_on_one_child_lowers_its_loss():
    space = _space()
    keras.utils.set_random_seed(0)
    net = NasnetSuperNet(space.cfg, space.spec)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(64,) + space.spec.input_shape).astype("float32")
    y = (x[..., 0].mean(axis=(1, 2)) > 0).astype("int32")
    path = net.path(space.blueprint(_architectures(space, 1, seed=2)[0]))
    first = float(net.eval_step(x, y, *path)[1])
    for _ in range(30):
        net.train_step(x, y, *path)
    assert float(net.eval_step(x, y, *path)[1]) < first
