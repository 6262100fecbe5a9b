"""REINFORCE with an LSTM controller (Zoph & Le 2017; ENAS, Pham et al. 2018), in one file.

Read top to bottom: the settings, sampling, then the update. The policy
(:mod:`rlnas.strategies.policy`) is an LSTM that reads the previous decision's choice, with a
softmax head per decision; sampling steps it one decision at a time as the space declares
them. After ``batch_size`` rewards, Adam takes ``updates_per_batch`` steps on
``-mean(advantage * sum log p) - entropy_weight * mean(entropy)``, where the advantage is
``2 q - 1`` for a reward at quantile ``q`` of the recent rewards (or, with ``advantage:
baseline``, the reward minus an exponential-moving-average baseline, optionally divided by
the running spread of rewards), plus ``elite_weight`` times the log-likelihood of the best
architectures found so far (priority-queue training, Abolafia et al. 2018) and, in a
multi-objective search, ``front_weight`` times that of the children on the current Pareto
front (the controller imitates the front, as TPE models its good points). All in NumPy:
the policy is so small that a framework call per step would cost more than the computation.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Annotated, Any, ClassVar

import numpy as np

from rlnas import zoo_transfer
from rlnas.rules import OneOf, Range, check_fields
from rlnas.space import Decision, Sample, Space
from rlnas.strategies.adam import Adam
from rlnas.strategies.base import Metrics, SpaceExhausted, Strategy, StrategyFault, Update
from rlnas.strategies.policy import LSTMPolicy
from rlnas.strategies.unseen import UnseenShares


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
    front_weight: Annotated[float, Range(ge=0)] = 0.0
    """Multi-objective searches: weight of the log-likelihood of the children on the Pareto
    front of those told so far, replayed at every update (0: off)."""
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


class Episode:
    """One architecture sampled from the policy, one decision at a time: :meth:`choose` draws
    each decision (a chooser for ``Space.sample``); :meth:`finish` returns the finished sample
    to ``tell`` (its masks: the choices still open), or ``None`` when it had been proposed
    before (only a resumed search meets that). Without ``unique``: plain policy sampling."""

    def __init__(self, controller: ReinforceController) -> None:
        self.controller, self.policy = controller, controller.policy
        self.shares = controller.unseen if controller.seen is not None else None
        if self.shares is not None and self.shares.exhausted:
            raise SpaceExhausted(
                f"every architecture of space `{controller.space.name}` was proposed."
            )
        self.h = self.c = np.zeros(controller.config.hidden_size, np.float32)
        self.t, self.token, self.path = 0, 0, ()
        self.steps: list[tuple[tuple[int, ...], np.ndarray, tuple[bool, ...]]] = []
        self.open: list[tuple[bool, ...]] = []  # per drawn decision, the choices still open

    def choose(self, decision: Decision, allowed: tuple[bool, ...]) -> int:
        """Step the LSTM up to ``decision`` and draw its choice among ``allowed``."""
        p, ctl = self.policy, self.controller
        while self.t < decision.step:  # decisions skipped as inactive
            self.h, self.c = p.step(self.token, self.h, self.c)
            self.token, self.t = int(p.base[self.t] + p.sizes[self.t]), self.t + 1
        self.h, self.c = p.step(self.token, self.h, self.c)
        probs = weights = p.probs(decision.step, self.h, allowed, ctl.temperature)
        if self.shares is not None:
            weights = self.shares.weigh(self.path, probs)
            self.steps.append((self.path, probs, allowed))
            self.open.append(tuple((weights > 0).tolist()))
        cum = np.cumsum(weights)
        if not np.isfinite(cum[-1]):
            raise ctl.fault("probabilities", ctl.step)
        index = min(int(np.searchsorted(cum, ctl.rng.random() * cum[-1])), len(cum) - 1)
        self.path = (*self.path, index)
        self.token, self.t = int(p.base[decision.step] + index), decision.step + 1
        return index

    def finish(self, plain: Sample) -> Sample | None:
        """The sample to tell, or ``None`` if it was proposed before."""
        if self.shares is None:
            return plain
        self.shares.close(tuple(a for a in plain.actions if a >= 0), self.steps)
        it = iter(self.open)
        masks = tuple(next(it) if a >= 0 else m for a, m in zip(plain.actions, plain.masks))
        seen = self.controller.seen
        if plain.architecture in seen:
            return None
        seen.add(plain)
        return Sample(plain.architecture, plain.actions, masks)


class ReinforceController(Strategy):
    """REINFORCE strategy: ``ask`` samples from the LSTM policy, ``tell`` collects rewards
    and updates the policy every ``batch_size`` children."""

    name = "reinforce"
    can_reset: ClassVar[bool] = True
    can_save: ClassVar[bool] = True

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
        self._reset_learning_state()

    def _reset_learning_state(self) -> None:
        cfg = self.config
        self.baseline: float | None = None
        self.reward_var: float | None = None
        self.step = 0  # number of updates so far
        self.pending: list[tuple[Sample, float]] = []
        self.recent: list[float] = []  # the last rewards, for the quantile advantage
        self.unseen = UnseenShares()  # see Episode
        self.elite: list[tuple[float, int, Sample]] = []  # min-heap of (reward, order, sample)
        self.front: list[tuple[np.ndarray, int, Sample]] = []  # (values, order, sample)
        self._told = 0
        self.warm_left = 0  # updates still sampled at warm_temperature (see warm_started)
        self.optimizer = Adam(
            self.policy.weights, cfg.learning_rate, global_clipnorm=cfg.grad_clip_norm
        )
        self._fault: StrategyFault | None = None  # raised by the next ask

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
        """Start afresh, exactly as a new controller with this seed would."""
        Strategy.__init__(self, self.space, seed=seed, unique=self.seen is not None)
        self.policy.initialize(seed)
        self._reset_learning_state()

    def continue_from(self, previous: ReinforceController) -> None:
        """Carry on from ``previous``, this space's controller before the space grew or
        changed (a KerasTuner hyperparameter met only after the first build, say): call it
        on a fresh controller of the new space. It takes over the policy's weights of the
        decisions both spaces share, matched by name and choice
        (:func:`rlnas.zoo_transfer.plan_transfer`), and the reward statistics (baseline,
        spread, recent rewards, update count). New decisions and choices keep their fresh
        initialisation; the optimizer's moments, the elite and the proposals seen do not
        carry over."""
        transfer = zoo_transfer.plan_transfer(previous.space.describe(), self.space)
        if transfer is not None and transfer.shared:
            zoo_transfer.copy_shared(previous.policy, self.policy, transfer)
            self.policy_changed()
        self.baseline, self.reward_var = previous.baseline, previous.reward_var
        self.recent, self.step = list(previous.recent), previous.step

    def policy_changed(self) -> None:
        """Refresh what sampling reads; call it after changing the policy's weights in place
        (a warm start copies saved weights into them)."""
        self.policy.weights = self.policy.weights

    def fault(self, what: str, update: int) -> StrategyFault:
        """The error for non-finite weights or probabilities, naming the setting to change."""
        cfg, when = self.config, "at" if what == "weights" else "after"
        fix = f"lower `controller.learning_rate` (got {cfg.learning_rate!r})" + (
            " or set `controller.grad_clip_norm`" if cfg.grad_clip_norm is None else ""
        )
        if update == 0:
            fix = f"lower `controller.init_range` (got {cfg.init_range!r})"
        return StrategyFault(
            f"the controller's {what} became non-finite {when} update {update}; {fix}."
        )

    # -- sampling --------------------------------------------------------------------------
    def ask(self) -> Sample:
        if self._fault is not None:
            raise self._fault
        if self.seen is not None and self.seen.exhausted:
            raise SpaceExhausted(f"every architecture of space `{self.space.name}` was proposed.")
        # a draw proposed before (which only a resumed search meets) is redrawn; each such
        # draw closes that architecture's share, so at most len(seen) draws can be repeats
        tries = len(self.seen) + 1 if self.seen is not None else 1
        for _ in range(tries):
            episode = self.episode()
            sample = episode.finish(self.space.sample(episode.choose)[0])
            if sample is not None:
                return sample
        raise StrategyFault(
            f"the controller drew {tries} architectures in a row that had been proposed "
            "before; set `search.unique: false` to allow repeats."
        )

    def episode(self) -> Episode:
        """The sampling of one architecture, decision by decision: what :meth:`ask` does,
        open for an outside loop to drive (the gymnasium environment's agent)."""
        return Episode(self)

    def log_probs(self, sample: Sample) -> np.ndarray:
        """Per decision, the log-probability the sampler gives ``sample``'s choice under its
        recorded masks (0 where inactive)."""
        return self.policy.log_probs(sample, self.temperature)

    def greedy(self) -> list[tuple[str, list[tuple[Any, float]]]]:
        """Per decision along the most likely path, its choices by probability (masks
        ignored). Used by ``rlnas controllers show``."""
        return self.policy.greedy(self.temperature)

    # -- learning --------------------------------------------------------------------------
    def tell(self, sample: Sample, reward: float | None, metrics: Metrics = None) -> Update:
        if reward is None:  # a failed child without a configured reward teaches nothing
            return None
        reward = float(reward)
        self._told += 1
        if self.reads_objectives and metrics:
            self._on_front(sample, metrics)
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

    @property
    def reads_objectives(self) -> bool:  # type: ignore[override]
        return self.config.front_weight > 0

    def _on_front(self, sample: Sample, metrics: Mapping[str, float]) -> None:
        """Keep ``sample`` if no child on the front dominates it (``objective/*`` metrics,
        larger is better), dropping the members it dominates."""
        values = np.array([v for k, v in sorted(metrics.items()) if k.startswith("objective/")])
        if values.size == 0:
            return
        for member, _, _ in self.front:
            if np.all(member >= values) and np.any(member > values):
                return
        self.front = [
            m for m in self.front if not (np.all(values >= m[0]) and np.any(values > m[0]))
        ]
        self.front.append((values, self._told, sample))

    def advantages(self, rewards: np.ndarray) -> np.ndarray:
        """Each reward's advantage (see ``ReinforceConfig.advantage``); moves the baseline,
        the running reward variance and the window of recent rewards on."""
        cfg = self.config
        mean = float(rewards.mean())
        # the baseline starts at the first batch's mean, not at 0 (which would make every
        # early advantage positive), then follows an exponential moving average
        if self.baseline is None:
            self.baseline = mean
            self.reward_var = float(rewards.var())
        decay, advantages = cfg.baseline_decay, rewards - self.baseline
        self.baseline = decay * self.baseline + (1 - decay) * mean
        spread = float(np.mean((rewards - self.baseline) ** 2))
        self.reward_var = decay * self.reward_var + (1 - decay) * spread
        if cfg.normalize_advantage:
            advantages = advantages / (np.sqrt(self.reward_var) + 1e-8)
        self.recent = (self.recent + [float(r) for r in rewards])[-cfg.quantile_window :]
        if cfg.advantage == "quantile":
            window = np.array(self.recent)
            below = (window[None, :] < rewards[:, None]).mean(1)
            ties = (window[None, :] == rewards[:, None]).mean(1)
            advantages = (2 * (below + 0.5 * ties) - 1).astype(np.float32)
        return advantages

    def update(self, batch: list[tuple[Sample, float]]) -> dict[str, float] | None:
        """One REINFORCE update on ``batch``; returns the controller metrics (``None`` if the
        new weights were not finite: they are dropped and the next :meth:`ask` raises)."""
        cfg = self.config
        rewards = np.array([r for _, r in batch], np.float32)
        advantages = self.advantages(rewards)
        # one set of rows: the batch (weighted by its advantages) and the elite (weighted for
        # maximum likelihood), so that one pass does the whole update
        samples = [s for s, _ in batch]
        coef = [float(a) / len(batch) for a in advantages]  # policy-gradient weight per row
        if self.elite and cfg.elite_weight > 0:
            samples += [s for _, _, s in self.elite]
            coef += [cfg.elite_weight / len(self.elite)] * len(self.elite)
        if self.front and cfg.front_weight > 0:
            samples += [s for _, _, s in self.front]
            coef += [cfg.front_weight / len(self.front)] * len(self.front)
        is_batch = np.arange(len(samples)) < len(batch)
        for _ in range(cfg.updates_per_batch):
            loss, entropy, logp, grads = self.gradients(samples, np.array(coef), is_batch)
            if not self._adam_step(grads):
                return None
        self.step += 1
        if self.warm_left > 0:
            self.warm_left -= 1
        return {
            "controller/step": float(self.step),
            "controller/reward_mean": float(rewards.mean()),
            "controller/reward_max": float(rewards.max()),
            "controller/baseline": float(self.baseline),
            "controller/advantage_mean": float(np.mean(advantages)),
            "controller/entropy": entropy,
            "controller/policy_loss": loss,
            "controller/log_prob_mean": logp,
        }

    def _adam_step(self, grads: list[np.ndarray]) -> bool:
        """Adam's step on the policy; if the new weights (or the tables sampling reads) are
        not finite, keep the old weights and optimizer state and remember the fault."""
        opt, old = self.optimizer, self.policy.weights
        moments = opt.m, opt.v, opt.t
        with np.errstate(over="ignore", invalid="ignore"):  # checked right below
            self.policy.weights = opt.step(old, grads)
            table = self.policy.table
        if all(np.isfinite(w).all() for w in self.policy.weights) and np.isfinite(table).all():
            return True
        self.policy.weights = old
        opt.m, opt.v, opt.t = moments
        self._fault = self.fault("weights", self.step + 1)
        return False

    def gradients(
        self, samples: list[Sample], coef: np.ndarray, is_batch: np.ndarray
    ) -> tuple[float, float, float, list[np.ndarray]]:
        """The loss ``-sum_b coef[b] log p(sample b) - entropy_weight * mean entropy`` (entropy
        averaged over the ``is_batch`` rows) and its gradient for each weight, by backpropagation
        (tested against TensorFlow's automatic differentiation). Returns the loss, the mean
        entropy and log-probability of the batch rows, and the gradients in weight order."""
        cfg = self.config
        logits, actions, masks, cache = self.policy.forward(samples, self.temperature)
        active = actions >= 0
        shifted = logits - logits.max(-1, keepdims=True)
        log_z = np.log(np.exp(shifted).sum(-1, keepdims=True))
        log_p = np.where(masks, shifted - log_z, 0.0)
        probs = np.where(masks, np.exp(shifted - log_z), 0.0)
        safe = np.maximum(actions, 0)[..., None]
        chosen = np.where(active, np.take_along_axis(log_p, safe, 2)[..., 0], 0.0)
        entropy = np.where(active, -(probs * log_p).sum(-1), 0.0)  # (T, B)
        seq_logp, seq_entropy = chosen.sum(0), entropy.sum(0)
        n_batch = max(int(is_batch.sum()), 1)
        coef = np.asarray(coef, np.float32)
        ent_coef = (cfg.entropy_weight / n_batch * is_batch).astype(np.float32)
        loss = -float(coef @ seq_logp) - float(ent_coef @ seq_entropy)
        # d loss / d logits = coef (p - onehot) + ent_coef p (log p + H), 0 where inactive
        onehot = np.zeros_like(probs)
        np.put_along_axis(onehot, safe, 1.0, axis=2)
        d_logits = coef[None, :, None] * (probs - onehot)
        d_logits += ent_coef[None, :, None] * probs * (log_p + entropy[..., None])
        d_logits *= active[..., None]
        grads = self.policy.backward(cache, d_logits)
        mean_entropy = float(seq_entropy[is_batch].sum() / n_batch)  # batch rows only
        mean_logp = float(seq_logp[is_batch].sum() / n_batch)
        return loss, mean_entropy, mean_logp, grads

    # -- state -----------------------------------------------------------------------------
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
            unseen=self.unseen.state(),
            elite=[(r, o, s.to_dict()) for r, o, s in self.elite],
            front=[(v.tolist(), o, s.to_dict()) for v, o, s in self.front],
            weights=[w.copy() for w in self.policy.weights],
            adam=self.optimizer.state_dict(),
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
        self.unseen.load(state.get("unseen", []))
        self.elite = [(float(r), int(o), Sample.from_dict(s)) for r, o, s in state["elite"]]
        heapq.heapify(self.elite)
        self.front = [
            (np.array(v, np.float64), int(o), Sample.from_dict(s))
            for v, o, s in state.get("front", [])
        ]
        self.policy.weights = [np.array(w, np.float32) for w in state["weights"]]
        self.optimizer.load_state_dict(state["adam"])
