"""Build a Keras 3 model from a `nasnet` space blueprint (Zoph et al. 2018, CIFAR layout).

Layout: input -> augmentation (training only) -> 3x3 stem conv + BN -> ``cells_per_stage``
Normal cells, then per reduction stage one Reduction cell (filters doubled) and
``cells_per_stage`` Normal cells -> ReLU -> global average pooling -> dropout ->
``Dense(num_classes, softmax)`` (a linear output per target for a regression).

Inside a cell, as in NASNet:

* the two cell inputs are first brought to the cell's ``filters`` channels by a
  ReLU-1x1 conv-BN; when ``prev_prev`` has twice the resolution of ``prev`` (the first cell
  after a Reduction cell) it is halved by a *factorized reduction* instead: two 1x1
  convolutions of stride 2 on paths offset by one pixel, concatenated;
* in a Reduction cell, operations on the cell inputs have stride 2 (identity becomes a
  factorized reduction), operations on earlier blocks stride 1;
* every operation returns ``filters`` channels: pooling and identity are followed by a
  ReLU-1x1 conv-BN projection when their input has another width (a ``concat`` block has
  twice the filters);
* unused block outputs are concatenated into the cell output.

Only built-in Keras layers are used, so a saved ``.keras`` file loads with
``keras.saving.load_model(path, safe_mode=True)`` and no ``custom_objects``.
"""

from __future__ import annotations

import keras

from rlnas.keras_build.augment import augment_inputs
from rlnas.keras_build.head import head
from rlnas.keras_build.layers_model import BN_MOMENTUM, stem, weight_regularizer
from rlnas.spaces.nasnet import CellSpec, NasnetBlueprint
from rlnas.tasks import TaskSpec

L = keras.layers


def build_nasnet_model(blueprint: NasnetBlueprint, spec: TaskSpec) -> keras.Model:
    """The Keras model of ``blueprint`` for image inputs described by ``spec`` (not compiled)."""
    if spec.input_kind != "image":
        raise ValueError(f"nasnet cells need image inputs, got {spec.input_kind}")
    t = blueprint.training
    reg = weight_regularizer(t)
    b = _Builder(reg, blueprint.separable_repeats)
    inputs = keras.Input(shape=spec.input_shape, name="input")
    x = augment_inputs(inputs, t.augment, spec)
    x = stem(x, blueprint.stem_filters, spec.input_kind, reg)
    prev_prev = prev = x
    filters = blueprint.filters
    n = 0
    for stage in range(blueprint.reduction_stages + 1):
        if stage > 0:
            filters *= 2
            out = b.cell(blueprint.reduction, prev_prev, prev, filters, True, f"cell{n}_reduce")
            prev_prev, prev, n = prev, out, n + 1
        for _ in range(blueprint.cells_per_stage):
            out = b.cell(blueprint.normal, prev_prev, prev, filters, False, f"cell{n}")
            prev_prev, prev, n = prev, out, n + 1
    x = L.Activation("relu", name="head_relu")(prev)
    x = L.GlobalAveragePooling2D(name="global_pool")(x)
    if t.dropout > 0:
        x = L.Dropout(t.dropout, name="dropout")(x)
    return keras.Model(inputs, head(x, spec, reg), name="child")


def _size(x) -> tuple[int, int]:
    return (int(x.shape[1]), int(x.shape[2]))


