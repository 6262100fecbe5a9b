"""The strategy interface (``ask``/``tell``) and sampling without replacement.

A strategy proposes children with :meth:`Strategy.ask` and learns from their rewards with
:meth:`Strategy.tell`. Parallel evaluation is "ask k times, tell as results arrive"; resume
is "restore :meth:`Strategy.state_dict`".

By default (``unique=True``) a strategy never proposes an architecture it has proposed
before in the same search: a trie of the proposed decision paths masks every branch whose
architectures have all been proposed, so no child is ever paid for twice and a converged
policy moves on to its next-best architecture instead of resampling its favourite.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import numpy as np

from rlnas.errors import RlnasError, SearchAborted
from rlnas.space import Architecture, Chooser, Decision, Sample, Space

Metrics = Mapping[str, float] | None
"""What the evaluator measured of a child (``None``: nothing passed on)."""
Update = Mapping[str, float] | None
"""What a ``tell`` returns: the metrics of the policy update it made, or ``None``."""


class SpaceExhausted(RlnasError):
    """Every architecture of the space has been proposed; the search ends normally."""


class StrategyFault(SearchAborted):
    """The strategy cannot go on (its policy became non-finite, its sampling is stuck).

    Fatal: the search stops cleanly with its state saved; the message names the setting to
    change.
    """


class _Node:
    __slots__ = ("children", "n_open", "full")

    def __init__(self) -> None:
        self.children: dict[int, _Node] = {}
        self.n_open = 0
        self.full = False


class SeenTrie:
    """The decision paths already proposed, so that sampling can skip exhausted branches."""

    def __init__(self) -> None:
        self.root = _Node()
        self.hashes: set[str] = set()

    def __len__(self) -> int:
        return len(self.hashes)

    def __contains__(self, architecture: Architecture) -> bool:
        return architecture.hash in self.hashes

    @property
    def exhausted(self) -> bool:
        return self.root.full

    def draw(self, space: Space, choose: Chooser) -> Sample:
        """Sample through ``choose`` with exhausted branches masked, and remember the result."""
        if self.root.full:
            raise SpaceExhausted(f"every architecture of space `{space.name}` was proposed.")
        path: list[_Node] = [self.root]
        narrowed: list[tuple[bool, ...]] = []

        def guarded(decision: Decision, allowed: tuple[bool, ...]) -> int:
            node = path[-1]
            node.n_open = sum(allowed)
            full = [i for i, child in node.children.items() if child.full]
            open_ = allowed
            if full:
                open_ = tuple(ok and i not in full for i, ok in enumerate(allowed))
            narrowed.append(open_)
            index = choose(decision, open_)
            if index in full and allowed[index]:  # (the space reports its own mask's breaches)
                raise StrategyFault(
                    f"decision `{decision.name}`: the chooser returned index {index}, a branch "
                    "whose architectures were all proposed already (it must respect the mask)."
                )
            path.append(node.children.setdefault(index, _Node()))
            return index

        sample, _ = space.sample(guarded)
        it = iter(narrowed)
        masks = tuple(next(it) if a >= 0 else m for a, m in zip(sample.actions, sample.masks))
        self._close(path, sample.architecture)
        return Sample(sample.architecture, sample.actions, masks)

    def add(self, sample: Sample) -> None:
        """Remember a sample drawn elsewhere (its masks must be the space's own)."""
        if sample.architecture.hash in self.hashes:
            return
        path = [self.root]
        for action, mask in zip(sample.actions, sample.masks):
            if action < 0:
                continue
            node = path[-1]
            node.n_open = sum(mask)
            path.append(node.children.setdefault(action, _Node()))
        self._close(path, sample.architecture)

    def _close(self, path: list[_Node], architecture: Architecture) -> None:
        self.hashes.add(architecture.hash)
        path[-1].full = True
        for node in reversed(path[:-1]):
            if sum(child.full for child in node.children.values()) < node.n_open:
                break
            node.full = True


class Strategy(ABC):
    """Base class: holds the space, a seeded generator and the trie of proposed paths.

    Optional capabilities are declared here with their defaults, so that callers ask
    ``strategy.can_reset`` rather than probing the object: :attr:`step` (policy updates so
    far), :meth:`reset` (with :attr:`can_reset`), saving the policy (:attr:`can_save`) and
    the checkpoint state (:meth:`state_dict`, :meth:`load_state_dict`).
    """

    name = "strategy"
    can_reset: ClassVar[bool] = False
    """Whether :meth:`reset` is implemented."""
    can_save: ClassVar[bool] = False
    """Whether the strategy has a policy that :mod:`rlnas.zoo` can save (REINFORCE)."""
    multi_objective: ClassVar[bool] = False
    """Whether :meth:`tell` ranks the objectives' values itself (nsga); otherwise a
    multi-objective search tells the strategy one scalarised reward."""
    reads_objectives: bool = False
    """Whether a multi-objective search tells :meth:`tell`, beside the scalarised reward, each
    objective's value as the metric ``objective/NAME``, larger is better (REINFORCE's front
    replay)."""
    _step = 0

    def __init__(self, space: Space, *, seed: int = 0, unique: bool = True) -> None:
        self.space = space
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.seen: SeenTrie | None = SeenTrie() if unique else None

    @abstractmethod
    def ask(self) -> Sample:
        """Propose the next child."""

    @abstractmethod
    def tell(self, sample: Sample, reward: float | None, metrics: Metrics = None) -> Update:
        """Report a child's reward (``None``: the child failed and teaches nothing) and its
        metrics (what the evaluator measured; only a :attr:`multi_objective` strategy reads
        them, the others learn from ``reward`` alone).

        Returns the update's metrics when this call triggered a learning update.
        """

    @property
    def step(self) -> int:
        """Number of policy updates so far (0 for a strategy that does not learn)."""
        return self._step

    @step.setter
    def step(self, value: int) -> None:
        self._step = int(value)

    def reset(self, seed: int) -> None:
        """Start afresh, exactly as a new strategy with this seed would (the benchmark runs
        hundreds of seeds with one strategy); only where :attr:`can_reset` is true."""
        raise NotImplementedError(f"strategy `{self.name}` cannot reset; build a new one.")

    def _draw(self, choose: Chooser) -> Sample:
        if self.seen is None:
            return self.space.sample(choose)[0]
        return self.seen.draw(self.space, choose)

    def _random_choice(self, decision: Decision, allowed: tuple[bool, ...]) -> int:
        options = [i for i, ok in enumerate(allowed) if ok]  # plain Python, no array per draw
        return options[int(self.rng.random() * len(options))]

    def mark_seen(self, architectures: Iterable[Architecture]) -> None:
        """Treat these architectures as already proposed (resume, shared caches)."""
        if self.seen is None:
            return
        for arch in architectures:
            if arch not in self.seen:
                self.seen.add(self.space.replay(arch)[0])

    # -- state for checkpoints -------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly where this strategy stopped (JSON-ready)."""
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
