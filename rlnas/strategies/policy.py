"""The REINFORCE controller's policy network, in NumPy: embedding, LSTM, a head per decision.

An LSTM reads, at each step, the embedding of the previous decision's choice (a start token
first, an "inactive" token for decisions that did not apply), and a linear head per decision
turns its output into that decision's logits: divided by a temperature and, as in ENAS,
squashed by ``tanh_constant * tanh(.)`` so that no choice becomes certain too early.

The same equations run one decision at a time while sampling (:meth:`LSTMPolicy.step`,
:meth:`LSTMPolicy.probs`) and over whole batches while learning (:meth:`LSTMPolicy.forward`,
:meth:`LSTMPolicy.backward`); the LSTM itself is :mod:`rlnas.strategies.lstm`'s. The network
is Keras's ``Embedding -> RNN(LSTMCell) -> Dense``, so its weights save to and load from a
Keras weights file (:mod:`rlnas.strategies.keras_policy`).
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from rlnas.space import Decision, Sample
from rlnas.strategies import lstm


class Settings(Protocol):
    """What the policy reads of its settings (``ReinforceConfig`` has them)."""

    hidden_size: int
    init_range: float
    tanh_constant: float | None


class LSTMPolicy:
    """The controller's network: embedding, one LSTM cell and a linear head per decision.

    :attr:`weights` are NumPy arrays in the order of the Keras model's weights: embedding,
    LSTM kernel, recurrent kernel, bias, head weights, head bias. Token layout: 0 is the
    start token; decision ``t`` owns tokens ``base[t] .. base[t] + n_t`` (its choices, then
    "inactive"), and head columns ``offset[t] .. offset[t] + n_t - 1``.
    """

    def __init__(self, signature: tuple[Decision, ...], config: Settings, seed: int):
        self.signature = signature
        sizes = np.array([len(d.choices) for d in signature])
        self.n_steps = len(signature)
        self.max_choices = int(sizes.max())
        self.base = np.concatenate([[1], 1 + np.cumsum(sizes + 1)[:-1]]).astype(np.int32)
        self.offset = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int32)
        self.sizes = sizes
        self.n_tokens = int(1 + (sizes + 1).sum())
        self.hidden_size = h = config.hidden_size
        self.init_range = config.init_range
        self.tanh_constant = config.tanh_constant
        n_out = int(sizes.sum())
        self.shapes = [(self.n_tokens, h), (h, 4 * h), (h, 4 * h), (4 * h,), (h, n_out), (n_out,)]
        # (T, C_max) column of the head for each decision's choice; padding points at column 0
        cols = np.zeros((self.n_steps, self.max_choices), np.int32)
        for t, n in enumerate(sizes):
            cols[t, :n] = self.offset[t] + np.arange(n)
        self.columns = cols
        self.head_cols = [slice(o, o + n) for o, n in zip(self.offset, sizes)]
        self._model = None
        self.initialize(seed)

    @property
    def weights(self) -> list[np.ndarray]:
        return self._weights

    @weights.setter
    def weights(self, weights: list[np.ndarray]) -> None:
        """New weights; also refreshes, per token, the input half of an LSTM step."""
        self._weights = weights
        self.table = lstm.input_table(weights[0], weights[1], weights[3])

    def initialize(self, seed: int) -> None:
        """Weights uniform in ``[-init_range, init_range]``, biases zero (as ENAS), seeded."""
        self.weights = lstm.init(self.shapes, self.init_range, seed)

    def step(self, token: int, h: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One LSTM step reading ``token``."""
        h, c, _ = lstm.step(self.table[token], h, c, self.weights[2])
        return h, c

    def logits(self, raw: np.ndarray, temperature: float) -> tuple[np.ndarray, np.ndarray | None]:
        """Head outputs -> logits (over the temperature, squashed); also the ``tanh`` part."""
        u = raw / temperature
        if self.tanh_constant is None:
            return u, None
        squash = np.tanh(u)
        return self.tanh_constant * squash, squash

    def probs(self, t: int, h: np.ndarray, allowed, temperature: float) -> np.ndarray:
        """Probabilities of decision ``t``'s choices given the LSTM output ``h`` (masked
        choices get 0; ``allowed=None``: no mask)."""
        cols, head_w, head_b = self.head_cols[t], self.weights[4], self.weights[5]
        logits, _ = self.logits(h @ head_w[:, cols] + head_b[cols], temperature)
        if allowed is not None:
            logits = np.where(allowed, logits, -np.inf)
        probs = np.exp(logits - logits.max())
        return probs / probs.sum()

    def encode(self, samples: list[Sample]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per step and sample: the token read (``T, B``), the action (-1: inactive) and the
        allowed choices (``T, B, C_max``)."""
        actions = np.array([s.actions for s in samples]).T
        masks = np.zeros((self.n_steps, len(samples), self.max_choices), bool)
        for b, sample in enumerate(samples):
            for t, allowed in enumerate(sample.masks):
                masks[t, b, : len(allowed)] = allowed
        tokens = np.zeros(actions.shape, np.int64)  # step t reads step t-1's choice
        prev, base, sizes = actions[:-1], self.base[:-1, None], self.sizes[:-1, None]
        tokens[1:] = np.where(prev >= 0, base + prev, base + sizes)
        return tokens, actions, masks

    def forward(self, samples: list[Sample], temperature: float):
        """Batched forward pass: per step and sample, the logits of the decision's choices
        (``T, B, C_max``; masked choices at -1e9), the actions (``T, B``; -1: inactive), and
        what :meth:`backward` needs."""
        _, _, recurrent, _, head_w, head_b = self.weights
        tokens, actions, masks = self.encode(samples)
        outputs, caches = lstm.forward(self.table[tokens], recurrent)  # (T, B, H)
        raw = outputs @ head_w + head_b  # (T, B, sum of choices)
        u = np.take_along_axis(raw, self.columns[:, None, :], axis=2)
        logits, squash = self.logits(u, temperature)
        cache = (tokens, outputs, caches, squash, temperature)
        return np.where(masks, logits, -1e9), actions, masks, cache

    def backward(self, cache, d_logits: np.ndarray) -> list[np.ndarray]:
        """Gradients of every weight (in :attr:`weights` order) from ``d loss / d logits``."""
        tokens, outputs, caches, squash, temperature = cache
        emb, kernel, recurrent, _, head_w, head_b = self.weights
        d_u = d_logits * self.tanh_constant * (1 - squash**2) if squash is not None else d_logits
        d_cols = d_u / temperature
        g_head_w, g_head_b = np.zeros_like(head_w), np.zeros_like(head_b)
        d_out = np.zeros_like(outputs)
        for t, cols in enumerate(self.head_cols):
            d = d_cols[t][:, : self.sizes[t]]
            g_head_w[:, cols] += outputs[t].T @ d
            g_head_b[cols] += d.sum(0)
            d_out[t] = d @ head_w[:, cols].T
        d_x, g_recurrent = lstm.backward(caches, d_out, recurrent)
        g_emb, g_kernel, g_bias = lstm.input_backward(emb, kernel, tokens, d_x)
        return [g_emb, g_kernel, g_recurrent, g_bias, g_head_w, g_head_b]

    def log_probs(self, sample: Sample, temperature: float) -> np.ndarray:
        """Per decision, the log-probability of ``sample``'s choice under its recorded masks,
        one step at a time as sampling computes it (0 where inactive)."""
        h = c = np.zeros(self.hidden_size, np.float32)
        token = 0
        out = np.zeros(self.n_steps)
        for t, (action, mask) in enumerate(zip(sample.actions, sample.masks)):
            h, c = self.step(token, h, c)
            if action < 0:
                token = int(self.base[t] + self.sizes[t])
                continue
            out[t] = np.log(self.probs(t, h, mask, temperature)[action])
            token = int(self.base[t] + action)
        return out

    def greedy(self, temperature: float) -> list[tuple[str, list[tuple[Any, float]]]]:
        """Follow the most likely choice at every step; per decision, its choices by
        probability (ignoring masks)."""
        h = c = np.zeros(self.hidden_size, np.float32)
        token = 0
        out = []
        for t, decision in enumerate(self.signature):
            h, c = self.step(token, h, c)
            probs = self.probs(t, h, None, temperature)
            order = np.argsort(-probs)
            out.append((decision.name, [(decision.choices[k], float(probs[k])) for k in order]))
            token = int(self.base[t] + order[0])
        return out

    def keras_model(self):
        """The policy as a Keras model holding the current weights (built on first use)."""
        from rlnas.strategies import keras_policy  # Keras only when asked for

        if self._model is None:
            n_out = self.shapes[-1][0]
            self._model = keras_policy.build(self.n_tokens, self.hidden_size, self.n_steps, n_out)
        keras_policy.assign(self._model, self.weights)
        return self._model

    def load_keras_weights(self, path: str) -> None:
        """Take the weights of a Keras weights file saved from a policy of this shape."""
        from rlnas.strategies import keras_policy

        self.weights = keras_policy.read(self.keras_model(), path)
