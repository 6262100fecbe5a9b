"""A one-layer LSTM over token sequences, in NumPy: forward step, backward pass, weights.

The REINFORCE controller's network is Keras's ``Embedding -> LSTMCell -> Dense``; this module
holds the recurrent part, written once and used both step by step (sampling, one vector at a
time) and over whole batches (learning, with :func:`backward`). The equations are Keras's
``LSTMCell`` with its defaults: for input ``x`` (a token's embedding)

    z = x @ kernel + bias + h @ recurrent_kernel       split as (i, f, g, o)
    c' = sigmoid(f) * c + sigmoid(i) * tanh(g)          h' = sigmoid(o) * tanh(c')

so weights saved from here load into Keras unchanged (the tests compare with Keras's own
``LSTM`` layer and TensorFlow's gradients). The input half ``x @ kernel + bias`` does not
depend on the state, so it is computed per token once (:func:`input_table`).
"""

from __future__ import annotations

import numpy as np


def init(shapes: list[tuple[int, ...]], init_range: float, seed: int) -> list[np.ndarray]:
    """Float32 weights of these shapes: matrices uniform in ``[-init_range, init_range]``,
    vectors (biases) zero, as ENAS initialises its controller."""
    rng = np.random.default_rng(seed)
    return [
        np.zeros(shape, np.float32)
        if len(shape) == 1
        else rng.uniform(-init_range, init_range, shape).astype(np.float32)
        for shape in shapes
    ]


def input_table(embedding: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Per token, the input half of a step, ``embedding[token] @ kernel + bias`` (tokens, 4H)."""
    return embedding @ kernel + bias


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


Cache = tuple[np.ndarray, ...]
"""What one step keeps for the backward pass: ``h_prev, c_prev, i, f, g, o, tanh(c)``."""


def step(x: np.ndarray, h: np.ndarray, c: np.ndarray, recurrent: np.ndarray):
    """One LSTM step from the input half ``x`` (``..., 4H``) and the state ``h, c``
    (``..., H``); works on one vector or a batch. Returns ``h', c'`` and the step's cache."""
    z = x + h @ recurrent
    n = h.shape[-1]
    gates = sigmoid(z)  # one call for i, f and o (its g quarter is not used)
    i, f, o = gates[..., :n], gates[..., n : 2 * n], gates[..., 3 * n :]
    g = np.tanh(z[..., 2 * n : 3 * n])
    c_next = f * c + i * g
    tanh_c = np.tanh(c_next)
    return o * tanh_c, c_next, (h, c, i, f, g, o, tanh_c)


def forward(x: np.ndarray, recurrent: np.ndarray) -> tuple[np.ndarray, list[Cache]]:
    """Run the LSTM from a zero state over ``x`` (``T, B, 4H``: input halves per step and
    row); returns the outputs ``h`` (``T, B, H``) and the caches for :func:`backward`."""
    hidden = recurrent.shape[0]
    h = c = np.zeros((x.shape[1], hidden), np.float32)
    outputs, caches = [], []
    for t in range(x.shape[0]):
        h, c, cache = step(x[t], h, c, recurrent)
        outputs.append(h)
        caches.append(cache)
    return np.stack(outputs), caches


def backward(
    caches: list[Cache], d_out: np.ndarray, recurrent: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Backpropagation through time: from ``d loss / d outputs`` (``T, B, H``) to the
    gradients with respect to the input halves (``T, B, 4H``) and the recurrent kernel."""
    hidden = recurrent.shape[0]
    g_recurrent = np.zeros_like(recurrent)
    d_x = np.zeros((*d_out.shape[:2], 4 * hidden), d_out.dtype)
    d_h = d_c = np.zeros((d_out.shape[1], hidden), np.float32)
    for t in reversed(range(len(caches))):
        h_prev, c_prev, i, f, g, o, tanh_c = caches[t]
        d_h = d_h + d_out[t]
        d_c = d_c + d_h * o * (1 - tanh_c**2)
        d_z = np.concatenate(
            [d_c * g * i * (1 - i), d_c * c_prev * f * (1 - f),
             d_c * i * (1 - g**2), d_h * tanh_c * o * (1 - o)],
            axis=1,
        )  # fmt: skip
        g_recurrent += h_prev.T @ d_z
        d_h, d_c = d_z @ recurrent.T, d_c * f
        d_x[t] = d_z
    return d_x, g_recurrent


def input_backward(
    embedding: np.ndarray, kernel: np.ndarray, tokens: np.ndarray, d_x: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of the embedding, kernel and bias from those of the input halves ``d_x``
    (``T, B, 4H``) of the steps that read ``tokens`` (``T, B``)."""
    d_x = d_x.reshape(-1, d_x.shape[-1])
    flat = tokens.reshape(-1)
    g_kernel = embedding[flat].T @ d_x
    g_bias = d_x.sum(0)
    g_embedding = np.zeros_like(embedding)
    np.add.at(g_embedding, flat, d_x @ kernel.T)
    return g_embedding, g_kernel, g_bias
