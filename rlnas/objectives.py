"""What a multi-objective search optimises (``search.objectives``) and how RL scalarises it.

An objective is written ``name``, ``name:device`` or either followed by ``<=target``::

    parse_objectives(["accuracy", "latency:pixel3"])
    parse_objectives(["val_accuracy", "params", "mmacs", "latency", "tflite_bytes",
                      "energy:edgegpu"])
    parse_objectives(["accuracy", "latency:pixel3<=20"])   # a latency budget of 20 ms

Each becomes an :class:`Objective`: the name as written, the key of the trial's metrics it
reads (``reward``: the trial's reward itself), its direction and, for the HW-NAS-Bench
objectives of the table mode, the device. A target turns an objective into a MnasNet
constraint.

The REINFORCE controller needs one number per child; a :class:`Scalarizer` makes it:

* ``mnasnet-soft`` / ``mnasnet-hard`` (Tan et al. 2019): ``acc * prod (m / target) ** w``
  over the objectives with a target, ``w = alpha`` if ``m <= target`` else ``beta``; soft
  ``alpha = beta = -0.07`` (a steady trade-off: 2x the cost costs ~5% of the reward), hard
  ``alpha = 0, beta = -1`` (free below the target, sharply penalised above it).
* ``chebyshev`` / ``linear``: a weight vector drawn from a flat Dirichlet per controller
  batch (:meth:`Scalarizer.new_weights`) over objectives normalised to [0, 1] (1 = best).
* ``dominance``: minus the number of children told so far that dominate this one, plus half
  its Chebyshev value as a tie-break (< 1, so it never overturns a domination count): a
  reward whose order does not change with the batch's weights, so the controller's
  quantile advantage and elite replay compare like with like across batches.

Default (:func:`default_method`): ``mnasnet-soft`` when some objective has a target (the user
named a budget and wants the best model near it, as MnasNet), otherwise ``dominance`` (the
user wants the front). Its primary term does not depend on the batch's weights, so a reward
means the same in every batch; the Chebyshev tie-break (rather than linear, which only
reaches the points on the convex hull of the front, while the augmented Chebyshev distance
to the ideal point reaches every Pareto-optimal point, Miettinen 1999) with a fresh weight
vector per batch (ParEGO's recipe, Knowles 2006) spreads successive batches along the front.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rlnas.errors import ConfigError, did_you_mean, require_one_of
from rlnas.hw_table import DEVICE_METRICS, UNITS, check_device

MAXIMIZE, MINIMIZE = "maximize", "minimize"
REWARD = "reward"
"""Metric key meaning "the trial's reward" (the search's accuracy metric)."""

# name -> (metric key, direction, unit); the device objectives are built from hw_table
PLAIN: dict[str, tuple[str, str, str]] = {
    "accuracy": (REWARD, MAXIMIZE, ""),
    "reward": (REWARD, MAXIMIZE, ""),
    "val_accuracy": ("val_accuracy", MAXIMIZE, ""),
    "test_accuracy": ("test_accuracy", MAXIMIZE, ""),
    "val_loss": ("val_loss", MINIMIZE, ""),
    "params": ("params", MINIMIZE, "parameters"),
    "mmacs": ("mmacs", MINIMIZE, "million multiply-adds"),
    "latency": ("latency_ms", MINIMIZE, "ms"),
    "tflite_bytes": ("tflite_bytes", MINIMIZE, "bytes"),
}
DEVICE_OBJECTIVES = ("latency", "energy")
"""Objectives that take ``:device`` (HW-NAS-Bench; ``latency`` alone is measured here)."""
METHODS = ("chebyshev", "linear", "dominance", "mnasnet-soft", "mnasnet-hard")
MNASNET = {"mnasnet-soft": (-0.07, -0.07), "mnasnet-hard": (0.0, -1.0)}
"""MnasNet's exponents (alpha below or at the target, beta above it)."""


@dataclass(frozen=True)
class Objective:
    """One optimised quantity."""

    name: str
    """As written in the config, without the target (``latency:pixel3``)."""
    metric: str
    """Key in the trial's metrics (``reward``: the trial's reward)."""
    direction: str
    """``maximize`` or ``minimize``."""
    device: str | None = None
    """HW-NAS-Bench device of a table objective, else ``None``."""
    target: float | None = None
    """MnasNet target (a budget), ``None``: unconstrained."""
    unit: str = ""

    @property
    def maximize(self) -> bool:
        return self.direction == MAXIMIZE

    def value(self, reward: float | None, metrics: Mapping[str, float]) -> float:
        """This objective's value for a trial with ``reward`` and ``metrics``.

        A missing metric is a :class:`ConfigError`: the evaluator does not produce what the
        objectives name.
        """
        if self.metric == REWARD:
            if reward is None:
                raise ConfigError(f"objective `{self.name}`: the trial has no reward.")
            return float(reward)
        if self.metric not in metrics:
            raise ConfigError(
                f"objective `{self.name}`: the trial's metrics have no `{self.metric}` "
                f"(they have: {', '.join(sorted(metrics)) or 'none'})."
            )
        return float(metrics[self.metric])


def hw_metric_key(device: str, metric: str) -> str:
    """The metrics key of a HW-NAS-Bench value, e.g. ``hw_pixel3_latency_ms``."""
    return f"hw_{device}_{metric}_{UNITS[metric].lower()}"


def parse_objective(spec: str, *, field: str = "search.objectives") -> Objective:
    """One spec string -> :class:`Objective` (one-line :class:`ConfigError` if invalid)."""
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(
            f"`{field}`: expected an objective name such as 'latency:pixel3', got {spec!r}."
        )
    text, _, target_text = spec.replace(" ", "").partition("<=")
    name, _, device = text.partition(":")
    target = _target(spec, target_text, field) if target_text else None
    known = sorted({*PLAIN, *DEVICE_OBJECTIVES})
    if name not in known:
        raise ConfigError(
            f"`{field}`: unknown objective {name!r}; expected one of {', '.join(known)}."
            + did_you_mean(name, known)
        )
    if device:
        if name not in DEVICE_OBJECTIVES:
            raise ConfigError(
                f"`{field}`: objective {name!r} takes no device (got {spec!r}); only "
                f"{' and '.join(DEVICE_OBJECTIVES)} do."
            )
        check_device(device, name, field=f"`{field}` {spec!r}")
        metric, unit = hw_metric_key(device, name), UNITS[name]
        objective = Objective(text, metric, MINIMIZE, device, target, unit)
    elif name == "energy":
        devices = ", ".join(d for d, ms in DEVICE_METRICS.items() if "energy" in ms)
        raise ConfigError(
            f"`{field}`: objective 'energy' needs a device, e.g. 'energy:edgegpu' "
            f"(devices with energy: {devices})."
        )
    else:
        metric, direction, unit = PLAIN[name]
        objective = Objective(text, metric, direction, None, target, unit)
    if target is not None and objective.maximize:
        raise ConfigError(
            f"`{field}`: {spec!r} sets a target on a maximised objective; targets are budgets "
            "on costs such as latency, params or mmacs."
        )
    return objective


def _target(spec: str, text: str, field: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not np.isfinite(value) or value <= 0:
        raise ConfigError(f"`{field}`: the target of {spec!r} must be a number > 0, got {text!r}.")
    return value


def parse_objectives(
    specs: Sequence[str], *, field: str = "search.objectives"
) -> tuple[Objective, ...]:
    """A list of spec strings -> objectives: at least two, none repeated."""
    if isinstance(specs, str) or not isinstance(specs, Sequence):
        raise ConfigError(f"`{field}`: expected a list of objectives, got {specs!r}.")
    objectives = tuple(parse_objective(s, field=field) for s in specs)
    if len(objectives) < 2:
        raise ConfigError(
            f"`{field}`: a multi-objective search needs at least two objectives, got "
            f"{list(specs)!r}; e.g. ['accuracy', 'latency:pixel3']."
        )
    metrics = [o.metric for o in objectives]
    for i, key in enumerate(metrics):
        if key in metrics[:i]:
            raise ConfigError(f"`{field}`: objective {specs[i]!r} repeats an earlier one.")
    return objectives


def default_method(objectives: Sequence[Objective]) -> str:
    """``mnasnet-soft`` when some objective has a target, else ``dominance``."""
    return "mnasnet-soft" if any(o.target is not None for o in objectives) else "dominance"


class Scalarizer:
    """One reward per child out of several objectives (see the module's docstring).

    ``bounds`` are per objective ``(worst, best)`` values used to normalise for ``chebyshev``
    and ``linear`` (e.g. the table's range); without them the range of the values seen so far
    is used. ``rho`` is the augmentation term of the Chebyshev form (small, so that among
    points with the same worst weighted gap the one better elsewhere wins).
    """

    def __init__(
        self,
        objectives: Sequence[Objective],
        method: str | None = None,
        *,
        bounds: Sequence[tuple[float, float]] | None = None,
        seed: int = 0,
        rho: float = 0.05,
    ) -> None:
        self.objectives = tuple(objectives)
        self.method = method or default_method(self.objectives)
        require_one_of("search.scalarization", self.method, METHODS)
        m = len(self.objectives)
        if self.method in MNASNET:
            _check_mnasnet(self.objectives, self.method)
        if bounds is not None and len(bounds) != m:
            raise ConfigError(f"bounds: expected {m} (worst, best) pairs, got {len(bounds)}.")
        self.bounds = None if bounds is None else np.asarray(bounds, np.float64)
        self.low = np.full(m, np.inf)
        self.high = np.full(m, -np.inf)
        if not rho >= 0:
            raise ConfigError(f"rho: expected a number >= 0, got {rho!r}.")
        self.rho = float(rho)
        self.rng = np.random.default_rng(seed)
        self.weights = self.new_weights()
        self.archive: list[np.ndarray] = []
        """Values told so far (``dominance``), in minimisation form."""
        self._signs = np.array([-1.0 if o.maximize else 1.0 for o in self.objectives])

    def new_weights(self) -> np.ndarray:
        """Draw the weight vector for the next controller batch (flat Dirichlet)."""
        self.weights = self.rng.dirichlet(np.ones(len(self.objectives)))
        return self.weights

    def values(self, reward: float | None, metrics: Mapping[str, float]) -> np.ndarray:
        """The objectives' values of one trial, in their own units."""
        return np.array([o.value(reward, metrics) for o in self.objectives])

    def __call__(self, values: Sequence[float]) -> float:
        """The scalar reward (larger is better) of one child's objective values."""
        v = np.asarray(values, np.float64)
        if self.method in MNASNET:
            return self._mnasnet(v)
        g = self.normalise(v)
        gap = self.weights * (1.0 - g)
        if self.method == "linear":
            return float(np.sum(self.weights * g))
        chebyshev = float(1.0 - gap.max() - self.rho * gap.sum())
        if self.method != "dominance":
            return chebyshev
        p = v * self._signs
        seen = np.array(self.archive).reshape(len(self.archive), len(v))
        dominated_by = int(np.sum(np.all(seen <= p, axis=1) & np.any(seen < p, axis=1)))
        self.archive.append(p)
        return float(-dominated_by + 0.5 * chebyshev)

    def normalise(self, v: np.ndarray) -> np.ndarray:
        """Each value mapped to [0, 1], 1 the best end of its range."""
        if self.bounds is not None:
            worst, best = self.bounds[:, 0], self.bounds[:, 1]
        else:
            self.low, self.high = np.minimum(self.low, v), np.maximum(self.high, v)
            up = np.array([o.maximize for o in self.objectives])
            best = np.where(up, self.high, self.low)
            worst = np.where(up, self.low, self.high)
        span = best - worst
        safe = np.where(span == 0, 1.0, span)
        return np.where(span == 0, 0.5, np.clip((v - worst) / safe, 0.0, 1.0))

    def _mnasnet(self, v: np.ndarray) -> float:
        alpha, beta = MNASNET[self.method]
        reward = 1.0
        for o, x in zip(self.objectives, v):
            if o.maximize:
                reward *= x
            elif o.target is not None:
                ratio = x / o.target
                reward *= ratio ** (alpha if x <= o.target else beta)
        return float(reward)

    def state_dict(self) -> dict[str, Any]:
        return {
            "rng": self.rng.bit_generator.state,
            "weights": self.weights.tolist(),
            "low": self.low.tolist(),
            "high": self.high.tolist(),
            "archive": [a.tolist() for a in self.archive],
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.weights = np.asarray(state["weights"], np.float64)
        self.low = np.asarray(state["low"], np.float64)
        self.high = np.asarray(state["high"], np.float64)
        self.archive = [np.asarray(a, np.float64) for a in state.get("archive", [])]


def _check_mnasnet(objectives: Sequence[Objective], method: str) -> None:
    maximised = [o.name for o in objectives if o.maximize]
    if len(maximised) != 1:
        raise ConfigError(
            f"search.scalarization: {method} scales one accuracy by cost factors; the "
            f"objectives maximise {maximised or 'nothing'}."
        )
    free = [o.name for o in objectives if not o.maximize and o.target is None]
    if free or all(o.target is None for o in objectives):
        raise ConfigError(
            f"search.scalarization: {method} needs a target on every cost objective, e.g. "
            f"'latency:pixel3<=20'; without one: {free}."
        )
