"""What a trained child costs to run: measured latency (``latency_ms``) and LiteRT file size
(``tflite_bytes``), the objectives ``latency`` and ``tflite_bytes`` of ``search.objectives``.

The child evaluator measures them only when the search's objectives name them::

    measure(model, ("latency_ms",), LatencyConfig(method="tflite", runs=20, warmup=3))

Latency is one example at a time (batch 1, what an app on a phone does), on this machine,
the median of ``runs`` timed calls after ``warmup`` untimed ones (the first calls trace and
allocate). ``method``: ``keras`` calls the Keras model directly (``model(x,
training=False)``, no ``predict`` loop overhead); ``tflite`` converts the child to a float32
LiteRT flat buffer and times the interpreter's ``invoke``, the runtime a deployment uses
(:mod:`rlnas.export`). ``tflite_bytes`` is the size of that float32 flat buffer.

This module's config part imports no framework; Keras and TensorFlow load when a child is
measured.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Literal

import numpy as np

from rlnas.rules import Range, check_fields

MEASURED = ("latency_ms", "tflite_bytes")
"""The metrics this module can add to a child's outcome."""


@dataclass(frozen=True)
class LatencyConfig:
    """How a child's latency is measured (only when ``search.objectives`` has ``latency``)."""

    method: Literal["keras", "tflite"] = "keras"
    """``keras``: the Keras model called directly; ``tflite``: the LiteRT interpreter on the
    child converted to float32 (slower to set up, closer to a deployment)."""
    runs: Annotated[int, Range(ge=1, le=10000)] = 20
    """Timed calls; the median is reported."""
    warmup: Annotated[int, Range(ge=0, le=1000)] = 3
    """Untimed calls before the timed ones (tracing, allocation)."""

    def __post_init__(self) -> None:
        check_fields(self)


def measure(model, wanted: Sequence[str], config: LatencyConfig, seed: int = 0) -> dict[str, float]:
    """The metrics of :data:`MEASURED` that ``wanted`` names, for a built Keras ``model``."""
    out: dict[str, float] = {}
    if not any(w in MEASURED for w in wanted):
        return out
    shape = tuple(int(d) for d in model.inputs[0].shape[1:])
    x = np.random.default_rng(seed).standard_normal((1, *shape)).astype(np.float32)
    blob = None
    if "tflite_bytes" in wanted or ("latency_ms" in wanted and config.method == "tflite"):
        from rlnas.export import to_tflite  # lazy: TensorFlow

        blob = to_tflite(model)
        out["tflite_bytes"] = float(len(blob))
    if "latency_ms" in wanted:
        call = _keras_call(model, x) if config.method == "keras" else _tflite_call(blob, x)
        out["latency_ms"] = median_ms(call, config.runs, config.warmup)
    return {k: v for k, v in out.items() if k in wanted}


def median_ms(call: Callable[[], object], runs: int, warmup: int) -> float:
    """Median wall milliseconds of ``runs`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        call()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return 1000.0 * statistics.median(times)


def _keras_call(model, x: np.ndarray) -> Callable[[], object]:
    import keras  # lazy

    tensor = keras.ops.convert_to_tensor(x)

    def call():
        return keras.ops.convert_to_numpy(model(tensor, training=False))

    return call


def _tflite_call(blob: bytes | None, x: np.ndarray) -> Callable[[], object]:
    from rlnas.export import _interpreter  # lazy: TensorFlow or LiteRT

    assert blob is not None
    interpreter = _interpreter(blob)
    inp = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(inp["index"], x.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(inp["index"], x)
    return interpreter.invoke
