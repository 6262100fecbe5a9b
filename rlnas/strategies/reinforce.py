"""REINFORCE with an LSTM controller (Zoph & Le 2017; ENAS, Pham et al. 2018), in one file.

Read top to bottom: the settings, the policy network, sampling, then the update.

* **Policy.** An LSTM reads, at each step, the embedding of the previous decision's choice
  (a start token first, an "inactive" token for decisions that did not apply) and a softmax
  head per decision turns its output into that decision's probabilities. As in ENAS, logits
  are divided by a temperature and squashed by ``tanh_constant * tanh(.)`` so that no choice
  becomes certain too early. Choices a space masks (or that would only lead to architectures
  already proposed) get probability zero.
* **Sampling** runs the same equations in NumPy on a copy of the weights, step by step as
  the space declares its decisions, so proposing a child costs about a millisecond, not a
  TensorFlow call per decision.
* **Update.** After ``batch_size`` rewards, Adam takes ``updates_per_batch`` steps on
  ``-mean(advantage * sum log p) - entropy_weight * mean(entropy)``, where the advantage is
  ``2 q - 1`` for a reward at quantile ``q`` of the recent rewards (or, with ``advantage:
  baseline``, the reward minus an exponential-moving-average baseline, optionally divided by
  the running spread of rewards), plus ``elite_weight`` times the log-likelihood of the best
  architectures found so far (priority-queue training, Abolafia et al. 2018). The gradient
  is backpropagation through the LSTM, written out in NumPy: the policy is small enough that
  a TensorFlow call per update cost more than the whole computation. The weights live in the
  Keras model too, which saves and loads them.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Annotated, Any

import numpy as np

from rlnas.rules import OneOf, Range, check_fields
from rlnas.space import Decision, Sample, Space
from rlnas.strategies.base import SpaceExhausted, Strategy


@dataclass(frozen=True)
class ReinforceConfig:
    """Settings of the REINFORCE controller. Defaults are ours, tuned on NAS-Bench-201
    (see the README); the values the papers used are noted beside each."""

    hidden_size: Annotated[int, Range(ge=1, le=1024)] = 64
    """LSTM units and embedding width (ENAS: 32 or 64; Zoph & Le: 35 in two layers). At
    most 1024: the LSTM's weights take about 32 * hidden_size**2 bytes, and Adam keeps two
    more copies."""
    temperature: Annotated[float, Range(gt=0)] = 1.0
    """Logits are divided by this before the tanh squashing (ENAS: 5.0)."""
    tanh_constant: Annotated[float | None, Range(gt=0)] = 2.5
    """Logits become ``c * tanh(logits)``; ``None`` disables it (ENAS: 1.1 to 2.5)."""
    learning_rate: Annotated[float, Range(gt=0)] = 0.01
    """Adam learning rate of the controller (ENAS micro search: 0.0035; Zoph & Le: 0.0006)."""
    batch_size: Annotated[int, Range(ge=1)] = 2
    """Children per update (Zoph & Le: m = 8 children per controller replica)."""
    updates_per_batch: Annotated[int, Range(ge=1)] = 1
    """Gradient steps taken on each batch (1 is plain REINFORCE)."""
    baseline_decay: Annotated[float, Range(ge=0, lt=1)] = 0.99
    """Decay of the exponential moving average of rewards used as baseline (ENAS: 0.99)."""
    normalize_advantage: bool = True
    """Divide advantages by the running standard deviation of rewards."""
    entropy_weight: Annotated[float, Range(ge=0)] = 1e-4
    """Weight of the entropy bonus in the loss (ENAS: 1e-4)."""
    advantage: Annotated[str, OneOf(("baseline", "quantile"))] = "quantile"
    """``baseline``: reward minus the EMA baseline (over the running std if
    ``normalize_advantage``); ``quantile``: 2 q - 1, where q is the reward's quantile among
    the last ``quantile_window`` rewards (scale-free: an outlier weighs like any loser)."""
    quantile_window: Annotated[int, Range(ge=2)] = 50
    """Rewards the ``quantile`` advantage compares with."""
    elite_size: Annotated[int, Range(ge=0)] = 3
    """How many of the best architectures so far are replayed by maximum likelihood (0: off)."""
    elite_weight: Annotated[float, Range(ge=0)] = 1.0
    """Weight of the elite log-likelihood term."""
    grad_clip_norm: Annotated[float | None, Range(gt=0)] = None
    """Clip the global gradient norm to this value; ``None``: no clipping."""
    init_range: Annotated[float, Range(gt=0, le=1)] = 0.1
    """Weights start uniform in ``[-init_range, init_range]`` (ENAS: 0.1)."""
    warm_updates: Annotated[int, Range(ge=0)] = 0
    """After a warm start (``from``), sample with ``warm_temperature`` for this many updates
    so that the new search can still move away from the old preferences (0: never)."""
    warm_temperature: Annotated[float, Range(gt=0)] = 2.0
    """Sampling temperature of the first ``warm_updates`` updates after a warm start."""
    from_: str | None = None
    """Start from a saved controller (``controllers/NAME`` or ``runs:/<run_id>/controller``);
    written ``from`` in YAML."""

    def __post_init__(self) -> None:
        check_fields(self)


class LSTMPolicy:
    """The controller's network: embedding, one LSTM cell and a linear head per decision.

    Its weights live in NumPy (:attr:`weights`, in the order of the Keras model's weights:
    embedding, LSTM kernel, recurrent kernel, bias, head weights, head bias); sampling and
    learning never touch a framework. :meth:`keras_model` builds the same network from Keras
    layers on demand, so that the weights save to and load from a Keras weights file. Token
    layout: 0 is the start token; decision ``t`` owns tokens ``base[t] .. base[t] + n_t``
    (its choices, then "inactive"), and head columns ``offset[t] .. offset[t] + n_t - 1``.
    """

    def __init__(self, signature: tuple[Decision, ...], config: ReinforceConfig, seed: int):
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
        n_out = int(sizes.sum())
        self.shapes = [(self.n_tokens, h), (h, 4 * h), (h, 4 * h), (4 * h,), (h, n_out), (n_out,)]
        # (T, C_max) column of the head for each decision's choice; padding points at column 0
        cols = np.zeros((self.n_steps, self.max_choices), np.int32)
        for t, n in enumerate(sizes):
            cols[t, :n] = self.offset[t] + np.arange(n)
        self.columns = cols
        self._model = None
        self.weights: list[np.ndarray] = []
        self.initialize(seed)

    def initialize(self, seed: int) -> None:
        """Weights uniform in ``[-init_range, init_range]``, biases zero (as ENAS), seeded."""
        rng = np.random.default_rng(seed)
        self.weights = [
            np.zeros(shape, np.float32)
            if len(shape) == 1
            else rng.uniform(-self.init_range, self.init_range, shape).astype(np.float32)
            for shape in self.shapes
        ]

    def keras_model(self):
        """The policy as a Keras model holding the current weights (built on first use)."""
        if self._model is None:
            import keras

            embedding = keras.layers.Embedding(self.n_tokens, self.hidden_size)
            cell = keras.layers.LSTMCell(self.hidden_size, unit_forget_bias=False)
            head = keras.layers.Dense(self.shapes[-1][0])
            rnn = keras.layers.RNN(cell, return_sequences=True, unroll=True)
            tokens = keras.Input((self.n_steps,), dtype="int32")
            self._model = keras.Model(tokens, head(rnn(embedding(tokens))))
        for var, value in zip(self._model.weights, self.weights):
            var.assign(value)
        return self._model

    def load_keras_weights(self, path: str) -> None:
        """Take the weights of a Keras weights file saved from a policy of this shape."""
        model = self.keras_model()
        model.load_weights(path)
        self.weights = [np.array(w.numpy(), np.float32) for w in model.weights]


class Episode:
    """One architecture sampled from a controller's policy, one decision at a time.

    ``choose(decision, allowed)`` draws each decision (a chooser for ``Space.sample``);
    ``finish(plain)`` takes the finished sample and returns the one to ``tell`` (or ``None``
    when it had been proposed before, which only a resumed search meets). Without
    ``unique`` it is plain sampling from the policy. With it, each decision path (the
    active choices so far) keeps the share of its probability not proposed yet in the
    controller's ``_unseen`` (1 until visited, 0 once exhausted), refreshed with the current
    policy along every drawn path; shares off the drawn path date from their last visit
    (the incremental sampling without replacement of Shi et al., ICML 2020, for a policy
    that learns). Masking only exhausted branches instead would hand the probability of an
    architecture already proposed to its siblings at the LAST decision: a concentrated
    policy would explore its last decisions exhaustively and its first ones hardly at all.
    """

    def __init__(self, controller: ReinforceController) -> None:
        self.controller = controller
        self.unique = controller.seen is not None
        if self.unique and controller._unseen.get((), 1.0) <= 0.0:
            raise SpaceExhausted(
                f"every architecture of space `{controller.space.name}` was proposed."
            )
        self.steps: list[tuple[tuple[int, ...], np.ndarray, tuple[bool, ...], np.ndarray]] = []
        unseen = controller._unseen if self.unique else None
        self.choose = controller._chooser(unseen, self.steps)

    def finish(self, plain: Sample) -> Sample | None:
        """The sample to tell (its masks: the choices that were still open), or ``None``."""
        ctl = self.controller
        if not self.unique:
            return plain
        unseen = ctl._unseen
        unseen[tuple(a for a in plain.actions if a >= 0)] = 0.0
        for path, probs, allowed, _ in reversed(self.steps):
            probs = np.where(allowed, np.maximum(probs, 1e-12), 0.0)  # no underflow to 0
            shares = [unseen.get((*path, i), 1.0) for i in range(len(probs))]
            unseen[path] = float(np.dot(probs, shares) / probs.sum())
        it = iter(self.steps)
        masks = tuple(
            tuple(next(it)[3].tolist()) if a >= 0 else m for a, m in zip(plain.actions, plain.masks)
        )
        if plain.architecture in ctl.seen:
            return None
        ctl.seen.add(plain)
        return Sample(plain.architecture, plain.actions, masks)


class ReinforceController(Strategy):
    """REINFORCE strategy: ``ask`` samples from the LSTM policy, ``tell`` collects rewards
    and updates the policy every ``batch_size`` children."""

    name = "reinforce"

    def __init__(
        self,
        space: Space,
        config: ReinforceConfig | None = None,
        *,
        seed: int = 0,
        unique: bool = True,
    ) -> None:
        super().__init__(space, seed=seed, unique=unique)
        self.config = config or ReinforceConfig()
        self.policy = LSTMPolicy(space.signature, self.config, seed)
        self._sync()
        self._reset_learning_state()

    def _reset_learning_state(self) -> None:
        self.baseline: float | None = None
        self.reward_var: float | None = None
        self.step = 0  # number of updates so far
        self.pending: list[tuple[Sample, float]] = []
        self.recent: list[float] = []  # the last rewards, for the quantile advantage
        self._unseen: dict[tuple[int, ...], float] = {}  # see Episode
        self.elite: list[tuple[float, int, Sample]] = []  # min-heap of (reward, order, sample)
        self._told = 0
        self.warm_left = 0  # updates still sampled at warm_temperature (see warm_started)
        # Adam (Kingma & Ba 2015, Keras's defaults): first and second moments, step count
        self.adam_m = [np.zeros_like(w) for w in self.policy.weights]
        self.adam_v = [np.zeros_like(w) for w in self.policy.weights]
        self.adam_t = 0

    @property
    def keras_model(self):
        """The policy as a Keras model holding the current weights (to save or inspect)."""
        return self.policy.keras_model()

    @property
    def temperature(self) -> float:
        """The sampling temperature now (``warm_temperature`` early in a warm start)."""
        return self.config.warm_temperature if self.warm_left > 0 else self.config.temperature

    def warm_started(self) -> None:
        """Called once the weights of a saved controller are in: the baseline, reward spread
        and optimizer state stay fresh (a new task's rewards have their own scale) and the
        first ``warm_updates`` updates sample at ``warm_temperature``."""
        self.warm_left = self.config.warm_updates

    def reset(self, seed: int) -> None:
        """Start afresh, exactly as a new controller with this seed would (the benchmark runs
        hundreds of seeds with one controller)."""
        Strategy.__init__(self, self.space, seed=seed, unique=self.seen is not None)
        self.policy.initialize(seed)
        self._reset_learning_state()
        self._sync()

    # -- sampling (NumPy) ------------------------------------------------------------------
    def _sync(self, params: list[np.ndarray] | None = None) -> None:
        """Adopt ``params`` (an update's new weights) or, without them, the policy's weights
        as they are (after a reset or a load); then refresh, for fast sampling, per token the
        input half of an LSTM step (``embedding @ kernel + bias``)."""
        if params is not None:
            self.policy.weights = params
        emb, kernel, recurrent, bias, head_w, head_b = self.policy.weights
        self._x_table, self._recurrent, self._head_w, self._head_b = (
            emb @ kernel + bias,
            recurrent,
            head_w,
            head_b,
        )
        self._h0 = np.zeros(self.config.hidden_size, np.float32)
        p = self.policy
        self._head_cols = [slice(o, o + n) for o, n in zip(p.offset, p.sizes)]

    def ask(self) -> Sample:
        while True:
            episode = self.episode()
            sample = episode.finish(self.space.sample(episode.choose)[0])
            if sample is not None:
                return sample
            # proposed before this controller knew (a resumed search): now it knows; redraw

    def episode(self) -> Episode:
        """The sampling of one architecture, decision by decision: what :meth:`ask` does,
        open for an outside loop to drive (the gymnasium environment's agent)."""
        return Episode(self)

    def _chooser(self, unseen: dict | None = None, steps: list | None = None):
        """A chooser that samples each decision from the policy, step by step.

        With ``unseen`` (per decision path, the share of its probability not proposed yet)
        choice ``i`` is drawn with probability proportional to ``p(i) * unseen[path + i]``,
        and ``steps`` collects per decision: the path so far, the probabilities and the
        allowed choices (what :meth:`Episode.finish` needs for its bookkeeping).
        """
        p = self.policy
        state = {"h": self._h0, "c": self._h0, "t": 0, "token": 0, "path": ()}

        def choose(decision: Decision, allowed: tuple[bool, ...]) -> int:
            while state["t"] < decision.step:  # decisions skipped as inactive
                state["h"], state["c"] = self._lstm_step(state["token"], state["h"], state["c"])
                state["token"] = int(p.base[state["t"]] + p.sizes[state["t"]])
                state["t"] += 1
            state["h"], state["c"] = self._lstm_step(state["token"], state["h"], state["c"])
            probs = weights = self._probs(decision.step, state["h"], allowed)
            if unseen is not None:
                path = state["path"]
                weights = probs * [unseen.get((*path, i), 1.0) for i in range(len(probs))]
                steps.append((path, probs, allowed, weights > 0))  # type: ignore[union-attr]
            cum = np.cumsum(weights)
            index = min(int(np.searchsorted(cum, self.rng.random() * cum[-1])), len(cum) - 1)
            state["path"] = (*state["path"], index)
            state["token"] = int(p.base[decision.step] + index)
            state["t"] = decision.step + 1
            return index

        return choose

    def _lstm_step(self, token: int, h: np.ndarray, c: np.ndarray):
        """One step of Keras's LSTMCell (gates i, f, g, o) in NumPy."""
        z = self._x_table[token] + h @ self._recurrent
        gates = 1.0 / (1.0 + np.exp(-z))
        n = len(h)
        c = gates[n : 2 * n] * c + gates[:n] * np.tanh(z[2 * n : 3 * n])
        return gates[3 * n :] * np.tanh(c), c

    def _probs(self, t: int, h: np.ndarray, allowed: tuple[bool, ...] | None) -> np.ndarray:
        """Probabilities of decision ``t``'s choices given the LSTM output ``h``."""
        cols = self._head_cols[t]
        logits = (h @ self._head_w[:, cols] + self._head_b[cols]) / self.temperature
        if self.config.tanh_constant is not None:
            logits = self.config.tanh_constant * np.tanh(logits)
        if allowed is not None:
            logits = np.where(allowed, logits, -np.inf)
        probs = np.exp(logits - logits.max())
        return probs / probs.sum()

    def log_probs(self, sample: Sample) -> np.ndarray:
        """Per decision, the log-probability the NumPy sampler gives ``sample``'s choice
        under its recorded masks (0 where inactive): what the update recomputes in
        TensorFlow, and what the tests compare with it."""
        p = self.policy
        h = c = self._h0
        token = 0
        out = np.zeros(p.n_steps)
        for t, (action, mask) in enumerate(zip(sample.actions, sample.masks)):
            h, c = self._lstm_step(token, h, c)
            if action < 0:
                token = int(p.base[t] + p.sizes[t])
                continue
            out[t] = np.log(self._probs(t, h, mask)[action])
            token = int(p.base[t] + action)
        return out

    # -- learning ------------------------------------------------------------------------
    def tell(self, sample: Sample, reward: float | None) -> Mapping[str, float] | None:
        if reward is None:  # a failed child without a configured reward teaches nothing
            return None
        reward = float(reward)
        self._told += 1
        if self.config.elite_size > 0:
            item = (reward, -self._told, sample)
            if len(self.elite) < self.config.elite_size:
                heapq.heappush(self.elite, item)
            elif item > self.elite[0]:
                heapq.heapreplace(self.elite, item)
        self.pending.append((sample, reward))
        if len(self.pending) < self.config.batch_size:
            return None
        batch, self.pending = self.pending, []
        return self.update(batch)

    def update(self, batch: list[tuple[Sample, float]]) -> dict[str, float]:
        """One REINFORCE update on ``batch``; returns the controller metrics."""
        cfg = self.config
        rewards = np.array([r for _, r in batch], np.float32)
        mean = float(rewards.mean())
        # the baseline starts at the first batch's mean, not at 0 (which would make every
        # early advantage positive), then follows an exponential moving average
        if self.baseline is None:
            self.baseline = mean
            self.reward_var = float(rewards.var())
        advantages = rewards - self.baseline
        self.baseline = cfg.baseline_decay * self.baseline + (1 - cfg.baseline_decay) * mean
        self.reward_var = cfg.baseline_decay * self.reward_var + (1 - cfg.baseline_decay) * float(
            np.mean((rewards - self.baseline) ** 2)
        )
        if cfg.normalize_advantage:
            advantages = advantages / (np.sqrt(self.reward_var) + 1e-8)
        self.recent = (self.recent + [float(r) for r in rewards])[-cfg.quantile_window :]
        if cfg.advantage == "quantile":
            window = np.array(self.recent)
            below = (window[None, :] < rewards[:, None]).mean(1)
            ties = (window[None, :] == rewards[:, None]).mean(1)
            advantages = (2 * (below + 0.5 * ties) - 1).astype(np.float32)

        # one set of rows: the batch (weighted by its advantages) and the elite (weighted for
        # maximum likelihood), so that one pass does the whole update
        samples = [s for s, _ in batch]
        coef = [float(a) / len(batch) for a in advantages]  # policy-gradient weight per row
        if self.elite and cfg.elite_weight > 0:
            samples += [s for _, _, s in self.elite]
            coef += [cfg.elite_weight / len(self.elite)] * len(self.elite)
        is_batch = np.arange(len(samples)) < len(batch)
        for _ in range(cfg.updates_per_batch):
            loss, entropy, logp, grads = self.gradients(samples, np.array(coef), is_batch)
            self._adam(grads)
        self.step += 1
        if self.warm_left > 0:
            self.warm_left -= 1
        return {
            "controller/step": float(self.step),
            "controller/reward_mean": mean,
            "controller/reward_max": float(rewards.max()),
            "controller/baseline": float(self.baseline),
            "controller/advantage_mean": float(np.mean(advantages)),
            "controller/entropy": entropy,
            "controller/policy_loss": loss,
            "controller/log_prob_mean": logp,
        }

    def gradients(
        self, samples: list[Sample], coef: np.ndarray, is_batch: np.ndarray
    ) -> tuple[float, float, float, list[np.ndarray]]:
        """The loss ``-sum_b coef[b] log p(sample b) - entropy_weight * mean entropy`` (the
        entropy averaged over the ``is_batch`` rows) and its gradient with respect to each
        weight, by backpropagation through the LSTM written out in NumPy (the tests check it
        against TensorFlow's automatic differentiation). A TensorFlow call per update cost
        more than the whole computation: the policy is tiny, the per-call overhead is not.
        Returns the loss, the mean entropy and mean log-probability of the batch rows, and
        the gradients in the order of the Keras model's weights."""
        cfg, p = self.config, self.policy
        emb, kernel, recurrent, bias, head_w, head_b = self.policy.weights
        n_rows, n_steps, hidden = len(samples), p.n_steps, cfg.hidden_size
        actions = np.array([s.actions for s in samples]).T  # (T, B); -1: inactive
        masks = np.zeros((n_steps, n_rows, p.max_choices), bool)
        for b, sample in enumerate(samples):
            for t, allowed in enumerate(sample.masks):
                masks[t, b, : len(allowed)] = allowed
        active = actions >= 0
        # step t reads the token of step t-1's choice (or its "inactive" token)
        tokens = np.zeros((n_steps, n_rows), np.int64)
        prev = actions[:-1]
        tokens[1:] = np.where(prev >= 0, p.base[:-1, None] + prev, (p.base + p.sizes)[:-1, None])

        # forward: the LSTM over the decisions, then each decision's head
        x = self._x_table[tokens]  # (T, B, 4H)
        h = c = np.zeros((n_rows, hidden), np.float32)
        saved = []
        for t in range(n_steps):
            z = x[t] + h @ recurrent
            i, f, o = (1 / (1 + np.exp(-z[:, k * hidden : (k + 1) * hidden])) for k in (0, 1, 3))
            g = np.tanh(z[:, 2 * hidden : 3 * hidden])
            c_prev, h_prev = c, h
            c = f * c + i * g
            tanh_c = np.tanh(c)
            h = o * tanh_c
            saved.append((h_prev, c_prev, i, f, g, o, tanh_c, h))
        outputs = np.stack([step[-1] for step in saved])  # (T, B, H)
        raw = outputs @ head_w + head_b  # (T, B, sum of choices)
        u = np.take_along_axis(raw, p.columns[:, None, :], axis=2) / self.temperature
        squash = np.tanh(u) if cfg.tanh_constant is not None else None
        logits = cfg.tanh_constant * squash if squash is not None else u
        logits = np.where(masks, logits, -1e9)
        shifted = logits - logits.max(-1, keepdims=True)
        log_z = np.log(np.exp(shifted).sum(-1, keepdims=True))
        log_p = np.where(masks, shifted - log_z, 0.0)
        probs = np.where(masks, np.exp(shifted - log_z), 0.0)
        chosen = np.where(
            active, np.take_along_axis(log_p, np.maximum(actions, 0)[..., None], 2)[..., 0], 0.0
        )
        entropy = np.where(active, -(probs * log_p).sum(-1), 0.0)  # (T, B)
        seq_logp, seq_entropy = chosen.sum(0), entropy.sum(0)
        n_batch = max(int(is_batch.sum()), 1)
        coef = np.asarray(coef, np.float32)
        ent_coef = (cfg.entropy_weight / n_batch * is_batch).astype(np.float32)
        loss = -float(coef @ seq_logp) - float(ent_coef @ seq_entropy)

        # backward: d loss / d logits = coef (p - onehot) + ent_coef p (log p + H)
        onehot = np.zeros_like(probs)
        np.put_along_axis(onehot, np.maximum(actions, 0)[..., None], 1.0, axis=2)
        d_logits = coef[None, :, None] * (probs - onehot)
        d_logits += ent_coef[None, :, None] * probs * (log_p + entropy[..., None])
        d_logits *= active[..., None]
        d_u = d_logits * cfg.tanh_constant * (1 - squash**2) if squash is not None else d_logits
        d_cols = d_u / self.temperature
        g_head_w, g_head_b = np.zeros_like(head_w), np.zeros_like(head_b)
        d_out = np.zeros_like(outputs)
        for t in range(n_steps):
            cols = self._head_cols[t]
            d = d_cols[t][:, : p.sizes[t]]
            g_head_w[:, cols] += outputs[t].T @ d
            g_head_b[cols] += d.sum(0)
            d_out[t] = d @ head_w[:, cols].T
        g_recurrent = np.zeros_like(recurrent)
        d_x = np.zeros_like(x)
        d_h = d_c = np.zeros((n_rows, hidden), np.float32)
        for t in reversed(range(n_steps)):  # backpropagation through the decisions
            h_prev, c_prev, i, f, g, o, tanh_c, _ = saved[t]
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
        d_x = d_x.reshape(-1, 4 * hidden)
        flat = tokens.reshape(-1)
        g_kernel = emb[flat].T @ d_x
        g_bias = d_x.sum(0)
        g_emb = np.zeros_like(emb)
        np.add.at(g_emb, flat, d_x @ kernel.T)
        grads = [g_emb, g_kernel, g_recurrent, g_bias, g_head_w, g_head_b]
        mean_entropy = float(seq_entropy[is_batch].sum() / n_batch)  # batch rows only
        mean_logp = float(seq_logp[is_batch].sum() / n_batch)
        return loss, mean_entropy, mean_logp, grads

    def _adam(self, grads: list[np.ndarray], beta1=0.9, beta2=0.999, epsilon=1e-7) -> None:
        """One Adam step on the weights (Keras's defaults), gradients clipped first by their
        global norm if ``grad_clip_norm`` is set; then the sampler's tables are refreshed."""
        clip = self.config.grad_clip_norm
        if clip is not None:
            norm = float(np.sqrt(sum(float((g * g).sum()) for g in grads)))
            if norm > clip:
                grads = [g * (clip / norm) for g in grads]
        self.adam_t += 1
        t = self.adam_t
        rate = self.config.learning_rate * (1 - beta2**t) ** 0.5 / (1 - beta1**t)
        params = []
        for w, g, m, v in zip(self.policy.weights, grads, self.adam_m, self.adam_v):
            m += (1 - beta1) * (g - m)
            v += (1 - beta2) * (g * g - v)
            params.append((w - rate * m / (np.sqrt(v) + epsilon)).astype(np.float32, copy=False))
        self._sync(params)

    # -- inspection and state --------------------------------------------------------------
    def greedy(self) -> list[tuple[str, list[tuple[Any, float]]]]:
        """Follow the most likely choice at every step; per decision, its choices by
        probability (ignoring masks). Used by ``rlnas controllers show``."""
        p = self.policy
        h = c = self._h0
        token = 0
        out = []
        for t, decision in enumerate(p.signature):
            h, c = self._lstm_step(token, h, c)
            probs = self._probs(t, h, None)
            order = np.argsort(-probs)
            out.append((decision.name, [(decision.choices[k], float(probs[k])) for k in order]))
            token = int(p.base[t] + order[0])
        return out

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state.update(
            config=asdict(self.config),
            baseline=self.baseline,
            reward_var=self.reward_var,
            step=self.step,
            told=self._told,
            warm_left=self.warm_left,
            pending=[(s.to_dict(), r) for s, r in self.pending],
            recent=list(self.recent),
            unseen=[[list(path), share] for path, share in self._unseen.items()],
            elite=[(r, o, s.to_dict()) for r, o, s in self.elite],
            weights=[w.copy() for w in self.policy.weights],
            adam={
                "m": [m.copy() for m in self.adam_m],
                "v": [v.copy() for v in self.adam_v],
                "t": self.adam_t,
            },
        )
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.baseline = state["baseline"]
        self.reward_var = state["reward_var"]
        self.step = int(state["step"])
        self._told = int(state["told"])
        self.warm_left = int(state.get("warm_left", 0))
        self.pending = [(Sample.from_dict(s), float(r)) for s, r in state["pending"]]
        self.recent = [float(r) for r in state.get("recent", [])]
        self._unseen = {tuple(path): float(share) for path, share in state.get("unseen", [])}
        self.elite = [(float(r), int(o), Sample.from_dict(s)) for r, o, s in state["elite"]]
        heapq.heapify(self.elite)
        self._sync([np.array(w, np.float32) for w in state["weights"]])
        self.adam_m = [np.array(m, np.float32) for m in state["adam"]["m"]]
        self.adam_v = [np.array(v, np.float32) for v in state["adam"]["v"]]
        self.adam_t = int(state["adam"]["t"])
