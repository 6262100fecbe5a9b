"""Keras children: every sampled architecture builds, saves safely, and trains into an Outcome.

Models are tiny (a few filters, a handful of examples, one epoch) so the file stays fast.
"""

from __future__ import annotations

import dataclasses
import warnings

import keras
import numpy as np
import pytest

from rlnas.config import ChildConfig, TaskConfig
from rlnas.errors import ChildFailure
from rlnas.evaluators.keras_child import CURVES, KerasEvaluator, cost_factor
from rlnas.keras_build import build_model, compile_model, recalibrate_batch_norm
from rlnas.keras_build.cost import multiply_adds
from rlnas.spaces.layers import LayersConfig, LayersSpace
from rlnas.tasks import TaskData, TaskSpec, load_task

pytestmark = pytest.mark.slow

SMALL = LayersConfig(num_layers=5, filters=(2, 4), strides=(1, 2, 3), batch_sizes=(16,))
SPECS = {
    "digits": TaskSpec((8, 8, 1), "image", 10),
    "odd_image": TaskSpec((9, 7, 3), "image", 4, flip=True, value_range=(-1.0, 2.0)),
    "sequence": TaskSpec((40, 2), "sequence", 10, feature_std=2.0),
    "flat": TaskSpec((12,), "flat", 3),
}


