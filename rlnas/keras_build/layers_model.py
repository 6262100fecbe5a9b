"""Build and compile a Keras 3 model from a `layers` space blueprint.

The builder reads only the framework-free :class:`~rlnas.spaces.layers.LayersBlueprint` and
the task's :class:`~rlnas.tasks.TaskSpec`; it makes no decisions of its own. It uses built-in
Keras layers only (no ``Lambda``, no custom classes), so that a saved ``.keras`` file loads
with ``keras.saving.load_model(path, safe_mode=True)`` and no ``custom_objects``::

    model = build_model(space.blueprint(architecture), data.spec)
    compile_model(model, blueprint.training)

Layout: input -> a table's embedded columns (:mod:`rlnas.keras_build.embed`) -> augmentation
(training only) -> the stem, if any (``LayersConfig.stem_filters``: a 3x3 convolution and
batch normalisation) -> layers -> global average pooling
(images, sequences) -> dropout -> the task's head (:mod:`rlnas.keras_build.head`:
``Dense(num_classes, softmax)``, or a linear output per regression target).

* ``conv``/``sepconv``: (separable) convolution without bias, batch normalisation, then the
  activation (as Zoph & Le's conv layers); ``Dense`` for flat inputs. ``maxpool``/``avgpool``
  use the kernel as the pool size. All padding is ``same``, so a stride ``s`` maps a size
  ``n`` to ``ceil(n / s)``, which the space tracks to mask strides.
* ``reduce_after`` layers end with a 2x2 max pooling (stride 2); their output, as later
  layers and skips see it, is the pooled one.
* Skips join a layer's *output*: earlier outputs larger than it are average-pooled by the
  size ratio (then zero-padded or cropped to the exact size), and merged by ``Add`` after a
  1x1 projection to the layer's channels where they differ, or by ``Concatenate``.
* Weight decay: decoupled in the optimizer for ``adamw`` (Loshchilov & Hutter 2019), an L2
  penalty ``wd/2 * |w|^2`` on every kernel otherwise (the classic coupled form).
"""

from __future__ import annotations

import math

import keras

from rlnas.keras_build.augment import augment_inputs
from rlnas.keras_build.embed import embed_columns
from rlnas.keras_build.head import classifier, head, loss_and_metrics
from rlnas.spaces.layers import LayersBlueprint, LayerSpec
from rlnas.spaces.training import TrainingSpec
from rlnas.tasks import TaskSpec

__all__ = ["build_model", "classifier", "compile_model", "make_optimizer", "stem"]
__all__ += ["weight_regularizer"]

BN_MOMENTUM = 0.9
"""Batch normalisation's momentum, as in ENAS (Keras's default: 0.99); children are validated
with re-estimated statistics anyway (:mod:`rlnas.keras_build.batchnorm`)."""

_LAYERS = {  # kind -> (conv, separable conv, max pool, avg pool)
    "image": ("Conv2D", "SeparableConv2D", "MaxPooling2D", "AveragePooling2D"),
    "sequence": ("Conv1D", "SeparableConv1D", "MaxPooling1D", "AveragePooling1D"),
}


def build_model(blueprint: LayersBlueprint, spec: TaskSpec) -> keras.Model:
    """The Keras model of ``blueprint`` for inputs described by ``spec`` (not compiled)."""
    kind = spec.input_kind
    training = blueprint.training
    reg = weight_regularizer(training)
    inputs = keras.Input(shape=spec.input_shape, name="input")
    x = augment_inputs(embed_columns(inputs, spec), training.augment, spec)
    if blueprint.stem_filters is not None:
        x = stem(x, blueprint.stem_filters, kind, reg)
    outputs = []
    for i, layer in enumerate(blueprint.layers):
        y = _operation(x, layer, kind, reg, f"layer{i}")
        if layer.skips:
            extra = [outputs[j] for j in layer.skips]
            y = _merge(y, extra, layer, kind, reg, f"layer{i}")
        if i in blueprint.reduce_after:
            pool = keras.layers.MaxPooling2D if kind == "image" else keras.layers.MaxPooling1D
            y = pool(2, padding="same", name=f"layer{i}_reduce")(y)
        outputs.append(y)
        x = y
    if kind == "image":
        x = keras.layers.GlobalAveragePooling2D(name="global_pool")(x)
    elif kind == "sequence":
        x = keras.layers.GlobalAveragePooling1D(name="global_pool")(x)
    if training.dropout > 0:
        x = keras.layers.Dropout(training.dropout, name="dropout")(x)
    return keras.Model(inputs, head(x, spec, reg), name="child")


def compile_model(
    model: keras.Model,
    training: TrainingSpec,
    label_smoothing: float = 0.0,
    *,
    spec: TaskSpec | None = None,
    metric: str = "loss",
) -> keras.Model:
    """Compile ``model`` with the optimizer, learning rate and weight decay of ``training``
    and the loss and metrics of the task of ``spec`` (None: a classification), plus the
    reward's ``metric`` (a name without ``val_``). A classification trains on integer
    labels; with ``label_smoothing`` or a one-hot metric, on one-hot targets."""
    model.compile(
        optimizer=make_optimizer(training),
        **loss_and_metrics(spec, metric, label_smoothing),
        jit_compile=False,  # XLA compilation costs more than it saves in a short child
    )
    return model


