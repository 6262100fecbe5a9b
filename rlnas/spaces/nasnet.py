"""The `nasnet` space: a Normal and a Reduction cell, searched once and stacked (Zoph et al. 2018).

A cell takes the outputs of the two previous cells (``prev_prev`` = h[i-2], ``prev`` = h[i-1])
and builds ``num_blocks`` blocks. Block ``b`` chooses, in NASNet's order:

* ``<cell>/block_<b>/input_a`` and ``input_b``: ``prev_prev``, ``prev`` or the output of an
  earlier block of the same cell (``block_0`` .. ``block_<b-1>``; later blocks are masked);
* ``<cell>/block_<b>/op_a`` and ``op_b``: the operation applied to each input;
* ``<cell>/block_<b>/combine``: ``add`` or ``concat`` of the two results.

Block outputs that no later block of the cell uses are concatenated into the cell's output
(as ENAS does; NASNet also concatenated unused cell inputs). The network is a 3x3 stem
convolution, then ``cells_per_stage`` Normal cells, a Reduction cell (stride 2 on the cell
inputs, twice the filters), ``cells_per_stage`` Normal cells, ... with ``reduction_stages``
Reduction cells in all, then global pooling and the classifier. Then come the training
decisions the `layers` space also has (``train/learning_rate`` ... ``train/augment``,
:mod:`rlnas.spaces.training`), so the child is compiled and augmented the same way.

Cells need 2-D images: the space refuses sequences and flat vectors when it is created, before
any training. :meth:`NasnetSpace.declare` returns a framework-free :class:`NasnetBlueprint`;
:func:`rlnas.keras_build.build_model` turns it into a Keras model.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Annotated

from rlnas.errors import ConfigError, FieldError
from rlnas.rules import OneOf, Range, check_fields
from rlnas.space import Decider, Space
from rlnas.spaces.training import TrainingChoices, TrainingSpec, declare_training

if TYPE_CHECKING:
    from rlnas.tasks import TaskSpec

OPERATIONS = ("identity", "sep3x3", "sep5x5", "dil3x3", "max3x3", "avg3x3", "conv1x3_3x1")
"""identity; 3x3 and 5x5 depthwise-separable convolutions; 3x3 dilated (rate 2) separable
convolution; 3x3 max and average pooling; a 1x3 then 3x1 convolution (NASNet's list, less
the 7x7 and 1x7+7x1 operations that 28x28 inputs have no room for)."""
COMBINERS = ("add", "concat")
CELLS = ("normal", "reduction")
CELL_INPUTS = ("prev_prev", "prev")


@dataclass(frozen=True)
class _NasnetNetwork:
    """The network's choices and layout of the `nasnet` space (:class:`NasnetConfig` adds
    training's)."""

    num_blocks: Annotated[int, Range(ge=1, le=10)] = 5
    """Blocks per cell, B (NASNet: 5)."""
    operations: Annotated[tuple[str, ...], OneOf(OPERATIONS)] = OPERATIONS
    """Operations a block may apply to each of its inputs."""
    combiners: Annotated[tuple[str, ...], OneOf(COMBINERS)] = COMBINERS
    """How a block joins its two results: ``add`` or ``concat`` (channel concatenation)."""
    cells_per_stage: Annotated[int, Range(ge=1, le=16)] = 2
    """Normal cells between Reduction cells, N (NASNet CIFAR: 4 to 7)."""
    reduction_stages: Annotated[int, Range(ge=0, le=6)] = 2
    """Reduction cells in the network; each halves height and width (NASNet CIFAR: 2)."""
    stem_filters: Annotated[int, Range(ge=2, le=4096)] = 32
    """Filters of the 3x3 stem convolution (NASNet CIFAR: 3 x filters)."""
    filters: Annotated[int, Range(ge=2, le=4096)] = 16
    """Filters of each operation in the first stage, doubled by every Reduction cell
    (NASNet-A 6@768 on CIFAR: 32)."""
    separable_repeats: Annotated[int, Range(ge=1, le=2)] = 2
    """Separable convolutions are applied this many times, ReLU-SepConv-BN each (NASNet: 2;
    1 halves their cost)."""


