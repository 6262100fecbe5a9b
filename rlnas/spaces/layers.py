"""The `layers` space: Zoph & Le (2017) macro search, generalised to hyperparameters.

A child is a chain of ``num_layers`` layers. Layer ``i`` chooses an operation, its filters,
kernel, stride and activation, and, with ``skip_connections``, which outputs of earlier
layers ``j < i - 1`` (anchor points; layer ``i - 1`` is its input anyway) it merges into its
own output, by ``add`` (after a 1x1 projection) or ``concat``; earlier outputs that are
larger are pooled down to the layer's size. ``reduce_after`` puts a fixed 2x2 max pooling
after chosen layers (set reduction points, as in NASNet). Then come the training decisions
(:mod:`rlnas.spaces.training`): learning rate, batch size, optimizer, dropout before the
classifier, weight decay, augmentation.

Decisions that do not apply are inactive and absent from the record: filters and activation
of pooling and identity layers, kernel and stride of identity layers, the merge of a layer
that takes no skip. Strides larger than the current spatial size are masked (``same``
padding halves 8 to 4, 2, 1; a stride is allowed only while the size is at least the
stride), so a sampled child can always be built.

Flat inputs (feature vectors) use the MLP variant: ``conv`` is a ``Dense(filters)`` layer
with batch normalisation and the activation, ``identity`` passes its input on; pooling and
``sepconv`` have no meaning for a vector and are masked, as are kernel and stride.

:meth:`LayersSpace.declare` returns a framework-free :class:`LayersBlueprint`;
:func:`rlnas.keras_build.build_model` turns it into a Keras model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Annotated

from rlnas.errors import MAY_BE_EMPTY, FieldError, require
from rlnas.rules import OneOf, Range, check_fields
from rlnas.space import Decider, Space
from rlnas.spaces.training import TrainingChoices, TrainingSpec, declare_training

if TYPE_CHECKING:
    from rlnas.tasks import TaskSpec

OPERATIONS = ("conv", "sepconv", "maxpool", "avgpool", "identity")
ACTIVATIONS = ("relu", "relu6", "leaky_relu", "elu", "selu", "gelu", "swish", "silu", "mish")
ACTIVATIONS += ("tanh", "sigmoid", "softplus", "linear")
WEIGHTED_OPS = ("conv", "sepconv")
FLAT_OPS = ("conv", "identity")


@dataclass(frozen=True)
class _LayersNetwork:
    """The network's choices of the `layers` space (:class:`LayersConfig` adds training's)."""

    num_layers: Annotated[int, Range(ge=1, le=64)] = 6
    """Layers in the child (Zoph & Le searched 6 to 24 layers)."""
    operations: Annotated[tuple[str, ...], OneOf(OPERATIONS)] = OPERATIONS
    """Operation of each layer; conv and sepconv take filters, kernel and activation."""
    filters: Annotated[tuple[int, ...], Range(ge=1, le=4096)] = (16, 32, 64)
    """Filters (units for flat inputs) of each layer (Zoph & Le: 24, 36, 48, 64)."""
    kernel_sizes: Annotated[tuple[int, ...], Range(ge=1)] = (3, 5)
    """Kernel (or pool) size of each layer (Zoph & Le: 1, 3, 5, 7)."""
    strides: Annotated[tuple[int, ...], Range(ge=1)] = (1, 2)
    """Stride of each layer; strides that would shrink the input below 1 are masked."""
    activations: Annotated[tuple[str, ...], OneOf(ACTIVATIONS)] = ("relu", "swish", "tanh")
    """Activation of each conv layer."""
    skip_connections: bool = True
    """Let each layer also take the outputs of any earlier layer (anchor points)."""
    merges: Annotated[tuple[str, ...], OneOf(("add", "concat"))] = ("add", "concat")
    """How a layer merges its extra inputs: add (after a 1x1 projection) or concat."""
    reduce_after: tuple[int, ...] = field(default=(), metadata={MAY_BE_EMPTY: True})
    """Layers (0-based) followed by a fixed 2x2 max pooling that halves the spatial size,
    as the reduction points of NASNet and ENAS's macro space: downsampling at set depths
    instead of (or besides) searched strides (set ``strides: [1]`` to leave it to these)."""
    stem_filters: Annotated[int | None, Range(ge=1, le=4096)] = None
    """A fixed 3x3 convolution with this many filters, batch-normalised, before the searched
    layers (ENAS's macro space starts with one; no activation, each searched operation has its
    own), so that no child pools or skips the raw input before a convolution has seen it at
    full resolution; ``None``: no stem. Image and sequence inputs."""


@dataclass(frozen=True)
class LayersConfig(TrainingChoices, _LayersNetwork):
    """Choices of the `layers` space. Each list is the set of values a decision may take."""

    # the fields: _LayersNetwork's, then TrainingChoices' (see its docstring for the order)

    def __post_init__(self) -> None:
        check_fields(self)
        for v in self.reduce_after:
            require(
                0 <= v < self.num_layers and self.reduce_after.count(v) == 1,
                "reduce_after",
                v,
                f"distinct layer indices in 0..{self.num_layers - 1} (num_layers - 1)",
            )


@dataclass(frozen=True)
class LayerSpec:
    """One layer of a child. ``skips`` are earlier layers whose outputs join this one's."""

    op: str
    filters: int | None = None
    kernel: int | None = None
    stride: int = 1
    activation: str | None = None
    skips: tuple[int, ...] = ()
    merge: str | None = None


