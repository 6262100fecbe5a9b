"""Guards on the private Keras and TensorFlow APIs that rlnas relies on.

rlnas reads two private attributes of its frameworks. Each test here fails with a message
naming the rlnas function that depends on the attribute, so that an upgrade that moves or
removes it is noticed at once instead of degrading silently (a summary without inputs, a
search whose memory grows child after child).
"""

from __future__ import annotations

import keras
import pytest
import tensorflow as tf

from rlnas.keras_build.summary import summary_text
from rlnas.keras_build.tf_state import PREFIX, forget_child_gradients, gradient_registry


def _two_dense_layers() -> keras.Model:
    inputs = keras.Input((3,), name="x")
    hidden = keras.layers.Dense(4, name="first")(inputs)
    return keras.Model(inputs, keras.layers.Dense(2, name="second")(hidden), name="tiny")


def test_keras_inbound_nodes_name_the_layers_a_layer_reads() -> None:
    where = (
        "rlnas.keras_build.summary.summary_text lists the layers each layer reads through "
        f"Keras's private Layer._inbound_nodes[0].parent_nodes[i].operation; Keras "
        f"{keras.__version__} "
    )
    second = _two_dense_layers().get_layer("second")
    nodes = getattr(second, "_inbound_nodes", None)
    if not nodes:
        pytest.fail(where + "has no Layer._inbound_nodes: update summary_text.")
    try:
        parents = [p.operation.name for p in nodes[0].parent_nodes]
    except AttributeError as exc:
        pytest.fail(where + f"changed the node's shape ({exc}): update summary_text.")
    assert parents == ["first"], where + f"gives {parents} for the layer after `first`."


def test_summary_lists_each_layers_inputs() -> None:
    rows = {
        line.split()[0]: line.split()
        for line in summary_text(_two_dense_layers()).splitlines()[2:]
        if line
    }
    assert rows["second"][-1] == "first" and rows["first"][-1] == "x"


def test_tensorflow_gradient_registry_is_emptied_after_a_child() -> None:
    where = (
        "rlnas.keras_build.tf_state.forget_child_gradients drops the gradients each child "
        "registers in TensorFlow's private ops._gradient_registry._registry (else memory grows "
        f"with every child); TensorFlow {tf.__version__} "
    )
    registry = gradient_registry()
    if registry is None:
        pytest.fail(where + "has no such dict: update rlnas.keras_build.tf_state.")

    @tf.custom_gradient
    def double(x):
        return 2.0 * x, lambda dy: 2.0 * dy

    before = set(registry)
    with forget_child_gradients():
        tf.function(double)(tf.constant(1.0))  # a graph-mode trace registers a gradient
        added = [k for k in registry if k not in before]
        if not any(k.startswith(PREFIX) for k in added):
            pytest.fail(where + f"registered {added} instead of {PREFIX}* entries.")
    assert not [k for k in registry if k not in before], where + "kept the child's gradients."