@dataclass(frozen=True)
class NasnetConfig(TrainingChoices, _NasnetNetwork):
    """Choices and network layout of the `nasnet` space (NASNet-A CIFAR values noted)."""

    # the fields: _NasnetNetwork's, then TrainingChoices' (see its docstring for the order)

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass(frozen=True)
class BlockSpec:
    """One block: two (input, operation) pairs and how their results are joined.

    Inputs are numbered as the cell's hidden states: 0 = ``prev_prev``, 1 = ``prev``,
    ``2 + j`` = block ``j`` of the same cell.
    """

    inputs: tuple[int, int]
    ops: tuple[str, str]
    combine: str


@dataclass(frozen=True)
class CellSpec:
    """A Normal or Reduction cell: its blocks in order."""

    blocks: tuple[BlockSpec, ...]

    @property
    def unused(self) -> tuple[int, ...]:
        """Blocks whose output no later block takes: they form the cell's output."""
        used = {i - 2 for b in self.blocks for i in b.inputs if i >= 2}
        return tuple(j for j in range(len(self.blocks)) if j not in used)


@dataclass(frozen=True)
class NasnetBlueprint:
    """A whole child of the `nasnet` space, free of any framework."""

    normal: CellSpec
    reduction: CellSpec
    training: TrainingSpec
    cells_per_stage: int
    reduction_stages: int
    stem_filters: int
    filters: int
    separable_repeats: int = 2


class NasnetSpace(Space):
    """Cell search (a Normal and a Reduction cell) plus training hyperparameters."""

    name = "nasnet"

    def __init__(self, cfg: NasnetConfig, spec: TaskSpec) -> None:
        if spec.input_kind != "image":
            shape = "x".join(str(s) for s in spec.input_shape)
            raise ConfigError(
                f"`space`: nasnet cells need 2-D image inputs (H, W, C), but this task's "
                f"inputs are {spec.input_kind} ({shape}); use space: layers for "
                f"{spec.input_kind} data."
            )
        smallest = min(spec.input_shape[:2])
        if 2**cfg.reduction_stages > smallest:
            raise FieldError(
                "nasnet.reduction_stages",
                cfg.reduction_stages,
                f"at most {smallest.bit_length() - 1} for {smallest}-pixel inputs (each "
                "Reduction cell halves the image)",
            )
        self.cfg = cfg
        self.spec = spec

    def declare(self, d: Decider) -> NasnetBlueprint:
        cfg = self.cfg
        names = CELL_INPUTS + tuple(f"block_{j}" for j in range(cfg.num_blocks - 1))
        cells = {}
        for cell in CELLS:
            blocks = []
            for b in range(cfg.num_blocks):
                p = f"{cell}/block_{b}/"
                mask = [i < 2 + b for i in range(len(names))]
                in_a = names.index(str(d.choice(p + "input_a", names, mask=mask)))
                in_b = names.index(str(d.choice(p + "input_b", names, mask=mask)))
                op_a = str(d.choice(p + "op_a", cfg.operations))
                op_b = str(d.choice(p + "op_b", cfg.operations))
                combine = str(d.choice(p + "combine", cfg.combiners))
                blocks.append(BlockSpec((in_a, in_b), (op_a, op_b), combine))
            cells[cell] = CellSpec(tuple(blocks))
        training = declare_training(d, cfg)
        return NasnetBlueprint(
            normal=cells["normal"],
            reduction=cells["reduction"],
            training=training,
            cells_per_stage=cfg.cells_per_stage,
            reduction_stages=cfg.reduction_stages,
            stem_filters=cfg.stem_filters,
            filters=cfg.filters,
            separable_repeats=cfg.separable_repeats,
        )

    def widen(self, blueprint: NasnetBlueprint, factor: float) -> NasnetBlueprint:
        """``factor`` times the stem's and the cells' filters (rounded, at least 2), as NASNet
        and ENAS trained their final networks with more filters than the searched ones."""
        return replace(
            blueprint,
            stem_filters=max(2, round(blueprint.stem_filters * factor)),
            filters=max(2, round(blueprint.filters * factor)),
        )
