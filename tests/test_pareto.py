"""Non-dominated sorting, crowding distance and hypervolume against hand-computed cases."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlnas.errors import DataError
from rlnas.pareto import (
    crowding_distance,
    dominates,
    fronts,
    hypervolume,
    non_dominated_ranks,
    pareto_mask,
)


def test_dominates_respects_directions():
    assert dominates([1, 1], [2, 2])
    assert not dominates([1, 1], [1, 1])  # equal points do not dominate
    assert not dominates([1, 3], [2, 2])
    assert dominates([0.9, 2.0], [0.8, 3.0], maximize=[True, False])
    assert not dominates([0.9, 2.0], [0.8, 3.0], maximize=[False, False])


def test_ranks_by_hand_2d():
    # minimise both: A(1,5) B(2,2) C(5,1) are the front; D(3,3) is dominated by B only;
    # E(4,4) by B and D; F(6,6) by all others
    pts = [[1, 5], [2, 2], [5, 1], [3, 3], [4, 4], [6, 6]]
    assert non_dominated_ranks(pts).tolist() == [0, 0, 0, 1, 2, 3]
    assert [f.tolist() for f in fronts(pts)] == [[0, 1, 2], [3], [4], [5]]
    assert pareto_mask(pts).tolist() == [True, True, True, False, False, False]


def test_ranks_with_a_maximised_objective():
    pts = [[0.90, 5.0], [0.80, 2.0], [0.70, 6.0], [0.80, 2.0]]
    assert non_dominated_ranks(pts, maximize=[True, False]).tolist() == [0, 0, 1, 0]
    # the same numbers, both maximised: (0.90, 5.0) dominates (0.80, 2.0)
    assert non_dominated_ranks(pts, maximize=True).tolist() == [0, 1, 0, 1]


def test_ranks_by_hand_3d():
    pts = [[1, 2, 3], [3, 2, 1], [2, 2, 2], [2, 3, 3], [3, 3, 3]]
    assert non_dominated_ranks(pts).tolist() == [0, 0, 0, 1, 2]


def test_crowding_distance_by_hand():
    # front sorted by x: (0,4) (1,2) (3,1) (4,0); ranges 4 and 4
    pts = [[1, 2], [0, 4], [4, 0], [3, 1]]
    d = crowding_distance(pts)
    assert np.isinf(d[1]) and np.isinf(d[2])
    assert d[0] == pytest.approx((3 - 0) / 4 + (4 - 1) / 4)
    assert d[3] == pytest.approx((4 - 1) / 4 + (2 - 0) / 4)
    assert np.all(np.isinf(crowding_distance([[1, 2], [2, 1]])))


def test_hypervolume_2d_by_hand():
    # minimise; ref (4, 4): boxes [1,4]x[3,4], [2,4]x[2,4], [3,4]x[1,4]: 1*1 + 1*2 + 1*3
    assert hypervolume([[1, 3], [2, 2], [3, 1]], [4, 4]) == pytest.approx(6.0)
    # accuracy maximised, latency minimised (the module's example)
    pts = [[0.90, 5.0], [0.80, 2.0], [0.70, 6.0]]
    assert hypervolume(pts, [0.0, 10.0], maximize=[True, False]) == pytest.approx(6.9)
    assert hypervolume([[1, 1]], [3, 2]) == pytest.approx(2.0)


def test_hypervolume_3d_by_hand():
    # one point: a box
    assert hypervolume([[1, 2, 3]], [4, 4, 4]) == pytest.approx(3 * 2 * 1)
    # (0,0,1) and (1,1,0) with ref 3:
    # box A = 3*3*2 = 18, box B = 2*2*3 = 12, overlap [1,3]x[1,3]x[1,3] = 8 -> 22
    assert hypervolume([[0, 0, 1], [1, 1, 0]], [3, 3, 3]) == pytest.approx(22.0)
    # three points in a 2-cube: 3 boxes of volume 2*1*1, each pair overlaps in the unit
    # cube [1,2]^3, as do all three -> 6 - 3 + 1 = 4
    pts = [[0, 1, 1], [1, 0, 1], [1, 1, 0]]
    assert hypervolume(pts, [2, 2, 2]) == pytest.approx(4.0)
    # maximised: negate everything
    neg = (-np.array(pts)).tolist()
    assert hypervolume(neg, [-2, -2, -2], maximize=True) == pytest.approx(4.0)


def _brute_force(points, ref):
    """Inclusion-exclusion over every subset (minimisation): exact for tiny sets."""
    total = 0.0
    for k in range(1, len(points) + 1):
        for subset in itertools.combinations(points, k):
            corner = np.max(subset, axis=0)
            total += (-1) ** (k + 1) * np.prod(np.clip(np.asarray(ref) - corner, 0, None))
    return total


coords = st.integers(0, 6).map(float)


@settings(max_examples=60, deadline=None)
@given(
    st.integers(2, 4).flatmap(
        lambda m: st.lists(st.lists(coords, min_size=m, max_size=m), min_size=1, max_size=6)
    )
)
def test_hypervolume_matches_inclusion_exclusion(points):
    ref = [5.0] * len(points[0])
    assert hypervolume(points, ref) == pytest.approx(_brute_force(points, ref), abs=1e-9)


point_sets = st.integers(2, 3).flatmap(
    lambda m: st.tuples(
        st.lists(st.lists(coords, min_size=m, max_size=m), min_size=1, max_size=8),
        st.lists(coords, min_size=m, max_size=m),
    )
)


@settings(max_examples=80, deadline=None)
@given(point_sets)
def test_hypervolume_is_monotone_when_adding_a_point(case):
    points, extra = case
    ref = [5.0] * len(extra)
    assert hypervolume(points + [extra], ref) >= hypervolume(points, ref) - 1e-12


@settings(max_examples=80, deadline=None)
@given(point_sets)
def test_dominated_points_do_not_change_the_hypervolume(case):
    points, _ = case
    ref = [7.0] * len(points[0])
    worse = [[min(v + 1.0, 7.5) for v in p] for p in points]  # each dominated by its source
    assert hypervolume(points + worse, ref) == pytest.approx(hypervolume(points, ref))


@settings(max_examples=50, deadline=None)
@given(point_sets)
def test_hypervolume_is_zero_outside_the_reference_box(case):
    points, _ = case
    m = len(points[0])
    # every point reaches or passes the reference in at least one objective
    outside = [p[:-1] + [6.0 + p[-1]] for p in points]
    assert hypervolume(outside, [6.0] * m) == 0.0
    assert hypervolume(points, [0.0] * m) == 0.0


@settings(max_examples=50, deadline=None)
@given(point_sets)
def test_front_zero_is_mutually_non_dominated_and_dominates_the_rest(case):
    points, _ = case
    ranks = non_dominated_ranks(points)
    for i, j in itertools.permutations(range(len(points)), 2):
        if dominates(points[i], points[j]):
            assert ranks[i] < ranks[j]


def test_bad_input():
    with pytest.raises(DataError, match="finite"):
        hypervolume([[1.0, float("nan")]], [2, 2])
    with pytest.raises(DataError, match="reference: expected 2"):
        hypervolume([[1, 1]], [2, 2, 2])
    with pytest.raises(DataError, match="maximize: expected 2 flags"):
        non_dominated_ranks([[1, 1]], maximize=[True])
    assert hypervolume([], [1, 1]) == 0.0
    assert non_dominated_ranks(np.zeros((0, 2))).tolist() == []
