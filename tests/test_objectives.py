"""Parsing `search.objectives` and scalarising several objectives into one reward."""

from __future__ import annotations

import numpy as np
import pytest

from rlnas.errors import ConfigError
from rlnas.objectives import (
    MAXIMIZE,
    MINIMIZE,
    Objective,
    Scalarizer,
    default_method,
    parse_objective,
    parse_objectives,
)
from rlnas.pareto import pareto_mask


def test_parse_typical_lists():
    acc, lat = parse_objectives(["accuracy", "latency:pixel3"])
    assert acc == Objective("accuracy", "reward", MAXIMIZE)
    assert lat == Objective(
        "latency:pixel3", "hw_pixel3_latency_ms", MINIMIZE, "pixel3", None, "ms"
    )
    objs = parse_objectives(
        ["val_accuracy", "params", "mmacs", "latency", "tflite_bytes", "energy:edgegpu"]
    )
    assert [o.metric for o in objs] == [
        "val_accuracy",
        "params",
        "mmacs",
        "latency_ms",
        "tflite_bytes",
        "hw_edgegpu_energy_mj",
    ]
    assert [o.maximize for o in objs] == [True, False, False, False, False, False]
    assert objs[3].device is None  # measured on this machine
    assert objs[5].device == "edgegpu" and objs[5].unit == "mJ"


def test_target():
    obj = parse_objective("latency:pixel3 <= 20")
    assert obj.target == 20.0 and obj.name == "latency:pixel3"


@pytest.mark.parametrize(
    "specs,match",
    [
        (["accuracy", "latncy"], r"unknown objective 'latncy'.*Did you mean `latency`"),
        (["accuracy", "latency:pixel4"], r"unknown HW-NAS-Bench device 'pixel4'.*pixel3"),
        (["accuracy", "energy:pixel3"], r"no 'energy' for device 'pixel3'"),
        (["accuracy", "energy"], r"'energy' needs a device.*edgegpu"),
        (["accuracy", "params:pixel3"], r"'params' takes no device"),
        (["accuracy", "latency:pixel3<=-5"], r"target of .* must be a number > 0, got '-5'"),
        (["accuracy", "latency<=0"], r"must be a number > 0"),
        (["accuracy", "latency<=fast"], r"must be a number > 0, got 'fast'"),
        (["accuracy<=3", "latency"], r"target on a maximised objective"),
        (["accuracy"], r"at least two objectives"),
        (["accuracy", "params", "params"], r"'params' repeats"),
        (["accuracy", "reward"], r"'reward' repeats"),  # the same metric twice
        ("accuracy,latency", r"expected a list"),
        (["accuracy", ""], r"expected an objective name"),
    ],
)
def test_bad_specs_are_one_line_config_errors(specs, match):
    with pytest.raises(ConfigError, match=match) as e:
        parse_objectives(specs)
    assert "\n" not in str(e.value) and "search.objectives" in str(e.value)


def test_value_reads_reward_or_metric():
    acc, lat = parse_objectives(["accuracy", "latency:pixel3"])
    assert acc.value(0.9, {}) == 0.9
    assert lat.value(0.9, {"hw_pixel3_latency_ms": 3.5}) == 3.5
    with pytest.raises(ConfigError, match="no `hw_pixel3_latency_ms`.*they have: params"):
        lat.value(0.9, {"params": 1.0})


def test_default_method():
    assert default_method(parse_objectives(["accuracy", "latency:pixel3"])) == "dominance"
    assert default_method(parse_objectives(["accuracy", "latency:pixel3<=5"])) == "mnasnet-soft"


def test_mnasnet_soft_and_hard_follow_the_paper():
    objs = parse_objectives(["accuracy", "latency:pixel3<=10"])
    soft, hard = Scalarizer(objs, "mnasnet-soft"), Scalarizer(objs, "mnasnet-hard")
    # soft: acc * (lat / T) ** -0.07 on both sides of the target
    assert soft([0.8, 20.0]) == pytest.approx(0.8 * 2.0**-0.07)
    assert soft([0.8, 5.0]) == pytest.approx(0.8 * 0.5**-0.07)
    assert soft([0.8, 5.0]) > 0.8 > soft([0.8, 20.0])
    # hard: no reward for being under the target, (lat / T) ** -1 above it
    assert hard([0.8, 5.0]) == pytest.approx(0.8)
    assert hard([0.8, 10.0]) == pytest.approx(0.8)
    assert hard([0.8, 20.0]) == pytest.approx(0.4)


