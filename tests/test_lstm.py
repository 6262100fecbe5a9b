"""The controller's NumPy network against Keras: the LSTM forward pass equals Keras's own
``LSTM`` layer, the backward pass equals finite differences, Adam equals
``keras.optimizers.Adam``, and the policy's Keras model (what a saved controller holds) maps
tokens to the head outputs the NumPy policy computes."""

from __future__ import annotations

import numpy as np
import pytest

from rlnas.strategies import lstm
from rlnas.strategies.adam import Adam
from rlnas.strategies.reinforce import ReinforceConfig, ReinforceController

keras = pytest.importorskip("keras")


def random_lstm(hidden=5, features=3, seed=0):
    rng = np.random.default_rng(seed)
    kernel = rng.normal(0, 0.5, (features, 4 * hidden)).astype(np.float32)
    recurrent = rng.normal(0, 0.5, (hidden, 4 * hidden)).astype(np.float32)
    bias = rng.normal(0, 0.5, 4 * hidden).astype(np.float32)
    return kernel, recurrent, bias


def test_forward_equals_keras_lstm_layer():
    """Gate order (i, f, c, o) and Keras's sigmoid recurrent activation, step by step and
    batched, against ``keras.layers.LSTM`` holding the same weights."""
    kernel, recurrent, bias = random_lstm()
    inputs = np.random.default_rng(1).normal(size=(4, 6, 3)).astype(np.float32)  # (B, T, F)
    layer = keras.layers.LSTM(5, return_sequences=True, unit_forget_bias=False)
    layer.build(inputs.shape)
    layer.set_weights([kernel, recurrent, bias])
    expected = keras.ops.convert_to_numpy(layer(inputs))  # (B, T, H)

    x = np.swapaxes(inputs, 0, 1) @ kernel + bias  # (T, B, 4H): the input halves
    outputs, _ = lstm.forward(x, recurrent)
    np.testing.assert_allclose(np.swapaxes(outputs, 0, 1), expected, atol=1e-5)
    h = c = np.zeros(5, np.float32)  # one vector at a time, as sampling runs it
    for t in range(6):
        h, c, _ = lstm.step(x[t, 2], h, c, recurrent)
        np.testing.assert_allclose(h, expected[2, t], atol=1e-5)
    assert np.abs(expected).max() > 0.1  # not a trivially small output


def test_backward_equals_finite_differences():
    kernel, recurrent, _ = random_lstm(hidden=4, features=4 * 4, seed=2)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(5, 3, 16))  # float64, so that differences are precise
    recurrent = recurrent.astype(np.float64)
    weight = rng.normal(size=(5, 3, 4))  # loss = sum(weight * outputs)

    def loss(x, recurrent):
        return float((lstm.forward(x, recurrent)[0] * weight).sum())

    outputs, caches = lstm.forward(x, recurrent)
    d_x, g_recurrent = lstm.backward(caches, weight, recurrent)
    eps = 1e-6
    for array, grad in ((x, d_x), (recurrent, g_recurrent)):
        for index in [tuple(rng.integers(n) for n in array.shape) for _ in range(12)]:
            old = array[index]
            array[index] = old + eps
            up = loss(x, recurrent)
            array[index] = old - eps
            down = loss(x, recurrent)
            array[index] = old
            assert grad[index] == pytest.approx((up - down) / (2 * eps), rel=1e-5, abs=1e-8)


def test_input_backward_equals_finite_differences():
    rng = np.random.default_rng(4)
    emb, kernel = rng.normal(size=(6, 3)), rng.normal(size=(3, 8))
    tokens = rng.integers(6, size=(4, 2))
    weight = rng.normal(size=(4, 2, 8))
    g_emb, g_kernel, g_bias = lstm.input_backward(emb, kernel, tokens, weight)

    def loss(emb, kernel, bias):
        return float((lstm.input_table(emb, kernel, bias)[tokens] * weight).sum())

    bias = np.zeros(8)
    eps = 1e-6
    for array, grad in ((emb, g_emb), (kernel, g_kernel), (bias, g_bias)):
        for index in np.ndindex(array.shape):
            old = array[index]
            array[index] = old + eps
            up = loss(emb, kernel, bias)
            array[index] = old - eps
            down = loss(emb, kernel, bias)
            array[index] = old
            assert grad[index] == pytest.approx((up - down) / (2 * eps), rel=1e-6, abs=1e-8)


