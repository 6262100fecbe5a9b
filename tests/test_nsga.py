"""NSGA-style evolution: crowded-comparison tournament on an aging population."""

from __future__ import annotations

import numpy as np
import pytest
from grid_toy import GridSpace, grid_reward

from rlnas.errors import ConfigError
from rlnas.objectives import parse_objectives
from rlnas.pareto import hypervolume
from rlnas.strategies.evolution import EvolutionConfig
from rlnas.strategies.nsga import NsgaEvolution, crowded_scores
from rlnas.strategies.random_search import RandomSearch

OBJECTIVES = parse_objectives(["accuracy", "params"])
REFERENCE = [0.0, 26.0]  # accuracy >= 0 and cost <= 25 on the grid


def toy_cost(arch) -> float:
    """A cost that rises with some of the decisions that raise grid_reward (d0, d2, d3,
    extra) and ignores others (d1, d4, d5: free accuracy), so that there is a front."""
    return 1.0 + arch["d0"] + arch["d2"] ** 2 + arch["d3"] ** 2 + (arch.get("extra") or 0)


def run(strategy, n: int) -> float:
    points = []
    for _ in range(n):
        sample = strategy.ask()
        acc, cost = grid_reward(sample.architecture), toy_cost(sample.architecture)
        if isinstance(strategy, NsgaEvolution):
            strategy.tell(sample, acc, {"params": cost})
        else:  # the base interface's tell has no metrics yet
            strategy.tell(sample, acc)
        points.append((acc, cost))
    return hypervolume(points, REFERENCE, maximize=[True, False])


def test_beats_random_search_on_hypervolume_at_the_same_budget():
    seeds, n = range(5), 150
    nsga = [run(NsgaEvolution(GridSpace(), OBJECTIVES, seed=s), n) for s in seeds]
    rand = [run(RandomSearch(GridSpace(), seed=s), n) for s in seeds]
    assert np.mean(nsga) > 1.03 * np.mean(rand), (nsga, rand)
    assert sum(a > b for a, b in zip(nsga, rand)) >= 4


def test_crowded_scores_order_by_front_then_isolation():
    # minimise both: front A(0,4) B(1,3) C(1.1,2.9) D(3,1) E(4,0); F(3.5,3.5) is rank 1.
    # crowding (ranges 4 and 4): B 1.1/4 + 1.1/4, C 2/4 + 2/4, D 2.9/4 + 2.9/4
    values = np.array([[0, 4], [1, 3], [1.1, 2.9], [3, 1], [4, 0], [3.5, 3.5]], float)
    s = crowded_scores(values, [False, False])
    assert min(s[:5]) > s[5]  # any front member beats the dominated one
    assert s[0] == s[4] == 0.5  # extremes: infinite crowding distance
    assert s[3] > s[2] > s[1]  # the more isolated, the better
    assert s[1] == pytest.approx(0.5 * 0.55 / 1.55)
    # directions matter: maximising both, the front is A, F, E and F dominates B, C, D
    up = crowded_scores(values, [True, True])
    assert min(up[[0, 4, 5]]) >= 0 > max(up[[1, 2, 3]])


def test_tell_reads_the_objectives_and_the_tournament_prefers_the_front():
    config = EvolutionConfig(population=3, sample_size=3)
    nsga = NsgaEvolution(GridSpace(), OBJECTIVES, config, unique=False)
    samples = [nsga.ask() for _ in range(3)]
    for s, (acc, cost) in zip(samples, [(1.0, 5.0), (2.0, 1.0), (0.5, 9.0)]):
        nsga.tell(s, acc, {"params": cost})
    assert list(nsga.values) == [(1.0, 5.0), (2.0, 1.0), (0.5, 9.0)]
    best = max(nsga.population, key=lambda m: m[1])[0]
    assert best is samples[1]  # (2.0, 1.0) dominates both others
    # tournaments of 3 drawn with replacement include it 1 - (2/3)^3 = 70% of the time;
    # (1.0, 5.0) wins the rest but for the 1/27 of draws of (0.5, 9.0) alone
    parents = [0, 0, 0]
    for _ in range(300):
        child = nsga.ask()
        near = [_distance(child, s) for s in samples]
        parents[int(np.argmin(near))] += 1
    assert parents[1] > 180 and parents[2] < 40, parents


def _distance(child, parent) -> int:
    a, b = dict(child.architecture), dict(parent.architecture)
    return sum(a.get(k) != b.get(k) for k in set(a) | set(b))


def test_aging_failures_and_missing_values():
    nsga = NsgaEvolution(GridSpace(), OBJECTIVES, EvolutionConfig(population=2, sample_size=1))
    for acc in (1.0, 2.0, 3.0):
        nsga.tell(nsga.ask(), acc, {"params": 1.0})
    assert [v[0] for v in nsga.values] == [2.0, 3.0]  # the oldest died
    assert len(nsga.population) == 2
    nsga.tell(nsga.ask(), None)  # failed child
    nsga.tell(nsga.ask(), 4.0, {"params": float("nan")})  # no measurement for this cell
    assert [v[0] for v in nsga.values] == [2.0, 3.0]
    with pytest.raises(ConfigError, match="no `params`"):
        nsga.tell(nsga.ask(), 1.0, {"latency_ms": 3.0})


def test_needs_two_objectives():
    with pytest.raises(ConfigError, match="at least two objectives"):
        NsgaEvolution(GridSpace(), OBJECTIVES[:1])


def test_state_round_trip_continues_identically():
    a = NsgaEvolution(GridSpace(), OBJECTIVES, seed=4)
    run(a, 30)
    b = NsgaEvolution(GridSpace(), OBJECTIVES, seed=99)
    b.load_state_dict(a.state_dict())
    b.mark_seen(s.architecture for s, _ in a.population)
    assert list(b.values) == list(a.values)
    for _ in range(5):
        sa, sb = a.ask(), b.ask()
        assert sa.architecture == sb.architecture
        a.tell(sa, 1.0, {"params": 2.0})
        b.tell(sb, 1.0, {"params": 2.0})


def test_reset_starts_afresh():
    a = NsgaEvolution(GridSpace(), OBJECTIVES, seed=1)
    first = run(a, 40)
    a.reset(1)
    assert not a.values and not a.population
    assert run(a, 40) == first
