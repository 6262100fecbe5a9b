"""Keras child builders: framework-free blueprints in, Keras 3 models out.

Importing this package imports Keras; the core (spaces, strategies, search) never does.
"""

from rlnas.keras_build.augment import augment_inputs
from rlnas.keras_build.batchnorm import calibration_sample, recalibrate_batch_norm
from rlnas.keras_build.feed import batches
from rlnas.keras_build.layers_model import build_model as build_layers_model
from rlnas.keras_build.layers_model import compile_model, make_optimizer
from rlnas.keras_build.nasnet_model import build_nasnet_model
from rlnas.spaces.nasnet import NasnetBlueprint
from rlnas.spaces.user import UserBlueprint


def build_model(blueprint, spec):
    """The Keras model of a blueprint of any Keras space (dispatched on its type)."""
    if isinstance(blueprint, UserBlueprint):
        return blueprint.build()
    if isinstance(blueprint, NasnetBlueprint):
        return build_nasnet_model(blueprint, spec)
    return build_layers_model(blueprint, spec)


__all__ = [
    "augment_inputs",
    "batches",
    "build_layers_model",
    "build_model",
    "compile_model",
    "make_optimizer",
    "calibration_sample",
    "recalibrate_batch_norm",
]