@pytest.mark.parametrize("clip", [None, 0.5])
def test_adam_steps_equal_keras_adam(clip):
    """Same learning rate, betas and epsilon (Keras adds it outside the square root),
    optionally a global gradient norm clip: the same weights after three steps."""
    rng = np.random.default_rng(5)
    weights = [rng.normal(size=(3, 4)).astype(np.float32), rng.normal(size=4).astype(np.float32)]
    start = [w.copy() for w in weights]
    variables = [keras.Variable(w) for w in weights]
    ours = Adam(weights, 0.05, global_clipnorm=clip)
    theirs = keras.optimizers.Adam(0.05, beta_1=0.9, beta_2=0.999, epsilon=1e-7)
    if clip is not None:
        theirs = keras.optimizers.Adam(0.05, epsilon=1e-7, global_clipnorm=clip)
    for _ in range(3):
        grads = [rng.normal(size=w.shape).astype(np.float32) for w in weights]
        weights = ours.step(weights, grads)
        theirs.apply_gradients(zip([keras.ops.convert_to_tensor(g) for g in grads], variables))
        for w, v in zip(weights, variables):
            np.testing.assert_allclose(w, keras.ops.convert_to_numpy(v), rtol=1e-5, atol=1e-6)
    assert ours.t == 3 and not np.allclose(weights[0], start[0], atol=1e-2)  # they moved


def numpy_head_outputs(policy, sample):
    """The heads' raw outputs at every step of ``sample``, computed by the NumPy policy."""
    tokens, _, _ = policy.encode([sample])
    outputs, _ = lstm.forward(policy.table[tokens], policy.weights[2])
    return (outputs @ policy.weights[4] + policy.weights[5])[:, 0], tokens[:, 0]


def test_the_keras_model_computes_what_the_numpy_policy_does(toy_space, tmp_path):
    """The saved controller's network, run by Keras, also after a trip through a ``.keras``
    file (``zoo.keras_model`` then ``keras.saving.load_model``)."""
    from rlnas import zoo

    controller = ReinforceController(
        toy_space, ReinforceConfig(hidden_size=8, batch_size=2), seed=1
    )
    for _ in range(4):
        controller.tell(controller.ask(), 1.0)
    sample = controller.ask()
    expected, tokens = numpy_head_outputs(controller.policy, sample)
    got = keras.ops.convert_to_numpy(controller.keras_model(tokens[None].astype(np.int32)))[0]
    np.testing.assert_allclose(got, expected, atol=1e-5)

    zoo.save_controller(controller, tmp_path / "toy", task="t", children=8, best_reward=1.0)
    zoo.keras_model(str(tmp_path / "toy")).save(tmp_path / "policy.keras")
    model = keras.saving.load_model(tmp_path / "policy.keras")
    got = keras.ops.convert_to_numpy(model(tokens[None].astype(np.int32)))[0]
    np.testing.assert_allclose(got, expected, atol=1e-5)
    # and the policy's probabilities follow from those outputs
    logp = controller.log_probs(sample)
    t, action = 0, sample.actions[0]
    cols = controller.policy.head_cols[t]
    logits, _ = controller.policy.logits(got[t, cols], controller.temperature)
    log_softmax = logits - np.log(np.exp(logits - logits.max()).sum()) - logits.max()
    assert logp[t] == pytest.approx(float(log_softmax[action]), abs=1e-5)


@pytest.mark.parametrize("name", ["nb201-cifar10", "mnist1d-layers"])
def test_shipped_controllers_load_and_run_the_same_in_keras(name):
    """The shipped weights files still load into the NumPy policy, and Keras computes the
    same head outputs from them along the policy's greedy path."""
    from pathlib import Path

    from rlnas import zoo
    from rlnas.commands.controllers import space_from_card

    folder = Path(__file__).parent.parent / "controllers" / name
    controller = zoo.load_controller(str(folder), space_from_card(zoo.read_card(folder), name))
    greedy = {d: ranked[0][0] for d, ranked in controller.greedy()}
    sample, _ = controller.space.replay(greedy)
    expected, tokens = numpy_head_outputs(controller.policy, sample)
    model = zoo.keras_model(str(folder))
    got = keras.ops.convert_to_numpy(model(tokens[None].astype(np.int32)))[0]
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert np.abs(expected).max() > 0.5  # trained weights, not a fresh initialisation
