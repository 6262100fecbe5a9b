"""The REINFORCE controller: it learns, its gradients are TensorFlow's, its state round-trips.

One controller per module, reused through ``reset(seed)``.
"""

from __future__ import annotations

import numpy as np
import pytest
from grid_toy import GridEvaluator, GridSpace, grid_reward

from rlnas.config import load_config
from rlnas.errors import ConfigError, FieldError
from rlnas.executors import InlineExecutor
from rlnas.search import Budget, Search
from rlnas.strategies.random_search import RandomSearch
from rlnas.strategies.reinforce import ReinforceConfig, ReinforceController

pytest.importorskip("tensorflow")


@pytest.fixture(scope="module")
def space():
    return GridSpace()


@pytest.fixture(scope="module")
def controller(space):
    return ReinforceController(space, seed=0)


def drive(ctrl, n: int, reward=grid_reward) -> list:
    """Ask and tell ``n`` children; returns the proposed architectures."""
    proposed = []
    for _ in range(n):
        s = ctrl.ask()
        proposed.append(s.architecture)
        ctrl.tell(s, reward(s.architecture))
    return proposed


def test_config_checks_state_the_rule():
    with pytest.raises(FieldError, match="`learning_rate`: expected a number > 0, got 0"):
        ReinforceConfig(learning_rate=0)
    with pytest.raises(FieldError, match="`batch_size`: expected an integer >= 1, got 0"):
        ReinforceConfig(batch_size=0)
    with pytest.raises(ConfigError, match=r"`controller.baseline_decay`: expected a number in"):
        load_config(None, ["controller.baseline_decay=1.5"])
    with pytest.raises(ConfigError, match="Did you mean `controller.learning_rate`"):
        load_config(None, ["controller.learning_rat=0.1"])


def test_updates_move_the_policy_after_reset(controller):
    """Regression: reset must leave Adam able to move the weights (fresh moments and steps)."""
    controller.reset(1)
    assert controller.optimizer.t == 0 and all(not m.any() for m in controller.optimizer.m)
    before = [w.numpy().copy() for w in controller.keras_model.weights]
    drive(controller, controller.config.batch_size)
    after = [w.numpy() for w in controller.keras_model.weights]
    assert controller.step == 1 and controller.optimizer.t == 1
    assert max(float(np.abs(a - b).max()) for a, b in zip(after, before)) > 1e-4


def tensorflow_loss(controller, samples, coef, is_batch):
    """The controller's loss written with TensorFlow ops on the Keras model's weights (the
    oracle for the hand-written gradients), and those weights."""
    import tensorflow as tf

    p, cfg = controller.policy, controller.config
    emb, kernel, recurrent, bias, head_w, head_b = controller.keras_model.weights
    actions = np.array([s.actions for s in samples])
    masks = np.zeros((len(samples), p.n_steps, p.max_choices), bool)
    for b, s in enumerate(samples):
        for t, m in enumerate(s.masks):
            masks[b, t, : len(m)] = m
    prev = actions[:, :-1]
    tokens = np.concatenate(
        [
            np.zeros((len(samples), 1), int),
            np.where(prev >= 0, p.base[:-1] + prev, p.base[:-1] + p.sizes[:-1]),
        ],
        1,
    )
    x = tf.gather(emb, tokens) @ kernel + bias
    h = c = tf.zeros([len(samples), cfg.hidden_size])
    outputs = []
    for t in range(p.n_steps):  # Keras's LSTMCell: gates i, f, g, o
        i, f, g, o = tf.split(x[:, t] + h @ recurrent, 4, axis=1)
        c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
        h = tf.sigmoid(o) * tf.tanh(c)
        outputs.append(h)
    raw = tf.stack(outputs, 1) @ head_w + head_b  # (B, T, sum C)
    logits = tf.stack([tf.gather(raw[:, t], p.columns[t], axis=1) for t in range(p.n_steps)], 1)
    logits = logits / controller.temperature
    if cfg.tanh_constant is not None:
        logits = cfg.tanh_constant * tf.tanh(logits)
    log_p = tf.nn.log_softmax(tf.where(masks, logits, -1e9), axis=-1)
    active = actions >= 0
    chosen = tf.gather(log_p, np.maximum(actions, 0), axis=2, batch_dims=2)
    seq_logp = tf.reduce_sum(tf.where(active, chosen, 0.0), 1)
    entropy = -tf.reduce_sum(tf.where(masks, tf.exp(log_p) * log_p, 0.0), -1)
    seq_entropy = tf.reduce_sum(tf.where(active, entropy, 0.0), 1)
    n_batch = max(int(is_batch.sum()), 1)
    ent_coef = cfg.entropy_weight * is_batch / n_batch
    return -tf.reduce_sum(coef * seq_logp) - tf.reduce_sum(ent_coef * seq_entropy)


def test_hand_written_gradients_equal_tensorflow_autodiff(controller):
    """The update's NumPy backpropagation gives TensorFlow's gradients, with masks (the
    space's and the seen-trie's), inactive decisions, elite rows and the entropy term."""
    import tensorflow as tf

    controller.reset(2)
    drive(controller, 37)  # some updates, so that the policy is not uniform
    samples = [controller.ask() for _ in range(3)]
    inactive, _ = controller.space.replay({"d0": 0, "d1": 2, "d2": 1, "d3": 3, "d4": 0, "d5": 2})
    samples.append(inactive)
    coef = np.array([0.7, -0.4, 0.2, 0.5], np.float32)
    is_batch = np.array([True, True, True, False])
    loss, _, _, grads = controller.gradients(samples, coef, is_batch)
    with tf.GradientTape() as tape:
        expected = tensorflow_loss(controller, samples, coef, is_batch)
    expected_grads = tape.gradient(expected, controller.keras_model.weights)
    assert loss == pytest.approx(float(expected), rel=1e-4)
    for ours, theirs in zip(grads, expected_grads):
        theirs = tf.convert_to_tensor(theirs).numpy()
        np.testing.assert_allclose(ours, theirs, atol=2e-5 + 1e-4 * np.abs(theirs).max())
    assert any(np.abs(g).max() > 1e-3 for g in grads)
    assert inactive.actions[-1] == -1 and controller.log_probs(inactive)[-1] == 0.0


