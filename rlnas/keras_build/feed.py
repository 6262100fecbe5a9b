"""Arrays into Keras's ``fit``, ``evaluate`` and ``predict`` through a plain tf.data pipeline.

Given NumPy arrays, Keras on TensorFlow builds a tf.data pipeline whose map and prefetch
are autotuned, and makes a new iterator over it for every epoch and every ``evaluate`` or
``predict`` call. Ending an autotuned iterator can block for seconds, the longer the more
batches it has produced, with the cores idle: at the first step of an epoch or on the return
from ``fit``. :func:`batches` gathers batches from a stream of row indices with autotuning
off and one batch prefetched, which ends at once (``benchmarks/feed.py`` compares the two).
The order is shuffled with an explicit seed, so a child or a final training draws the same
batches on every run.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def batches(
    x: np.ndarray,
    y: np.ndarray | None = None,
    *,
    batch_size: int,
    shuffle: bool = False,
    seed: int | None = None,
    repeat: bool = False,
):
    """A ``tf.data.Dataset`` of ``(x, y)`` batches (``x`` alone when ``y`` is None).

    With ``shuffle``, each pass over the data is a fresh permutation drawn from ``seed``; with
    ``repeat``, the passes follow one another without end (for a budget of steps)."""
    if batch_size < 1:
        raise ValueError(f"batch_size: expected a positive integer, got {batch_size!r}")
    if y is not None and len(y) != len(x):
        raise ValueError(f"batches: {len(x)} inputs but {len(y)} targets")
    tensors = tuple(tf.convert_to_tensor(a) for a in ((x,) if y is None else (x, y)))
    order = tf.data.Dataset.range(len(x))
    if shuffle:
        order = order.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        order = order.repeat()

    def gather(rows):
        picked = tuple(tf.gather(t, rows) for t in tensors)
        return picked if y is not None else picked[0]

    data = order.batch(batch_size).map(gather).prefetch(1)
    options = tf.data.Options()
    options.autotune.enabled = False
    options.experimental_optimization.apply_default_optimizations = False
    return data.with_options(options)
