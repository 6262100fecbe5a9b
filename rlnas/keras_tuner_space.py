"""KerasTuner hyperparameters as an rlnas space: each one a categorical decision.

Used by :class:`rlnas.keras_tuner.ReinforceOracle` (see its module for the mapping's rules):
:func:`grid` lists a hyperparameter's values, :class:`HyperSpace` declares them in their
registration order with conditional scopes as inactive decisions, and ``encode``/``decode``
turn the controller's state into JSON for KerasTuner's ``oracle.json``.
"""

from __future__ import annotations

import base64
import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from keras_tuner.engine import hyperparameters as hps

from rlnas.errors import SpaceError
from rlnas.space import Decider, Space, Value


def grid(hp: Any, *, grid_points: int = 10, max_choices: int = 256) -> tuple[Value, ...]:
    """The choices of one KerasTuner hyperparameter (``()`` for ``hp.Fixed``)."""
    if isinstance(hp, hps.Fixed):
        return ()
    if isinstance(hp, hps.Boolean):
        return (False, True)
    if isinstance(hp, hps.Choice):
        values = tuple(hp.values)
    elif isinstance(hp, (hps.Int, hps.Float)):
        values = _numeric_grid(hp, grid_points, max_choices)
    else:
        raise SpaceError(
            f"hyperparameter `{hp.name}`: {type(hp).__name__} is not supported (expected "
            "Choice, Boolean, Int, Float or Fixed)."
        )
    if len(values) > max_choices:
        raise SpaceError(
            f"hyperparameter `{hp.name}` has {len(values)} values, more than max_choices="
            f"{max_choices}; give it a larger step or raise max_choices."
        )
    return values


def _numeric_grid(hp: Any, points: int, max_choices: int) -> tuple[Value, ...]:
    if hp.step is not None:
        raw = list(itertools.islice(hp.values, max_choices + 1))  # KerasTuner's own grid
    else:
        lo, hi = hp.min_value, hp.max_value
        if hp.sampling == "linear":
            raw = [lo + (hi - lo) * i / (points - 1) for i in range(points)]
        else:
            span = math.log(hi) - math.log(lo)
            raw = [lo * math.exp(span * i / (points - 1)) for i in range(points)]
            if hp.sampling == "reverse_log":
                raw = [hi + lo - v for v in reversed(raw)]
    if isinstance(hp, hps.Int):
        return tuple(dict.fromkeys(int(round(v)) for v in raw))
    return tuple(dict.fromkeys(float(f"{v:.12g}") for v in raw))  # 0.30000000000000004 -> 0.3


class HyperSpace(Space):
    """The rlnas space of a list of KerasTuner hyperparameters (their registration order).

    ``declare`` returns the trial's values: every active hyperparameter by its KerasTuner
    name (fixed ones included). A name registered twice, under different conditions, is
    declared as ``name``, ``name~2``, ... (only one of them is active in any child).
    """

    def __init__(
        self,
        space: Sequence[Any],
        name: str = "keras_tuner",
        *,
        grid_points: int = 10,
        max_choices: int = 256,
    ) -> None:
        self.name = name
        self.hps = list(space)
        self.choices = [
            grid(hp, grid_points=grid_points, max_choices=max_choices) for hp in self.hps
        ]
        self.names: list[str] = []
        for hp in self.hps:
            n = sum(1 for x in self.names if x.split("~")[0] == hp.name)
            self.names.append(hp.name if n == 0 else f"{hp.name}~{n + 1}")
        if not any(self.choices):
            raise SpaceError(
                "the hypermodel declares no tunable hyperparameter (only hp.Fixed or none); "
                "nothing to search."
            )

    def declare(self, d: Decider) -> dict[str, Value]:
        values: dict[str, Value] = {}
        for hp, name, choices in zip(self.hps, self.names, self.choices):
            active = all(c.is_active(values) for c in hp.conditions)
            if not choices:
                if active:
                    values[hp.name] = hp.value
                continue
            value = d.choice(name, choices, active=active)
            if active:
                values[hp.name] = value
        return values


def encode(obj: Any) -> Any:
    """A controller state as JSON: arrays as base64 of their bytes (exact, compact)."""
    if isinstance(obj, np.ndarray):
        data = base64.b64encode(np.ascontiguousarray(obj).tobytes()).decode()
        return {"__ndarray__": data, "dtype": str(obj.dtype), "shape": list(obj.shape)}
    if isinstance(obj, Mapping):
        return {str(k): encode(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [encode(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def decode(obj: Any) -> Any:
    if isinstance(obj, dict):
        if "__ndarray__" in obj:
            raw = base64.b64decode(obj["__ndarray__"])
            return np.frombuffer(raw, obj["dtype"]).reshape(obj["shape"]).copy()
        return {k: decode(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [decode(v) for v in obj]
    return obj
