"""Regularized evolution: aging population, tournament, one-decision mutation, state."""

from __future__ import annotations

import numpy as np
import pytest
from grid_toy import GridEvaluator, GridSpace, grid_reward

from rlnas.config import load_config
from rlnas.errors import ConfigError, FieldError
from rlnas.executors import InlineExecutor
from rlnas.search import Budget, Search
from rlnas.space import Space
from rlnas.strategies.base import SpaceExhausted
from rlnas.strategies.evolution import EvolutionConfig, RegularizedEvolution
from rlnas.strategies.random_search import RandomSearch


def run_search(strategy, children=None, cost=None):
    budget = Budget(children=children, cost_seconds=cost)
    return Search(strategy, InlineExecutor(GridEvaluator()), budget, seed=0).run()


def test_config_checks_state_the_rule():
    with pytest.raises(FieldError, match=r"`sample_size`: expected an integer in 1\.\.population"):
        EvolutionConfig(population=4, sample_size=5)
    with pytest.raises(FieldError, match="`population`: expected an integer >= 2, got 1"):
        EvolutionConfig(population=1)
    with pytest.raises(ConfigError, match="Did you mean `evolution.sample_size`"):
        load_config(None, ["evolution.sample_sise=3"])


def test_first_population_is_random_then_children_are_one_decision_mutations():
    space = GridSpace()
    rea = RegularizedEvolution(space, EvolutionConfig(population=5, sample_size=2), seed=3)
    parents = {}
    for step in range(60):
        sample = rea.ask()
        space.replay(sample.architecture)  # every proposal is valid (masks re-checked)
        if step >= 5:
            members = [dict(s.architecture) for s, _ in rea.population]
            distances = [_distance(dict(sample.architecture), m) for m in members]
            parents[step] = min(distances)
        rea.tell(sample, grid_reward(sample.architecture))
        assert len(rea.population) == min(step + 1, 5)  # aging keeps the size
    # a mutation changes one decision (plus `extra` when d0 switches it on or off); a
    # random fallback is allowed when the parent's neighbourhood is used up
    close = sum(d <= 2 for d in parents.values())
    assert close >= 0.9 * len(parents)
    assert min(parents.values()) >= 1  # never a copy of a member


def _distance(a: dict, b: dict) -> int:
    return sum(a.get(k) != b.get(k) for k in set(a) | set(b))


def test_aging_removes_the_oldest_even_when_it_is_the_best():
    space = GridSpace()
    rea = RegularizedEvolution(space, EvolutionConfig(population=3, sample_size=3), seed=0)
    samples = [rea.ask() for _ in range(4)]
    for s, r in zip(samples, [9.0, 1.0, 2.0, 3.0]):
        rea.tell(s, r)
    assert [r for _, r in rea.population] == [1.0, 2.0, 3.0]
    rea.tell(rea.ask(), None)  # a failed child does not join
    assert len(rea.population) == 3


def test_mutation_changes_exactly_one_active_decision_and_respects_masks():
    space = GridSpace()
    rea = RegularizedEvolution(space, seed=1)
    parent, _ = space.replay({"d0": 2, "d1": 1, "d2": 0, "d3": 0, "d4": 0, "d5": 0, "extra": 1})
    counts: dict[str, int] = {}
    for _ in range(200):
        child = rea.mutate(parent)
        space.replay(child.architecture)
        changed = [
            k for k in parent.architecture if child.architecture.get(k) != parent.architecture[k]
        ]
        if len(changed) > 1:  # only a change of d0 forces repairs: d1's mask, extra's use
            assert changed[0] == "d0" and set(changed) <= {"d0", "d1", "extra"}, changed
            d0 = child.architecture["d0"]
            assert d0 == parent.architecture["d1"] or (d0 == 0) != (parent.architecture["d0"] == 0)
        counts[changed[0]] = counts.get(changed[0], 0) + 1
    assert set(counts) == set(parent.architecture)  # any active decision may mutate


def test_unique_never_repeats_and_falls_back_to_random_until_exhausted():
    class Tiny(Space):
        name = "tiny"

        def declare(self, d):
            return [d.choice("a", [0, 1, 2]), d.choice("b", [0, 1])]

    rea = RegularizedEvolution(Tiny(), EvolutionConfig(population=2, sample_size=1), seed=0)
    seen = set()
    for _ in range(6):
        s = rea.ask()
        assert s.architecture not in seen
        seen.add(s.architecture)
        rea.tell(s, float(s.architecture["a"]))
    with pytest.raises(SpaceExhausted):
        rea.ask()