def make_optimizer(training: TrainingSpec) -> keras.optimizers.Optimizer:
    """adam, rmsprop, sgd (Nesterov momentum 0.9) or adamw (decoupled weight decay)."""
    lr = training.learning_rate
    if training.optimizer == "adam":
        return keras.optimizers.Adam(lr)
    if training.optimizer == "rmsprop":
        return keras.optimizers.RMSprop(lr)
    if training.optimizer == "sgd":
        return keras.optimizers.SGD(lr, momentum=0.9, nesterov=True)
    if training.optimizer == "adamw":
        return keras.optimizers.AdamW(lr, weight_decay=training.weight_decay)
    raise ValueError(f"train/optimizer: unknown optimizer {training.optimizer!r}")


def weight_regularizer(training: TrainingSpec) -> keras.regularizers.Regularizer | None:
    """The L2 penalty ``wd/2 * |w|^2`` of coupled weight decay, or None (no decay, or
    ``adamw``, which decays in the optimizer)."""
    if training.weight_decay == 0 or training.optimizer == "adamw":
        return None
    return keras.regularizers.L2(training.weight_decay / 2)


def stem(x, filters: int, kind: str, reg):
    """The stem of the `layers` and `nasnet` networks (NASNet's and ENAS's): a 3x3
    convolution and batch normalisation, no activation (the operations after it apply their
    own; a ReLU shared by every child dies in a super-network's warm-up)."""
    conv = getattr(keras.layers, _LAYERS[kind][0])
    make = conv(
        filters, 3, padding="same", use_bias=False, kernel_regularizer=reg, name="stem_conv"
    )
    return keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name="stem_bn")(make(x))


def _operation(x, layer: LayerSpec, kind: str, reg, name: str):
    """The layer's own operation on its input ``x``."""
    if layer.op == "identity":
        return x
    if kind == "flat":  # the MLP variant: conv is a dense layer (the space masks the rest)
        if layer.op != "conv":
            raise ValueError(f"{name}: operation {layer.op!r} needs a spatial input")
        x = keras.layers.Dense(
            layer.filters, use_bias=False, kernel_regularizer=reg, name=f"{name}_dense"
        )(x)
        return _normalize_activate(x, layer, name)
    conv, sepconv, maxpool, avgpool = (getattr(keras.layers, n) for n in _LAYERS[kind])
    if layer.op in ("maxpool", "avgpool"):
        pool = maxpool if layer.op == "maxpool" else avgpool
        return pool(layer.kernel, strides=layer.stride, padding="same", name=f"{name}_pool")(x)
    if layer.op == "conv":
        make, decay = conv, {"kernel_regularizer": reg}
    else:
        make, decay = sepconv, {"depthwise_regularizer": reg, "pointwise_regularizer": reg}
    x = make(
        layer.filters,
        layer.kernel,
        strides=layer.stride,
        padding="same",
        use_bias=False,
        name=f"{name}_{layer.op}",
        **decay,
    )(x)
    return _normalize_activate(x, layer, name)


def _normalize_activate(x, layer: LayerSpec, name: str):
    x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
    return keras.layers.Activation(layer.activation, name=f"{name}_act")(x)


def _merge(y, extra: list, layer: LayerSpec, kind: str, reg, name: str):
    """Join the outputs of earlier layers ``extra`` to ``y`` (add or concat)."""
    target = tuple(y.shape[1:-1])
    channels = y.shape[-1]
    joined = [y]
    for j, e in zip(layer.skips, extra):
        e = _resize(e, target, kind, f"{name}_from{j}")
        if layer.merge == "add" and e.shape[-1] != channels:
            e = _project(e, channels, kind, reg, f"{name}_from{j}_proj")
        joined.append(e)
    if layer.merge == "add":
        return keras.layers.Add(name=f"{name}_add")(joined)
    return keras.layers.Concatenate(name=f"{name}_concat")(joined)


def _resize(x, target: tuple, kind: str, name: str):
    """Average-pool ``x`` down to the spatial size ``target`` (exactly, by pad or crop)."""
    size = tuple(x.shape[1:-1])
    if size == target:
        return x
    factors = tuple(max(1, math.ceil(s / t)) for s, t in zip(size, target))
    pool = keras.layers.AveragePooling2D if kind == "image" else keras.layers.AveragePooling1D
    if any(f > 1 for f in factors):
        x = pool(factors, strides=factors, padding="same", name=f"{name}_pool")(x)
    size = tuple(x.shape[1:-1])
    pad = tuple((0, max(0, t - s)) for s, t in zip(size, target))
    crop = tuple((0, max(0, s - t)) for s, t in zip(size, target))
    two_d = kind == "image"
    if any(p[1] for p in pad):
        padding = keras.layers.ZeroPadding2D if two_d else keras.layers.ZeroPadding1D
        x = padding(pad if two_d else pad[0], name=f"{name}_pad")(x)
    if any(c[1] for c in crop):
        cropping = keras.layers.Cropping2D if two_d else keras.layers.Cropping1D
        x = cropping(crop if two_d else crop[0], name=f"{name}_crop")(x)
    return x


def _project(x, channels: int, kind: str, reg, name: str):
    """A 1x1 convolution (a dense layer for flat inputs) to ``channels`` channels."""
    if kind == "flat":
        return keras.layers.Dense(channels, use_bias=False, kernel_regularizer=reg, name=name)(x)
    conv = keras.layers.Conv2D if kind == "image" else keras.layers.Conv1D
    return conv(channels, 1, use_bias=False, kernel_regularizer=reg, name=name)(x)
