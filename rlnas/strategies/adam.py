"""Adam (Kingma & Ba 2015) on a list of NumPy arrays, step for step as ``keras.optimizers.Adam``.

Keras's form, which the tests compare with: moments ``m += (1 - beta_1) (g - m)`` and
``v += (1 - beta_2) (g^2 - v)``; step size ``lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)``;
``w -= step * m / (sqrt(v) + epsilon)`` (epsilon outside the square root, on the
uncorrected ``v``). Optionally the gradients are first scaled so that their global norm is
at most ``global_clipnorm``, as Keras's argument of that name does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np


class Adam:
    """The optimizer's state (moments and step count) for weights of the given shapes."""

    def __init__(
        self,
        weights: list[np.ndarray],
        learning_rate: float,
        *,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        global_clipnorm: float | None = None,
    ) -> None:
        self.learning_rate = learning_rate
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon
        self.global_clipnorm = global_clipnorm
        self.m = [np.zeros_like(w) for w in weights]
        self.v = [np.zeros_like(w) for w in weights]
        self.t = 0

    def step(self, weights: list[np.ndarray], grads: list[np.ndarray]) -> list[np.ndarray]:
        """The weights after one step on ``grads``. Returns new arrays and replaces the
        moment lists with new ones, so a caller may keep the old ones to undo a step."""
        clip = self.global_clipnorm
        if clip is not None:
            norm = float(np.sqrt(sum(float((g * g).sum()) for g in grads)))
            if norm > clip:
                grads = [g * (clip / norm) for g in grads]
        self.t += 1
        b1, b2, t = self.beta_1, self.beta_2, self.t
        rate = self.learning_rate * (1 - b2**t) ** 0.5 / (1 - b1**t)
        self.m = [m + (1 - b1) * (g - m) for m, g in zip(self.m, grads)]
        self.v = [v + (1 - b2) * (g * g - v) for v, g in zip(self.v, grads)]
        return [
            (w - rate * m / (np.sqrt(v) + self.epsilon)).astype(np.float32, copy=False)
            for w, m, v in zip(weights, self.m, self.v)
        ]

    def state_dict(self) -> dict[str, Any]:
        return {"m": [m.copy() for m in self.m], "v": [v.copy() for v in self.v], "t": self.t}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.m = [np.array(m, np.float32) for m in state["m"]]
        self.v = [np.array(v, np.float32) for v in state["v"]]
        self.t = int(state["t"])
