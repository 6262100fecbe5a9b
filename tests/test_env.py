"""The gymnasium environment: gymnasium's own checker, masks, seeding, and agents driving it."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import rlnas  # noqa: F401  (registers rlnas/Architecture-v0)
from rlnas.envs import ArchitectureEnv
from rlnas.errors import ChildFailure
from rlnas.nb201.evaluator import Nb201Evaluator
from rlnas.space import Space
from rlnas.trial import Outcome


class Gated(Space):
    """A dropout that only wide nets have, and a stride masked for the widest."""

    name = "gated"

    def declare(self, d):
        width = d.choice("width", [8, 16, 64])
        drop = d.choice("dropout", [0.0, 0.5], active=width > 8)
        stride = d.choice("stride", [1, 2, 4], mask=[True, True, width != 64])
        return width, drop, stride


class Formula:
    """A test double: reward from a formula, failure for one architecture."""

    def fingerprint(self) -> str:
        return "formula"

    def evaluate(self, architecture, *, seed, number):
        if architecture["width"] == 16 and architecture.get("dropout") == 0.5:
            raise ChildFailure("nan_loss", "toy failure")
        return Outcome(reward=architecture["width"] / 64 - 0.1 * architecture["stride"])


def run_episode(env, seed, policy):
    obs, info = env.reset(seed=seed)
    steps, done = [], False
    while not done:
        action = policy(obs, info)
        steps.append((obs.copy(), action))
        obs, reward, done, truncated, info = env.step(action)
        assert not truncated
    return steps, reward, info


def masked_random(rng):
    return lambda obs, info: int(rng.choice(np.flatnonzero(info["action_mask"])))


def test_make_with_no_arguments_gives_nb201_on_the_cifar10_table():
    env = gym.make("rlnas/Architecture-v0")
    assert env.action_space == gym.spaces.Discrete(5)
    _, reward, info = run_episode(env, 0, masked_random(np.random.default_rng(0)))
    expected = Nb201Evaluator("cifar10").evaluate(info["architecture"], seed=0, number=0)
    assert reward == pytest.approx(expected.reward) and 10.0 <= reward <= 94.38
    assert len(info["architecture"]) == 6
    env.close()


@pytest.mark.parametrize("space", [None, Gated()], ids=["nb201", "gated"])
def test_gymnasium_check_env_passes_without_warnings(space):
    kwargs = {} if space is None else {"space": space, "evaluator": Formula()}
    env = gym.make("rlnas/Architecture-v0", **kwargs)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped)
    ours = [w for w in caught if "rlnas" in str(w.filename) or "gymnasium" in str(w.filename)]
    assert not ours, [str(w.message) for w in ours]


def test_observation_encodes_taken_and_inactive_decisions_and_the_next_step():
    env = ArchitectureEnv(Gated(), Formula())
    obs, info = env.reset(seed=1)
    assert obs.tolist() == [0, 0, 0, 0] and info["decision"] == "width"
    obs, _, done, _, info = env.step(0)  # width 8: dropout is inactive, stride is next
    assert not done and info["decision"] == "stride"
    assert obs.tolist() == [1, 2 + 1, 0, 2]  # width=choice 0, dropout inactive (2 + 1), next 2
    assert info["action_mask"].tolist() == [1, 1, 1]
    obs, reward, done, _, info = env.step(2)
    assert done and obs.tolist() == [1, 3, 3, 3]
    assert info["architecture"] == {"width": 8, "stride": 4}
    assert reward == pytest.approx(8 / 64 - 0.4)


def test_masked_choices_are_marked_and_an_invalid_action_ends_the_episode():
    env = ArchitectureEnv(Gated(), Formula(), invalid_action_reward=-1.0)
    env.reset(seed=0)
    env.step(2)  # width 64
    _, _, _, _, info = env.step(0)  # dropout 0.0
    assert info["decision"] == "stride" and info["action_mask"].tolist() == [1, 1, 0]
    _, reward, done, _, info = env.step(2)
    assert done and reward == -1.0 and info["invalid_action"]
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)


def test_a_failed_child_gives_the_failed_reward_with_its_reason():
    env = ArchitectureEnv(Gated(), Formula(), failed_reward=-0.5)
    env.reset(seed=0)
    for action in (1, 1, 0):  # width 16, dropout 0.5 -> the double fails
        _, reward, done, _, info = env.step(action)
    assert done and reward == -0.5 and info["failure"] == "nan_loss"


def test_reset_with_a_seed_is_reproducible_and_a_random_masked_agent_covers_the_space():
    env = ArchitectureEnv(Gated(), Formula())
    a = run_episode(env, 7, masked_random(np.random.default_rng(3)))
    b = run_episode(env, 7, masked_random(np.random.default_rng(3)))
    assert [x[1] for x in a[0]] == [x[1] for x in b[0]] and a[1] == b[1]
    rng = np.random.default_rng(0)
    seen = set()
    for episode in range(200):
        _, _, info = run_episode(env, episode, masked_random(rng))
        seen.add(tuple(sorted(info["architecture"].items())))
    assert len(seen) == 3 + 2 * 3 + 2 * 2  # every valid architecture (width 8, 16, 64)


def test_needs_an_evaluator_for_spaces_without_a_table():
    with pytest.raises(ValueError, match="needs an evaluator"):
        ArchitectureEnv(Gated())


@pytest.mark.parametrize("unique", [True, False])
def test_reinforce_drives_the_env_to_the_same_results_as_the_builtin_loop(unique):
    from rlnas.envs import ControllerAgent
    from rlnas.executors import InlineExecutor
    from rlnas.search import Budget, Search
    from rlnas.strategies.reinforce import ReinforceConfig, ReinforceController

    cfg = ReinforceConfig(hidden_size=16, batch_size=4)
    ev = Nb201Evaluator("cifar10")
    env = gym.make("rlnas/Architecture-v0", evaluator=ev)
    space = env.unwrapped.space
    n = 24
    loop = Search(
        ReinforceController(space, cfg, seed=5, unique=unique),
        InlineExecutor(ev),
        Budget(children=n),
    ).run()
    builtin = [(dict(t.architecture), t.reward) for t in loop.trials]

    controller = ReinforceController(space, cfg, seed=5, unique=unique)
    agent = ControllerAgent(controller)
    driven = []
    for episode in range(n):
        obs, info = env.reset(seed=episode)
        done = False
        while not done:
            obs, reward, done, _, info = env.step(agent.act(env, info))
        agent.observe(info, reward)
        driven.append((info["architecture"], reward))
    assert driven == builtin
    assert controller.step == n // cfg.batch_size  # the policy learned along the way
    if unique:  # never the same cell twice
        assert len({tuple(sorted(a.items())) for a, _ in driven}) == n