@dataclass(frozen=True)
class LayersBlueprint:
    """A whole child of the `layers` space, free of any framework."""

    layers: tuple[LayerSpec, ...]
    training: TrainingSpec
    reduce_after: tuple[int, ...] = ()
    """Layers followed by a fixed 2x2 max pooling (``LayersConfig.reduce_after``)."""
    stem_filters: int | None = None
    """Filters of the fixed stem convolution before the layers (``LayersConfig.stem_filters``)."""


class LayersSpace(Space):
    """Macro search over a chain of layers with skips, plus training hyperparameters."""

    name = "layers"

    def __init__(self, cfg: LayersConfig, spec: TaskSpec) -> None:
        if spec.input_kind not in ("image", "sequence", "flat"):
            raise FieldError("input_kind", spec.input_kind, "image, sequence or flat")
        if spec.input_kind == "flat" and not set(cfg.operations) & set(FLAT_OPS):
            raise FieldError(
                "layers.operations",
                list(cfg.operations),
                "conv or identity among them for flat inputs (pooling and sepconv need "
                "spatial inputs)",
            )
        if spec.input_kind == "flat" and cfg.reduce_after:
            raise FieldError(
                "layers.reduce_after",
                list(cfg.reduce_after),
                "[] for flat inputs (pooling needs spatial inputs)",
            )
        if spec.input_kind == "flat" and cfg.stem_filters is not None:
            raise FieldError(
                "layers.stem_filters",
                cfg.stem_filters,
                "null for flat inputs (the stem is a convolution, which needs spatial inputs)",
            )
        self.cfg = cfg
        self.spec = spec

    @property
    def kind(self) -> str:
        return self.spec.input_kind

    def declare(self, d: Decider) -> LayersBlueprint:
        cfg = self.cfg
        spatial = self.kind != "flat"
        size = list(self.spec.input_shape[:-1]) if spatial else []
        op_mask = [spatial or op in FLAT_OPS for op in cfg.operations]
        layers = []
        for i in range(cfg.num_layers):
            p = f"layer_{i}/"
            op = str(d.choice(p + "op", cfg.operations, mask=op_mask))
            weighted = op in WEIGHTED_OPS
            shaped = spatial and op != "identity"
            filters = d.choice(p + "filters", cfg.filters, active=weighted)
            kernel = d.choice(p + "kernel", cfg.kernel_sizes, active=shaped)
            stride = d.choice(
                p + "stride", cfg.strides, mask=self._stride_mask(size), active=shaped
            )
            activation = d.choice(p + "activation", cfg.activations, active=weighted)
            skips: list[int] = []
            if cfg.skip_connections and i >= 2:
                for j in range(i - 1):
                    if d.choice(f"{p}skip_{j}", [False, True]):
                        skips.append(j)
                merge = d.choice(p + "merge", cfg.merges, active=bool(skips))
            else:
                merge = None
            stride = int(stride or 1)
            size = [math.ceil(s / stride) for s in size]
            if i in cfg.reduce_after:
                size = [math.ceil(s / 2) for s in size]
            layers.append(
                LayerSpec(
                    op=op,
                    filters=None if filters is None else int(filters),
                    kernel=None if kernel is None else int(kernel),
                    stride=stride,
                    activation=None if activation is None else str(activation),
                    skips=tuple(skips),
                    merge=None if merge is None else str(merge),
                )
            )
        training = declare_training(d, cfg)
        reduce_after = tuple(sorted(cfg.reduce_after))
        return LayersBlueprint(tuple(layers), training, reduce_after, cfg.stem_filters)

    def widen(self, blueprint: LayersBlueprint, factor: float) -> LayersBlueprint:
        """``factor`` times the filters (units, for flat inputs) of the stem and of every
        conv and sepconv layer, rounded, at least 1; pooling and identity layers are as they
        were."""

        def scale(filters: int | None) -> int | None:
            return None if filters is None else max(1, round(filters * factor))

        layers = tuple(replace(layer, filters=scale(layer.filters)) for layer in blueprint.layers)
        return replace(blueprint, layers=layers, stem_filters=scale(blueprint.stem_filters))

    def _stride_mask(self, size: list[int]) -> list[bool]:
        """Strides no larger than the smallest spatial size (the smallest stride if none)."""
        strides = self.cfg.strides
        smallest = min(size) if size else 1
        mask = [s <= smallest for s in strides]
        if not any(mask):  # only large strides configured: 'same' padding keeps size 1
            mask = [s == min(strides) for s in strides]
        return mask
