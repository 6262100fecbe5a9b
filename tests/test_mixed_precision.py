"""``child.mixed_precision``: children compute in float16 with float32 weights and a float32
output layer; off (the default), fingerprints stay what they were before the setting."""

from __future__ import annotations

import dataclasses

import pytest

keras = pytest.importorskip("keras")
pytestmark = pytest.mark.slow

from rlnas.config import ChildConfig, TaskConfig  # noqa: E402
from rlnas.evaluators.keras_child import KerasEvaluator, _child_settings  # noqa: E402
from rlnas.keras_build import build_model  # noqa: E402
from rlnas.spaces.layers import LayersConfig, LayersSpace  # noqa: E402
from rlnas.tasks import load_task  # noqa: E402


@pytest.fixture
def float32_after():
    yield
    keras.mixed_precision.set_global_policy("float32")  # the policy is process-wide


@pytest.fixture(scope="module")
def digits():
    return load_task(TaskConfig(name="digits", train_subset=64))


def tiny_space(spec) -> LayersSpace:
    cfg = LayersConfig(num_layers=2, operations=("conv",), filters=(4,), batch_sizes=(16,))
    return LayersSpace(cfg, spec)


def test_off_by_default_and_left_out_of_the_fingerprint_when_off(digits):
    assert ChildConfig().mixed_precision is False
    settings = _child_settings(ChildConfig())
    assert "mixed_precision" not in settings
    # settings added after fingerprints existed enter them only when set (or measured)
    later = {"mixed_precision", "keep_weights", "latency", "train", "metric_mode"}
    assert settings == {
        k: v for k, v in dataclasses.asdict(ChildConfig()).items() if k not in later
    }
    assert _child_settings(ChildConfig(mixed_precision=True))["mixed_precision"] is True


def test_a_mixed_precision_child_computes_in_float16_and_outputs_float32(digits, float32_after):
    space = tiny_space(digits.spec)
    plain = KerasEvaluator(space, digits, ChildConfig(epochs=1)).fingerprint()
    evaluator = KerasEvaluator(space, digits, ChildConfig(epochs=1, mixed_precision=True))
    assert keras.mixed_precision.global_policy().name == "mixed_float16"
    assert evaluator.fingerprint() != plain
    sample, blueprint = space.sample(lambda d, a: a.index(True))
    model = build_model(blueprint, digits.spec)
    conv = next(layer for layer in model.layers if "conv" in layer.name)
    assert conv.compute_dtype == "float16" and conv.variable_dtype == "float32"
    assert model.get_layer("classifier").compute_dtype == "float32"
    assert model.outputs[0].dtype == "float32"
    outcome = evaluator.evaluate(sample.architecture, seed=0, number=0)
    assert 0.0 <= outcome.reward <= 1.0