def test_state_dict_round_trip_continues_identically(space, controller):
    controller.reset(3)
    proposed = drive(controller, 23)  # 23: a partial batch is pending
    state = controller.state_dict()
    other = ReinforceController(space, seed=99)
    other.load_state_dict(state)
    other.mark_seen(proposed)  # what a resumed search restores from its trials
    assert drive(other, 30) == drive(controller, 30)
    for a, b in zip(other.keras_model.weights, controller.keras_model.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6)


def test_reset_equals_a_fresh_controller(space, controller):
    controller.reset(4)
    drive(controller, 50)
    controller.reset(7)
    fresh = ReinforceController(space, seed=7)
    assert drive(controller, 40) == drive(fresh, 40)
    assert controller.step == fresh.step > 0


def test_budgets_are_respected(space, controller):
    controller.reset(5)
    result = Search(controller, InlineExecutor(GridEvaluator()), Budget(children=21), 0).run()
    assert len(result.trials) == 21
    controller.reset(5)
    result = Search(controller, InlineExecutor(GridEvaluator()), Budget(cost_seconds=40.0)).run()
    spent = sum(t.cost for t in result.trials if t.state.value == "COMPLETE")
    assert 40.0 - 4.0 < spent <= 40.0


def test_learns_better_than_random_search_on_a_toy_reward(space, controller):
    """Mean best reward after 60 children over 8 seeds: REINFORCE ahead by a clear margin
    (the optimum is 5.3; random search reaches about 4.6)."""

    def best(strategy) -> float:
        ev = InlineExecutor(GridEvaluator())
        return Search(strategy, ev, Budget(children=60), 0).run().best.reward

    ours, baseline = [], []
    for seed in range(8):
        controller.reset(seed)
        ours.append(best(controller))
        baseline.append(best(RandomSearch(space, seed=seed)))
    assert np.mean(ours) >= np.mean(baseline) + 0.2, (np.mean(ours), np.mean(baseline))


def unchecked(config: ReinforceConfig, **values) -> ReinforceConfig:
    """``config`` with values its bounds may refuse up front: the controller must still stop
    cleanly if such a value gets through."""
    for name, value in values.items():
        object.__setattr__(config, name, value)
    return config


@pytest.mark.parametrize("rate", [float("inf"), 1e30])
def test_a_diverging_controller_stops_the_search_with_one_line(space, rate):
    """Weights that become non-finite (or too large for float32 sampling) stop the search
    within a few updates, naming the setting; the saved state keeps finite weights."""
    from rlnas.strategies import StrategyFault

    cfg = unchecked(ReinforceConfig(hidden_size=16), learning_rate=rate)
    controller = ReinforceController(space, cfg, seed=0)
    search = Search(controller, InlineExecutor(GridEvaluator()), Budget(children=200), 0)
    result = search.run()
    assert result.stopped == "aborted" and len(result.trials) <= 3 * cfg.batch_size
    assert "non-finite" in result.message and "\n" not in result.message
    assert f"lower `controller.learning_rate` (got {rate!r})" in result.message
    state = search.state_dict()["strategy"]
    assert all(np.isfinite(w).all() for w in state["weights"])
    with pytest.raises(StrategyFault, match="controller.learning_rate"):
        controller.ask()


def test_non_finite_probabilities_name_the_initial_range(space):
    from rlnas.strategies import StrategyFault

    controller = ReinforceController(space, ReinforceConfig(hidden_size=8), seed=0)
    controller.policy.weights = [w * np.float32(np.nan) for w in controller.policy.weights]
    with pytest.raises(StrategyFault, match=r"probabilities became non-finite after update 0; "):
        controller.ask()


def test_redraws_of_proposed_architectures_are_capped(space, monkeypatch):
    """A resumed controller redraws what was proposed before it knew; a sampler that only
    ever meets proposed architectures ends with an error instead of spinning."""
    from rlnas.strategies import StrategyFault
    from rlnas.strategies.reinforce import Episode

    controller = ReinforceController(space, ReinforceConfig(hidden_size=8), seed=0)
    proposed = [controller.ask().architecture for _ in range(5)]
    controller.mark_seen(proposed)
    calls = []
    original = Episode.finish
    monkeypatch.setattr(Episode, "finish", lambda self, plain: calls.append(1) or None)
    with pytest.raises(StrategyFault, match="drew 6 architectures in a row"):
        controller.ask()
    assert len(calls) == 6
    monkeypatch.setattr(Episode, "finish", original)
    assert controller.ask().architecture not in proposed


def test_a_fully_proposed_space_is_exhausted_at_once(toy_space):
    from rlnas.strategies import SpaceExhausted

    every, random = [], RandomSearch(toy_space, seed=0)
    with pytest.raises(SpaceExhausted):
        while True:
            every.append(random.ask().architecture)
    controller = ReinforceController(toy_space, ReinforceConfig(hidden_size=8), seed=0)
    controller.mark_seen(every)
    with pytest.raises(SpaceExhausted):
        controller.ask()
