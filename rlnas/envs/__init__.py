"""The sampling of an architecture as a gymnasium environment: ``rlnas/Architecture-v0``.

One episode samples one architecture, one decision per step. The action is the index of a
choice of the current decision (``Discrete(max choices)``); ``info["action_mask"]`` marks
the choices the space allows now. The observation encodes the decisions taken so far and
which decision is next. The last step's reward comes from the evaluator (a child trained,
a table look-up, or a test double); every other step gives 0::

    import gymnasium as gym
    import rlnas  # registers rlnas/Architecture-v0

    env = gym.make("rlnas/Architecture-v0")  # nb201 cells, the CIFAR-10 table as evaluator
    obs, info = env.reset(seed=0)
    done = False
    while not done:
        action = env.np_random.choice(np.flatnonzero(info["action_mask"]))
        obs, reward, done, truncated, info = env.step(action)
    info["architecture"], reward

Keyword arguments choose the space and evaluator: ``space=`` and ``evaluator=`` objects,
``config=`` a YAML config (or :class:`~rlnas.config.Config`) whose task, space and child
settings are used (``search`` settings are not: the agent is the strategy), or
``dataset=`` another NAS-Bench-201 column.

Decisions a space marks inactive for the child being sampled get no step. An action outside
the mask ends the episode with ``invalid_action_reward`` and ``info["invalid_action"]``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np

from rlnas import factory
from rlnas.config import Config, load_config
from rlnas.errors import ChildFailure
from rlnas.executors import Evaluator
from rlnas.nb201.evaluator import Nb201Evaluator
from rlnas.nb201.space import Nb201Space
from rlnas.space import Decision, Sample, Space

ENV_ID = "rlnas/Architecture-v0"  # registered by `import rlnas`


class _Pause(Exception):
    """Raised inside ``declare`` at the first decision the agent has not taken yet."""

    def __init__(self, decision: Decision, allowed: tuple[bool, ...]) -> None:
        self.decision = decision
        self.allowed = allowed


class ArchitectureEnv(gym.Env):
    """Sample an architecture of ``space`` decision by decision; reward from ``evaluator``."""

    metadata = {"render_modes": []}

    def __init__(
        self,
        space: Space | None = None,
        evaluator: Evaluator | None = None,
        *,
        config: str | os.PathLike | Any | None = None,
        dataset: str = "cifar10",
        failed_reward: float = 0.0,
        invalid_action_reward: float = 0.0,
    ) -> None:
        if config is not None:
            cfg = config if isinstance(config, Config) else load_config(config)
            space = space or factory.make_search_space(cfg)  # the evaluator's
            evaluator = evaluator or factory.make_evaluator(cfg)
        if space is None:
            space = Nb201Space()
        if evaluator is None:
            if space.name != "nb201":
                raise ValueError(
                    f"ArchitectureEnv: space {space.name!r} needs an evaluator (evaluator=) or "
                    "a config (config=); only the nb201 space has a default (the table)."
                )
            evaluator = Nb201Evaluator(dataset)
        self.space = space
        self.evaluator = evaluator
        self.failed_reward = float(failed_reward)
        self.invalid_action_reward = float(invalid_action_reward)
        self.signature = space.signature
        self.sizes = np.array([len(d.choices) for d in self.signature])
        self.max_choices = int(self.sizes.max())
        n = len(self.signature)
        # per decision: 0 not taken yet, 1 + index of the choice, or sizes + 1 if inactive;
        # last entry: the step of the next decision (n once the architecture is complete)
        self.observation_space = gym.spaces.MultiDiscrete(np.append(self.sizes + 2, n + 1))
        self.action_space = gym.spaces.Discrete(self.max_choices)
        self._actions: list[int] = []
        self._steps: list[int] = []
        self._pending: _Pause | None = None
        self._episodes = 0

    # -- gymnasium API ---------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: Mapping[str, Any] | None = None):
        super().reset(seed=seed)
        self._actions = []
        self._pending = self._advance()
        return self._observation(), self._info()

    def step(self, action):
        if self._pending is None:
            raise RuntimeError("ArchitectureEnv.step() called after the episode ended; reset().")
        index = int(action)
        pause = self._pending
        if not (0 <= index < len(pause.allowed) and pause.allowed[index]):
            self._pending = None
            info = {"invalid_action": True, "action_mask": np.zeros(self.max_choices, np.int8)}
            info["message"] = (
                f"action {index} is not allowed for decision `{pause.decision.name}` "
                f"(allowed: {np.flatnonzero(pause.allowed).tolist()})"
            )
            return self._observation(), self.invalid_action_reward, True, False, info
        self._actions.append(index)
        self._pending = self._advance()
        if self._pending is not None:
            return self._observation(), 0.0, False, False, self._info()
        return self._finish()

    # -- inside ----------------------------------------------------------------------------
    def _advance(self) -> _Pause | None:
        """Replay the actions so far through ``declare``; the next open decision, if any."""
        taken = iter(self._actions)
        steps: list[int] = []  # the step of each action taken

        def choose(decision: Decision, allowed: tuple[bool, ...]) -> int:
            index = next(taken, None)
            if index is None:
                raise _Pause(decision, allowed)
            steps.append(decision.step)
            return index

        try:
            self._sample, _ = self.space.sample(choose)
        except _Pause as pause:
            self._steps = steps
            return pause
        self._steps = steps
        return None

    def _observation(self) -> np.ndarray:
        n = len(self.signature)
        next_step = self._pending.decision.step if self._pending else n
        obs = np.zeros(n + 1, np.int64)
        obs[:next_step] = self.sizes[:next_step] + 1  # inactive unless an action was taken
        for step, action in zip(self._steps, self._actions):
            obs[step] = 1 + action
        obs[-1] = next_step
        return obs

    def _info(self) -> dict[str, Any]:
        pause = self._pending
        mask = np.zeros(self.max_choices, np.int8)
        mask[: len(pause.allowed)] = pause.allowed
        return {"action_mask": mask, "decision": pause.decision.name, "step": pause.decision.step}

    def _finish(self):
        sample: Sample = self._sample
        self._episodes += 1
        seed = int(self.np_random.integers(2**31 - 1))
        info: dict[str, Any] = {
            "action_mask": np.zeros(self.max_choices, np.int8),
            "architecture": dict(sample.architecture),
            "sample": sample,
        }
        try:
            outcome = self.evaluator.evaluate(sample.architecture, seed=seed, number=self._episodes)
        except ChildFailure as failure:
            info.update(failure=failure.reason, message=failure.message)
            return self._observation(), self.failed_reward, True, False, info
        info.update(metrics=dict(outcome.metrics), cost=outcome.cost)
        return self._observation(), float(outcome.reward), True, False, info


class ControllerAgent:
    """Our REINFORCE controller as an agent of :class:`ArchitectureEnv`.

    Each step it draws the current decision from the policy exactly as the built-in search
    loop does (same random numbers, same masks, same sampling without replacement), and at
    the end of an episode it tells the controller the reward, which updates the policy every
    ``batch_size`` episodes. For one seed, the environment and ``rlnas search`` therefore
    propose the same architectures::

        agent = ControllerAgent(ReinforceController(env.unwrapped.space, seed=0))
        obs, info = env.reset(seed=0)
        while True:
            obs, reward, done, _, info = env.step(agent.act(env, info))
            if done:
                agent.observe(info, reward)
                break
    """

    def __init__(self, controller: Any) -> None:
        self.controller = controller
        self._episode = None

    def act(self, env: gym.Env, info: Mapping[str, Any]) -> int:
        if self._episode is None:
            self._episode = self.controller.episode()
        decision = env.unwrapped.signature[int(info["step"])]
        allowed = tuple(bool(x) for x in info["action_mask"][: len(decision.choices)])
        return int(self._episode.choose(decision, allowed))

    def observe(self, info: Mapping[str, Any], reward: float) -> Mapping[str, float] | None:
        """End of an episode: the controller learns from it (returns its update metrics)."""
        episode, self._episode = self._episode, None
        if episode is None or "sample" not in info:  # an invalid action ended it early
            return None
        sample = episode.finish(info["sample"])
        if sample is None:
            return None
        return self.controller.tell(sample, None if "failure" in info else float(reward))