def test_mnasnet_multiplies_one_factor_per_constraint():
    objs = parse_objectives(["accuracy", "latency<=10", "params<=1000"])
    s = Scalarizer(objs, "mnasnet-hard")
    assert s([0.9, 20.0, 4000.0]) == pytest.approx(0.9 * 0.5 * 0.25)


def test_mnasnet_rejects_what_it_cannot_scalarise():
    with pytest.raises(ConfigError, match="needs a target on every cost objective"):
        Scalarizer(parse_objectives(["accuracy", "latency<=10", "params"]), "mnasnet-soft")
    with pytest.raises(ConfigError, match="scales one accuracy"):
        Scalarizer(parse_objectives(["accuracy", "val_accuracy", "params<=9"]), "mnasnet-soft")
    with pytest.raises(ConfigError, match="scalarization.*one of chebyshev"):
        Scalarizer(parse_objectives(["accuracy", "params"]), "tchebycheff")


def test_random_weights_are_dirichlet_per_batch_and_seeded():
    objs = parse_objectives(["accuracy", "latency:pixel3", "params"])
    a, b = Scalarizer(objs, seed=3), Scalarizer(objs, seed=3)
    first = a.weights.copy()
    assert first.sum() == pytest.approx(1.0) and np.all(first > 0)
    assert np.allclose(first, b.weights)
    assert not np.allclose(a.new_weights(), first)
    draws = np.array([a.new_weights() for _ in range(2000)])
    assert np.allclose(draws.mean(axis=0), 1 / 3, atol=0.02)  # flat Dirichlet: mean 1/m


def test_chebyshev_and_linear_with_bounds():
    objs = parse_objectives(["accuracy", "latency:pixel3"])
    bounds = [(0.0, 1.0), (10.0, 0.0)]  # (worst, best)
    s = Scalarizer(objs, "chebyshev", bounds=bounds, rho=0.0)
    s.weights = np.array([0.5, 0.5])
    # normalised goodness (0.8, 0.6): gaps 0.5*0.2, 0.5*0.4 -> 1 - 0.2
    assert s([0.8, 4.0]) == pytest.approx(0.8)
    lin = Scalarizer(objs, "linear", bounds=bounds)
    lin.weights = np.array([0.25, 0.75])
    assert lin([0.8, 4.0]) == pytest.approx(0.25 * 0.8 + 0.75 * 0.6)


def test_chebyshev_reaches_a_non_convex_front_point_that_linear_misses():
    # front on a concave curve: the middle point lies below the line through the extremes
    objs = parse_objectives(["accuracy", "params"])
    bounds = [(0.0, 1.0), (1.0, 0.0)]
    front = np.array([[1.0, 1.0], [0.4, 0.4], [0.0, 0.0]])
    assert pareto_mask(front, maximize=[True, False]).all()
    best = {"linear": set(), "chebyshev": set()}
    for method in best:
        s = Scalarizer(objs, method, bounds=bounds, seed=0)
        for _ in range(300):
            s.new_weights()
            best[method].add(int(np.argmax([s(p) for p in front])))
    assert 1 in best["chebyshev"] and 1 not in best["linear"]


def test_running_bounds_without_given_bounds():
    s = Scalarizer(parse_objectives(["accuracy", "params"]), "linear")
    s.weights = np.array([0.5, 0.5])
    assert s([0.5, 100.0]) == pytest.approx(0.5)  # one point: no range yet, neutral 0.5
    s([0.9, 300.0])
    assert s([0.9, 100.0]) == pytest.approx(1.0)  # best accuracy and fewest parameters seen


def test_state_round_trip():
    objs = parse_objectives(["accuracy", "params"])
    a = Scalarizer(objs, seed=1)
    a([0.5, 10.0])
    b = Scalarizer(objs, seed=99)
    b.load_state_dict(a.state_dict())
    assert np.allclose(a.new_weights(), b.new_weights())
    assert a([0.7, 5.0]) == b([0.7, 5.0])


def test_dominance_counts_the_children_that_dominate_whatever_the_weights():
    objs = parse_objectives(["accuracy", "latency:pixel3"])
    for seed in range(5):  # every weight vector gives the same order across dominance counts
        s = Scalarizer(objs, "dominance", seed=seed)
        first = s([0.9, 2.0])  # nothing told before: dominated by none
        worse = s([0.8, 3.0])  # dominated by the first
        worst = s([0.7, 4.0])  # dominated by both
        other = s([0.95, 5.0])  # on the front again
        assert -1 < worse < 0 and -2 < worst < -1 and first >= 0 and other >= 0
        state = s.state_dict()
        again = Scalarizer(objs, "dominance", seed=seed)
        again.load_state_dict(state)
        assert again([0.6, 6.0]) == s([0.6, 6.0])  # the archive is part of the state