class _Builder:
    """Layer factories sharing the weight regularizer and the separable-conv repeats."""

    def __init__(self, reg, separable_repeats: int) -> None:
        self.reg = reg
        self.repeats = separable_repeats

    def cell(self, cell: CellSpec, h0, h1, filters: int, reduce: bool, name: str):
        """One cell on inputs ``h0`` (prev_prev) and ``h1`` (prev); returns its output."""
        if _size(h0) != _size(h1):
            h0 = self.factorized_reduce(h0, filters, f"{name}_in0")
        else:
            h0 = self.relu_conv_bn(h0, filters, f"{name}_in0")
        h1 = self.relu_conv_bn(h1, filters, f"{name}_in1")
        states = [h0, h1]
        for j, block in enumerate(cell.blocks):
            outs = []
            for side, (i, op) in enumerate(zip(block.inputs, block.ops)):
                stride = 2 if reduce and i < 2 else 1
                outs.append(self.op(states[i], op, filters, stride, f"{name}_b{j}{'ab'[side]}"))
            merge = L.Add if block.combine == "add" else L.Concatenate
            states.append(merge(name=f"{name}_b{j}_{block.combine}")(outs))
        unused = [states[2 + j] for j in cell.unused]
        if len(unused) == 1:
            return unused[0]
        return L.Concatenate(name=f"{name}_out")(unused)

    def op(self, x, op: str, filters: int, stride: int, name: str):
        """Operation ``op`` with ``stride``, returning ``filters`` channels."""
        if op == "identity":
            if stride == 2:
                return self.factorized_reduce(x, filters, f"{name}_reduce")
            return x if x.shape[-1] == filters else self.relu_conv_bn(x, filters, f"{name}_proj")
        if op in ("max3x3", "avg3x3"):
            pool = L.MaxPooling2D if op == "max3x3" else L.AveragePooling2D
            x = pool(3, strides=stride, padding="same", name=f"{name}_{op}")(x)
            return x if x.shape[-1] == filters else self.relu_conv_bn(x, filters, f"{name}_proj")
        if op in ("sep3x3", "sep5x5"):
            kernel = 3 if op == "sep3x3" else 5
            for r in range(self.repeats):
                x = L.Activation("relu", name=f"{name}_{op}_relu{r}")(x)
                x = L.SeparableConv2D(
                    filters, kernel, strides=stride if r == 0 else 1, padding="same",
                    use_bias=False, depthwise_regularizer=self.reg,
                    pointwise_regularizer=self.reg, name=f"{name}_{op}_{r}",
                )(x)  # fmt: skip
                x = L.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_{op}_bn{r}")(x)
            return x
        if op == "dil3x3":  # Keras has no strided dilated conv: subsample after it
            x = L.Activation("relu", name=f"{name}_dil_relu")(x)
            x = L.SeparableConv2D(
                filters, 3, dilation_rate=2, padding="same", use_bias=False,
                depthwise_regularizer=self.reg, pointwise_regularizer=self.reg,
                name=f"{name}_dil",
            )(x)  # fmt: skip
            if stride == 2:
                x = L.MaxPooling2D(1, strides=2, name=f"{name}_dil_subsample")(x)
            return L.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_dil_bn")(x)
        if op == "conv1x3_3x1":
            x = L.Activation("relu", name=f"{name}_fact_relu")(x)
            for k, (kernel, strides) in enumerate((((1, 3), (1, stride)), ((3, 1), (stride, 1)))):
                x = L.Conv2D(
                    filters, kernel, strides=strides, padding="same", use_bias=False,
                    kernel_regularizer=self.reg, name=f"{name}_fact{k}",
                )(x)  # fmt: skip
            return L.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_fact_bn")(x)
        raise ValueError(f"nasnet: unknown operation {op!r}")

    def relu_conv_bn(self, x, filters: int, name: str):
        """ReLU, 1x1 convolution to ``filters`` channels, batch normalisation."""
        x = L.Activation("relu", name=f"{name}_relu")(x)
        x = L.Conv2D(filters, 1, use_bias=False, kernel_regularizer=self.reg, name=f"{name}_conv")(
            x
        )
        return L.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn")(x)

    def factorized_reduce(self, x, filters: int, name: str):
        """Halve height and width with two offset 1x1 stride-2 paths (NASNet), to ``filters``.

        Both paths give ``ceil(n / 2)`` pixels, as stride-2 ``same`` convolutions do.
        """
        x = L.Activation("relu", name=f"{name}_relu")(x)
        a = L.AveragePooling2D(1, strides=2, name=f"{name}_path0_pool")(x)
        a = L.Conv2D(
            filters // 2, 1, use_bias=False, kernel_regularizer=self.reg, name=f"{name}_path0"
        )(a)
        b = L.ZeroPadding2D(((0, 1), (0, 1)), name=f"{name}_path1_pad")(x)
        b = L.Cropping2D(((1, 0), (1, 0)), name=f"{name}_path1_shift")(b)
        b = L.AveragePooling2D(1, strides=2, name=f"{name}_path1_pool")(b)
        b = L.Conv2D(
            filters - filters // 2, 1, use_bias=False, kernel_regularizer=self.reg,
            name=f"{name}_path1",
        )(b)  # fmt: skip
        x = L.Concatenate(name=f"{name}_concat")([a, b])
        return L.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