def test_state_dict_round_trip_continues_identically():
    space = GridSpace()
    a = RegularizedEvolution(space, seed=7)
    proposed = []
    for _ in range(25):
        s = a.ask()
        proposed.append(s.architecture)
        a.tell(s, grid_reward(s.architecture))
    b = RegularizedEvolution(space, seed=99)
    b.load_state_dict(a.state_dict())
    b.mark_seen(proposed)  # what a resumed search restores from its trials
    for _ in range(10):
        sa, sb = a.ask(), b.ask()
        assert sa.architecture == sb.architecture
        a.tell(sa, 1.0)
        b.tell(sb, 1.0)


def test_reset_equals_a_fresh_strategy():
    space = GridSpace()
    used = RegularizedEvolution(space, seed=1)
    for _ in range(30):
        s = used.ask()
        used.tell(s, grid_reward(s.architecture))
    used.reset(5)
    fresh = RegularizedEvolution(space, seed=5)
    for _ in range(40):
        s1, s2 = used.ask(), fresh.ask()
        assert s1.architecture == s2.architecture
        used.tell(s1, grid_reward(s1.architecture))
        fresh.tell(s2, grid_reward(s2.architecture))


@pytest.mark.parametrize("make", [RegularizedEvolution, RandomSearch])
def test_budgets_are_respected(make):
    result = run_search(make(GridSpace(), seed=0), children=37)
    assert len(result.trials) == 37
    result = run_search(make(GridSpace(), seed=0), cost=50.0)
    counted = [t for t in result.trials if t.state.value == "COMPLETE"]
    assert sum(t.cost for t in counted) <= 50.0
    assert sum(t.cost for t in counted) + 4.0 > 50.0  # it ran until the budget (cost <= 4)


def test_learns_better_than_random_search_on_a_toy_reward():
    """Mean best reward after 120 children over 10 seeds: REA ahead by a clear margin."""
    best = {}
    for make in (RegularizedEvolution, RandomSearch):
        runs = [run_search(make(GridSpace(), seed=s), children=120) for s in range(10)]
        best[make.name] = np.mean([r.best.reward for r in runs])
    assert best["rea"] >= best["random"] + 0.25, best


class Stubborn(RandomSearch):
    """A strategy whose chooser ignores the exhausted branches it is shown: always the
    first choice the space allows."""

    name = "stubborn"

    def ask(self):
        return self._draw(lambda decision, allowed: 0)


def test_a_chooser_that_keeps_returning_proposed_architectures_stops_with_an_error():
    from rlnas.strategies import StrategyFault

    class One(Space):
        name = "one"

        def declare(self, d):
            return d.choice("a", [1, 2]), d.choice("b", [3, 4])

    strategy = Stubborn(One(), seed=0)
    first = strategy.ask()
    with pytest.raises(StrategyFault, match=r"decision `b`: the chooser returned index 0, a"):
        strategy.ask()
    assert dict(first.architecture) == {"a": 1, "b": 3}


def test_capabilities_are_declared_on_the_base_class():
    """``step``, ``reset``/``can_reset`` and ``can_save`` have defaults on ``Strategy``; the
    search, the bench and the zoo read them instead of probing the object."""
    from rlnas import zoo
    from rlnas.strategies import Strategy
    from rlnas.strategies.reinforce import ReinforceController

    class Plain(Strategy):
        name = "plain"

        def ask(self):
            return self._draw(self._random_choice)

        def tell(self, sample, reward):
            return None

    space = GridSpace()
    plain = Plain(space)
    assert plain.step == 0 and not plain.can_reset and not plain.can_save
    with pytest.raises(NotImplementedError, match="strategy `plain` cannot reset"):
        plain.reset(1)
    assert plain.state_dict().keys() == {"rng"}
    assert RandomSearch.can_reset and RegularizedEvolution.can_reset
    assert ReinforceController.can_reset and ReinforceController.can_save
    assert not zoo.can_save(RandomSearch(space)) and not zoo.can_save(plain)
    random = RandomSearch(space, seed=3)
    first = [random.ask().architecture for _ in range(5)]
    random.reset(3)
    assert [random.ask().architecture for _ in range(5)] == first
    assert search_steps(ReinforceController(space, seed=0)) == [0, 0, 1, 1]


def search_steps(controller) -> list[int]:
    """The ``controller_step`` the search records per child (batch_size 2: 0, 0, 1, 1)."""
    result = Search(controller, InlineExecutor(GridEvaluator()), Budget(children=4), 0).run()
    return [t.controller_step for t in result.trials]
