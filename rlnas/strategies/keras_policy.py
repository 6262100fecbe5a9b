"""The REINFORCE controller's policy as a Keras model, to save, load and look inside.

The controller computes in NumPy (:mod:`rlnas.strategies.lstm`); this module builds the same
network from Keras's own layers (``Embedding``, ``RNN(LSTMCell)``, ``Dense``), holding the
same weights in the same order, so that a saved controller is a plain Keras weights file
and a user can run the policy in Keras. It imports Keras and is imported only on demand.
The model maps the token sequence of an architecture (``(batch, decisions)``, int32) to the
head's raw outputs at every step (``(batch, decisions, total choices)``).
"""

from __future__ import annotations

import keras
import numpy as np


def build(n_tokens: int, hidden_size: int, n_steps: int, n_outputs: int) -> keras.Model:
    """A Keras model of the policy's layout (:class:`~rlnas.strategies.policy.LSTMPolicy`:
    token count, LSTM units, decisions, head outputs); its weights are still Keras's own."""
    embedding = keras.layers.Embedding(n_tokens, hidden_size)
    cell = keras.layers.LSTMCell(hidden_size, unit_forget_bias=False)
    head = keras.layers.Dense(n_outputs)
    rnn = keras.layers.RNN(cell, return_sequences=True, unroll=True)
    tokens = keras.Input((n_steps,), dtype="int32")
    return keras.Model(tokens, head(rnn(embedding(tokens))))


def assign(model: keras.Model, weights: list[np.ndarray]) -> None:
    """Give ``model`` these weights (in the policy's order, which is the model's)."""
    for variable, value in zip(model.weights, weights):
        variable.assign(value)


def read(model: keras.Model, path: str) -> list[np.ndarray]:
    """The weights of a Keras weights file saved from a model of this layout."""
    model.load_weights(path)
    return [np.array(w.numpy(), np.float32) for w in model.weights]
