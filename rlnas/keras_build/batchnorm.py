"""Re-estimate batch-normalisation statistics of a briefly trained model.

A child trains for a few dozen steps. Its batch-norm moving averages then mix the
initial statistics (mean 0, variance 1) with those of weights that changed at every step,
and in inference mode such a child often predicts a single class although it learned, so
it validates near chance.
Re-estimating the statistics with the final weights on a few training batches, as
single-path one-shot NAS does for every sampled subnet (Guo et al., ECCV 2020), makes the
validation accuracy measure what the architecture learned, at the cost of one forward pass.
"""

from __future__ import annotations

import keras
import numpy as np


def calibration_sample(x: np.ndarray, size: int) -> np.ndarray:
    """``size`` examples of ``x`` (all of them if fewer), drawn with a fixed seed and kept in
    their order: the batches that re-estimate batch-norm statistics."""
    n = len(x)
    pick = np.random.default_rng(0).permutation(n)[: min(n, size)]
    return x[np.sort(pick)]


def recalibrate_batch_norm(model: keras.Model, x: np.ndarray, batch_size: int = 256) -> int:
    """Set every BatchNormalization layer's moving statistics to their mean over ``x``.

    Runs ``model`` in training mode on batches of ``x`` with the momentum of batch ``k``
    set to ``k / (k + 1)``, so the moving values end as the plain average of the batch
    statistics; the layers' momentum is restored afterwards. Weights are not changed.
    Returns how many layers were re-estimated.
    """
    layers = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    if not layers or len(x) == 0:
        return 0
    saved = [layer.momentum for layer in layers]
    try:
        for k, start in enumerate(range(0, len(x), batch_size)):
            for layer in layers:
                layer.momentum = k / (k + 1)
            model(x[start : start + batch_size], training=True)
    finally:
        for layer, momentum in zip(layers, saved):
            layer.momentum = momentum
    return len(layers)
