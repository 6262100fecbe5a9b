"""Keras child builders: framework-free blueprints in, Keras 3 models out.

Importing this package imports Keras; the core (spaces, strategies, search) never does.
"""

from rlnas.keras_build.augment import augment_inputs
from rlnas.keras_build.batchnorm import recalibrate_batch_norm
from rlnas.keras_build.layers_model import build_model, compile_model, make_optimizer

__all__ = [
    "augment_inputs",
    "build_model",
    "compile_model",
    "make_optimizer",
    "recalibrate_batch_norm",
]
