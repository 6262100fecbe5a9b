"""Pareto fronts in NumPy: non-dominated sorting, crowding distance and hypervolume.

Conventions, shared by every function here:

* ``points`` is an ``(n, m)`` array: ``n`` points, ``m`` objectives, all finite.
* ``maximize`` says, per objective, whether larger is better (a sequence of ``m`` bools, or
  one bool for all; default: every objective is minimised). Internally each maximised column
  is negated, so everything below is minimisation.
* ``a`` dominates ``b`` when ``a`` is no worse in every objective and better in at least one.
* The hypervolume is the volume of the region that at least one point dominates and that is
  bounded by the ``reference`` point (in the objectives' own units and directions). A point
  contributes only if it is strictly better than the reference in every objective.

Example (accuracy maximised, latency minimised)::

    pts = [[0.90, 5.0], [0.80, 2.0], [0.70, 6.0]]
    non_dominated_ranks(pts, maximize=[True, False])    # [0, 0, 1]
    hypervolume(pts, reference=[0.0, 10.0], maximize=[True, False])
    # 0.80 * 8 + (0.90 - 0.80) * 5 = 6.9
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rlnas.errors import DataError

Directions = bool | Sequence[bool] | None


def to_minimisation(points: object, maximize: Directions = None) -> np.ndarray:
    """``points`` as a float ``(n, m)`` array with every maximised column negated."""
    array = np.asarray(points, dtype=np.float64)
    if array.ndim == 1 and array.size == 0:
        array = array.reshape(0, 0)
    if array.ndim != 2:
        raise DataError(f"points: expected an (n, m) array, got shape {array.shape}.")
    if not np.all(np.isfinite(array)):
        raise DataError("points: every objective value must be finite (got NaN or inf).")
    return array * _signs(maximize, array.shape[1])


def _signs(maximize: Directions, m: int) -> np.ndarray:
    if maximize is None or isinstance(maximize, bool | np.bool_):
        return np.full(m, -1.0 if maximize else 1.0)
    flags = list(maximize)
    if len(flags) != m:
        raise DataError(f"maximize: expected {m} flags (one per objective), got {len(flags)}.")
    return np.array([-1.0 if f else 1.0 for f in flags])


def dominates(a: object, b: object, maximize: Directions = None) -> bool:
    """Whether point ``a`` dominates point ``b``."""
    pa, pb = to_minimisation([a, b], maximize)
    return bool(np.all(pa <= pb) and np.any(pa < pb))


def _domination_matrix(p: np.ndarray) -> np.ndarray:
    """``d[i, j]``: point i dominates point j (minimisation)."""
    le = np.all(p[:, None, :] <= p[None, :, :], axis=2)
    lt = np.any(p[:, None, :] < p[None, :, :], axis=2)
    return le & lt


def non_dominated_ranks(points: object, maximize: Directions = None) -> np.ndarray:
    """The front of every point: 0 for the non-dominated, 1 for those only they dominate, ...

    Deb et al.'s fast non-dominated sort (NSGA-II, 2002): count for each point how many
    dominate it, peel off the points with count zero, and repeat. O(m n^2) time and memory.
    """
    p = to_minimisation(points, maximize)
    n = len(p)
    ranks = np.full(n, -1, dtype=np.int64)
    if n == 0:
        return ranks
    dom = _domination_matrix(p)
    count = dom.sum(axis=0)
    current = np.flatnonzero(count == 0)
    rank = 0
    while current.size:
        ranks[current] = rank
        count = count - dom[current].sum(axis=0)
        count[ranks >= 0] = -1  # already ranked
        current = np.flatnonzero(count == 0)
        rank += 1
    return ranks


def fronts(points: object, maximize: Directions = None) -> list[np.ndarray]:
    """Indices of the points in each front, best front first."""
    ranks = non_dominated_ranks(points, maximize)
    return [np.flatnonzero(ranks == r) for r in range(int(ranks.max(initial=-1)) + 1)]


def pareto_mask(points: object, maximize: Directions = None) -> np.ndarray:
    """True for the non-dominated points (duplicates of a non-dominated point are kept)."""
    return non_dominated_ranks(points, maximize) == 0


def crowding_distance(points: object) -> np.ndarray:
    """NSGA-II's crowding distance of each point within one front (larger = more isolated).

    Per objective, the points are sorted; the two extremes get ``inf`` and every other point
    adds the gap between its neighbours divided by the objective's range. The directions do
    not matter (the distance is symmetric), so there is no ``maximize`` argument.
    """
    p = to_minimisation(points)
    n, m = p.shape
    distance = np.zeros(n)
    if n <= 2:
        return np.full(n, np.inf)
    for k in range(m):
        order = np.argsort(p[:, k], kind="stable")
        values = p[order, k]
        span = values[-1] - values[0]
        distance[order[0]] = distance[order[-1]] = np.inf
        if span > 0:
            distance[order[1:-1]] += (values[2:] - values[:-2]) / span
    return distance


def hypervolume(points: object, reference: object, maximize: Directions = None) -> float:
    """The volume dominated by ``points`` and bounded by ``reference`` (exact).

    Two objectives: a sweep over the points sorted by the first objective, O(n log n).
    More: slicing along the last objective ("HSO", While et al. 2006), recursing on the
    non-dominated points of each slice; exponential in the worst case, meant for the fronts
    of a search (tens to hundreds of points, up to four or five objectives).
    """
    p = to_minimisation(points, maximize)
    ref = np.asarray(reference, dtype=np.float64).reshape(-1)
    m = p.shape[1] if p.size else ref.size
    if ref.size != m or not np.all(np.isfinite(ref)):
        raise DataError(f"reference: expected {m} finite values, got {reference!r}.")
    if p.size == 0:
        return 0.0
    ref = ref * _signs(maximize, m)
    p = p[np.all(p < ref, axis=1)]
    if len(p) == 0:
        return 0.0
    return float(_hv(_non_dominated(p), ref))


def _non_dominated(p: np.ndarray) -> np.ndarray:
    """The distinct non-dominated rows of ``p`` (minimisation)."""
    p = np.unique(p, axis=0)
    return p[~_domination_matrix(p).any(axis=0)]


def _hv(p: np.ndarray, ref: np.ndarray) -> float:
    """Hypervolume of mutually non-dominated points, all strictly inside the box."""
    m = p.shape[1]
    if m == 1:
        return float(ref[0] - p[:, 0].min())
    if m == 2:
        order = np.argsort(p[:, 0])
        xs, ys = p[order, 0], p[order, 1]  # non-dominated: y falls as x rises
        widths = np.append(xs[1:], ref[0]) - xs
        return float(np.sum(widths * (ref[1] - ys)))
    order = np.argsort(p[:, -1])
    p = p[order]
    bounds = np.append(p[1:, -1], ref[-1])
    volume = 0.0
    for i in range(len(p)):
        depth = bounds[i] - p[i, -1]
        if depth > 0:  # points with equal last values share one slice
            volume += depth * _hv(_non_dominated(p[: i + 1, :-1]), ref[:-1])
    return volume