def random_blueprints(space: LayersSpace, n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        yield space.sample(lambda d, allowed: int(rng.choice(np.flatnonzero(allowed))))[1]


@pytest.mark.parametrize("kind", list(SPECS))
def test_random_architectures_build_for_every_input_kind(kind):
    spec = SPECS[kind]
    space = LayersSpace(SMALL, spec)
    ops, merges = set(), set()
    for blueprint in random_blueprints(space, 20):
        model = build_model(blueprint, spec)
        assert model.input_shape == (None, *spec.input_shape)
        assert model.output_shape == (None, spec.num_classes)
        ops |= {layer.op for layer in blueprint.layers}
        merges |= {layer.merge for layer in blueprint.layers if layer.merge}
        keras.backend.clear_session(free_memory=False)
    assert merges == {"add", "concat"}
    assert len(ops) == (2 if kind == "flat" else 5)


@pytest.mark.parametrize("kind", list(SPECS))
def test_saved_child_loads_in_safe_mode_without_custom_objects(kind, tmp_path):
    spec = SPECS[kind]
    space = LayersSpace(SMALL, spec)
    # a child with skips of both merges, weight decay and strong augmentation
    blueprint = next(
        bp
        for bp in random_blueprints(space, 200, seed=1)
        if {layer.merge for layer in bp.layers} >= {"add", "concat"}
    )
    blueprint = dataclasses.replace(
        blueprint,
        training=dataclasses.replace(blueprint.training, augment="strong", weight_decay=1e-3),
    )
    model = compile_model(build_model(blueprint, spec), blueprint.training)
    x = np.random.default_rng(0).normal(size=(6, *spec.input_shape)).astype("float32")
    model.fit(x, np.arange(6) % spec.num_classes, epochs=1, verbose=0)
    path = tmp_path / "child.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
    keras.backend.clear_session(free_memory=False)


def test_augmentation_acts_in_training_only_and_never_flips_digits():
    space = LayersSpace(
        LayersConfig(num_layers=1, operations=("conv",), filters=(4,)), SPECS["digits"]
    )
    blueprint = next(random_blueprints(space, 1))
    strong = dataclasses.replace(blueprint.training, augment="strong")
    for name, spec in SPECS.items():
        if name == "flat":
            continue
        model = build_model(dataclasses.replace(blueprint, training=strong), spec)
        names = {layer.name for layer in model.layers}
        assert ("augment_flip" in names) == spec.flip
        assert "augment_shift" in names
        x = np.random.default_rng(0).uniform(size=(4, *spec.input_shape)).astype("float32")
        np.testing.assert_array_equal(model(x, training=False), model(x, training=False))
        assert not np.allclose(model(x, training=True), model(x, training=False))
    plain = build_model(blueprint, SPECS["digits"])
    assert not any(layer.name.startswith("augment") for layer in plain.layers)
    keras.backend.clear_session(free_memory=False)


def test_light_image_augmentation_moves_whole_pixels_and_does_not_rotate():
    space = LayersSpace(
        LayersConfig(num_layers=1, operations=("conv",), filters=(4,)), SPECS["digits"]
    )
    blueprint = next(random_blueprints(space, 1))
    light = dataclasses.replace(blueprint.training, augment="light")
    model = build_model(dataclasses.replace(blueprint, training=light), SPECS["digits"])
    names = [layer.name for layer in model.layers]
    assert "augment_shift" in names and "augment_rotate" not in names
    shift = model.get_layer("augment_shift")
    x = np.random.default_rng(1).uniform(size=(8, *SPECS["digits"].input_shape))
    moved = np.asarray(shift(x.astype("float32"), training=True))
    assert not np.allclose(moved, x)  # shifted ...
    assert np.isin(moved, x.astype("float32")).all()  # ... by whole pixels: no new values
    keras.backend.clear_session(free_memory=False)


def test_batch_norm_statistics_are_re_estimated_on_training_data():
    inputs = keras.Input((3,))
    bn = keras.layers.BatchNormalization(momentum=0.9)
    model = keras.Model(inputs, bn(inputs))
    x = np.random.default_rng(0).normal(loc=[1.0, -2.0, 5.0], size=(12, 3)).astype("float32")
    assert recalibrate_batch_norm(model, x, batch_size=4) == 1
    np.testing.assert_allclose(bn.moving_mean.numpy(), x.mean(axis=0), rtol=1e-5)
    batch_vars = np.mean([x[i : i + 4].var(axis=0) for i in (0, 4, 8)], axis=0)
    np.testing.assert_allclose(bn.moving_variance.numpy(), batch_vars, rtol=1e-4)
    assert bn.momentum == 0.9


# -- the evaluator --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def digits() -> TaskData:
    return load_task(TaskConfig(name="digits", train_subset=64))


def tiny_space(spec: TaskSpec, **changes) -> LayersSpace:
    settings = dict(num_layers=2, operations=("conv",), filters=(4,), batch_sizes=(16,))
    return LayersSpace(LayersConfig(**(settings | changes)), spec)


def test_one_real_digits_child(digits):
    space = tiny_space(digits.spec)
    data = dataclasses.replace(digits, x_test=None, y_test=None)  # the test split is never read
    evaluator = KerasEvaluator(space, data, ChildConfig(epochs=1))
    sample, blueprint = space.sample(lambda d, a: a.index(True))
    outcome = evaluator.evaluate(sample.architecture, seed=0, number=0)
    assert 0.0 <= outcome.reward <= 1.0
    assert outcome.reward == outcome.metrics["val_accuracy"] == outcome.history["val_accuracy"][-1]
    assert set(outcome.metrics) == {"val_accuracy", "val_loss", "accuracy", "loss", "params",
                                    "mmacs", "train_seconds"}  # fmt: skip
    assert {k: len(v) for k, v in outcome.history.items()} == dict.fromkeys(
        ("loss", "accuracy", "val_loss", "val_accuracy"), 1
    )
    assert outcome.cost == outcome.metrics["train_seconds"] > 0
    expected_params = build_model(blueprint, digits.spec).count_params()
    assert outcome.metrics["params"] == expected_params
    summary = outcome.texts["model_summary.txt"]
    assert "layer0_conv" in summary and f"Total params: {expected_params:,}" in summary


def test_multiply_adds_count_every_kind_of_kernel():
    inp = keras.Input((12, 10, 3))
    x = keras.layers.Conv2D(4, 3, strides=2, padding="same")(inp)  # 6x5 positions
    x = keras.layers.SeparableConv2D(8, 3, padding="same")(x)
    x = keras.layers.DepthwiseConv2D(3, dilation_rate=2, padding="same")(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.MaxPooling2D()(x)  # 3x2 positions
    x = keras.layers.Dense(5)(x)  # applied at each of the 3x2 positions
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(2)(x)
    model = keras.Model(inp, out)
    expected = 30 * (9 * 3 * 4) + 30 * (9 * 4 + 4 * 8) + 30 * (9 * 8) + 6 * (8 * 5) + 5 * 2
    assert multiply_adds(model) == expected


def test_cost_target_scales_the_reward_of_costly_children(digits):
    space = tiny_space(digits.spec)
    arch = space.sample(lambda d, a: a.index(True))[0].architecture
    free = KerasEvaluator(space, digits, ChildConfig(epochs=1)).evaluate(arch, seed=3, number=0)
    mmacs = free.metrics["mmacs"]
    assert mmacs > 0 and free.reward == free.metrics["val_accuracy"]
    above = ChildConfig(epochs=1, target_mmacs=mmacs / 4, cost_exponent=-0.5)
    scaled = KerasEvaluator(space, digits, above).evaluate(arch, seed=3, number=0)
    assert scaled.metrics["mmacs"] == mmacs
    assert scaled.reward == pytest.approx(scaled.metrics["val_accuracy"] * 0.5)
    assert cost_factor(mmacs, ChildConfig(target_mmacs=mmacs)) == 1.0  # at the target: no cost


def test_val_loss_metric_and_step_budget(digits):
    space = tiny_space(digits.spec)
    evaluator = KerasEvaluator(
        space, digits, ChildConfig(epochs=3, steps_per_epoch=2, metric="val_loss")
    )
    arch = space.sample(lambda d, a: a.index(True))[0].architecture
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # Keras warns when it runs out of batches
        outcome = evaluator.evaluate(arch, seed=1, number=1)
    assert outcome.reward == -outcome.metrics["val_loss"]
    assert len(outcome.history["loss"]) == 3
    assert len(outcome.history["val_loss"]) == 1  # child.validate: last


def test_validation_after_every_epoch_when_asked(digits):
    space = tiny_space(digits.spec)
    evaluator = KerasEvaluator(space, digits, ChildConfig(epochs=2, validate="every_epoch"))
    arch = space.sample(lambda d, a: a.index(True))[0].architecture
    outcome = evaluator.evaluate(arch, seed=1, number=1)
    assert {k: len(v) for k, v in outcome.history.items()} == dict.fromkeys(CURVES, 2)
    assert outcome.reward == outcome.history["val_accuracy"][-1]


def test_nan_loss_fails_the_child(digits):
    x = digits.x_train.copy()
    x[::2] = np.inf
    data = dataclasses.replace(digits, x_train=x)
    evaluator = KerasEvaluator(tiny_space(digits.spec), data, ChildConfig(epochs=2))
    arch = evaluator.space.sample(lambda d, a: a.index(True))[0].architecture
    with pytest.raises(ChildFailure, match=r"loss became nan in epoch 1 ") as info:
        evaluator.evaluate(arch, seed=0, number=3)
    assert info.value.reason == "nan_loss"


def test_unbuildable_children_fail_with_the_reason(digits, monkeypatch):
    space = tiny_space(digits.spec)
    evaluator = KerasEvaluator(space, digits, ChildConfig())
    arch = space.sample(lambda d, a: a.index(True))[0].architecture
    with pytest.raises(ChildFailure, match="decision `layer_0/op`: value 'pool'") as info:
        evaluator.evaluate(dict(arch) | {"layer_0/op": "pool"}, seed=0, number=4)
    assert info.value.reason == "unbuildable"

    def broken(blueprint, spec):
        raise ValueError("negative dimension size\nsecond line")

    monkeypatch.setattr("rlnas.evaluators.keras_child.build_model", broken)
    with pytest.raises(ChildFailure, match="child 5 cannot be built: ValueError: negative d"):
        evaluator.evaluate(arch, seed=0, number=5)


def test_fingerprint_names_the_data_and_the_training_settings(digits):
    space = tiny_space(digits.spec)
    fp = KerasEvaluator(space, digits, ChildConfig(epochs=1)).fingerprint()
    assert fp == KerasEvaluator(space, digits, ChildConfig(epochs=1)).fingerprint()
    assert fp != KerasEvaluator(space, digits, ChildConfig(epochs=2)).fingerprint()
    other = load_task(TaskConfig(name="digits", train_subset=64, split_seed=1))
    assert fp != KerasEvaluator(space, other, ChildConfig(epochs=1)).fingerprint()


def test_fixed_reductions_pool_after_their_layers(digits):
    cfg = LayersConfig(num_layers=3, operations=("conv",), filters=(4,), strides=(1,),
                       reduce_after=(0, 1))  # fmt: skip
    space = LayersSpace(cfg, digits.spec)
    skip_all = lambda d, allowed: len(allowed) - 1  # noqa: E731 (also takes every skip)
    _, blueprint = space.sample(skip_all)
    model = build_model(blueprint, digits.spec)
    shapes = {layer.name: tuple(layer.output.shape[1:3]) for layer in model.layers}
    assert shapes["layer0_reduce"] == (4, 4) and shapes["layer1_reduce"] == (2, 2)
    assert shapes["layer2_conv"] == (2, 2)  # the skip from layer 0 is pooled down to it
