"""A Keras 3 super-network of the `nasnet` cell space: every child is a path through it.

The network has the standalone child's layout (:mod:`rlnas.keras_build.nasnet_model`): the
stem, then Normal and Reduction cells with their own weights per cell position, then the
head. Inside a cell, each block side (block ``j``, side ``a`` or ``b``) holds the weights of
every operation once; the side's input is chosen first and the operation applied to it, so
the weights are per operation and side, shared by whichever earlier state feeds it (ENAS
keeps one copy per possible input as well: (B+1)/2 times the weights, each trained on a
share of the children only; a shared copy trains on every child that picks the operation).

Widths are held fixed: a block's output is ``W`` channels, ``W = 2F`` when ``concat`` may be
chosen (``add`` fills the first ``F`` and leaves the rest zero), else ``F``. The cell's
output concatenates all ``B`` blocks (``B * W`` channels) times a mask that zeroes the blocks
a later block uses, so the next 1x1 convolution (or the classifier) sees exactly the
standalone child's concatenation of its unused blocks, with zero rows in between: the child
equals the super-network restricted to it, with the kernels' rows of its own channels
(:meth:`NasnetSuperNet.child_weights` slices them). Operations on a ``concat`` block's
``2F`` channels that must keep their width (identity and pooling) project them to ``F`` by
a ReLU-1x1 conv-BN, as the standalone child does; a Reduction cell applies stride 2 to the
cell inputs and stride 1 to its blocks. Each side computes one of a flat list of branches
(operation, stride, projection: :attr:`NasnetSuperNet.branches`).

The steps run eagerly (``compiled=False`` of :class:`~rlnas.keras_build.supernet.SharedSteps`):
a child's path (:class:`NasnetPath`: inputs, branches, combiners and output mask of both
cells, as arrays) picks its inputs and operations in Python, only they are computed, and a
step updates only their weights. Nothing is traced, so a new child costs what a seen one
does (a traced training step with a ``tf.switch_case`` per side, as the `layers`
super-network has, took minutes to trace for a 3-block, 5-cell network on two cores)::

    net = NasnetSuperNet(space.cfg, spec)
    path = net.path(space.blueprint(architecture))
    loss, accuracy = net.train_step(x, y, *path)

Batch normalisation uses the batch's statistics, as in :mod:`rlnas.keras_build.supernet`;
the child's dropout and augmentation are not applied in the shared phase.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import keras
import numpy as np
import tensorflow as tf

from rlnas.evaluators.shared_config import SharedConfig, check_training
from rlnas.keras_build.supernet import BN_EPSILON, SharedSteps, pointwise_conv
from rlnas.spaces.nasnet import CellSpec, NasnetBlueprint, NasnetConfig
from rlnas.tasks import TaskSpec

KERNELS = {"sep3x3": 3, "sep5x5": 5}


class NasnetPath(NamedTuple):
    """One child as tensors of fixed shape (``B`` blocks; index 0 Normal, 1 Reduction)."""

    inputs: np.ndarray  # int32 [2, B, 2]: state each side takes (0, 1 cell inputs, 2+j block j)
    branch: np.ndarray  # int32 [2, B, 2]: index into NasnetSuperNet.branches[cell kind]
    concat: np.ndarray  # float32 [2, B]: 1 when the block concatenates, 0 when it adds
    unused: np.ndarray  # float32 [2, B]: 1 for the blocks that form the cell's output


class _Branch(NamedTuple):
    """What a block side may compute: an operation, its stride, whether its input is a
    ``concat`` block that identity and pooling project from ``2F`` to ``F`` channels."""

    op: str
    stride: int
    project: bool


class _Cell(NamedTuple):
    """A cell position: its kind, filters F, block width W, inputs (-1 = stem) and sizes."""

    name: str
    reduce: bool
    filters: int
    width: int
    in0: int
    in1: int
    halve_in0: bool


class NasnetSuperNet(SharedSteps):
    """The shared weights of every child of a `nasnet` space, with eager steps."""

    path_type = NasnetPath

    def __init__(
        self, cfg: NasnetConfig, spec: TaskSpec, shared: SharedConfig | None = None
    ) -> None:
        super().__init__(spec, shared, "nasnet_supernet")
        check_training(cfg, "nasnet")
        if spec.input_kind != "image":
            raise ValueError(f"nasnet cells need image inputs, not {spec}")
        self.cfg = cfg
        self.blocks = cfg.num_blocks
        self.concat_possible = "concat" in cfg.combiners
        self.cells = self._layout()
        self.branches = {reduce: self._branches(reduce) for reduce in (False, True)}
        """Each cell kind's list of side computations; a path indexes it."""
        self._seed = 0
        self._build_weights()
        self._make_steps([], compiled=False)  # eager: no signature to trace

    # -- layout and weights ----------------------------------------------------------------
    def _layout(self) -> list[_Cell]:
        """The cells in order, as :func:`rlnas.keras_build.nasnet_model.build_nasnet_model`
        stacks them (names included)."""
        cfg = self.cfg
        size = {-1: tuple(self.spec.input_shape[:2])}
        cells: list[_Cell] = []
        pp = p = -1
        filters = cfg.filters

        def add(name: str, reduce: bool) -> None:
            nonlocal pp, p
            n = len(cells)
            w = 2 * filters if self.concat_possible else filters
            cells.append(_Cell(name, reduce, filters, w, pp, p, size[pp] != size[p]))
            size[n] = tuple(math.ceil(s / 2) for s in size[p]) if reduce else size[p]
            pp, p = p, n

        for stage in range(cfg.reduction_stages + 1):
            if stage > 0:
                filters *= 2
                add(f"cell{len(cells)}_reduce", True)
            for _ in range(cfg.cells_per_stage):
                add(f"cell{len(cells)}", False)
        return cells

    def _branches(self, reduce: bool) -> list[_Branch]:
        """Stride-2 operations (a Reduction cell's inputs) first, then stride 1, then the
        projected identity and pooling (a ``concat`` block's output; never a cell input)."""
        ops = self.cfg.operations
        out = [_Branch(op, 2, False) for op in ops] if reduce else []
        out += [_Branch(op, 1, False) for op in ops]
        if self.concat_possible:
            out += [_Branch(op, 1, True) for op in ops if op in ("identity", "max3x3", "avg3x3")]
        return out

    def _width_of(self, source: int) -> int:
        """Channels of the super-network's output of ``source`` (-1: the stem)."""
        if source < 0:
            return self.cfg.stem_filters
        return self.blocks * self.cells[source].width

    def _add(self, shape: tuple[int, ...], name: str, init: str = "he") -> keras.Variable:
        if init == "he":
            self._seed += 1  # a seeded initializer repeats its values: one seed per weight
            initializer = keras.initializers.HeNormal(seed=self._seed)
        else:
            initializer = init
        return self.add_weight(shape, initializer, name=name)

    def _bn(self, width: int, name: str) -> dict[str, keras.Variable]:
        return {
            "gamma": self._add((width,), name + "_gamma", "ones"),
            "beta": self._add((width,), name + "_beta", "zeros"),
        }

    def _conv_bn(self, w_in: int, f: int, name: str) -> dict[str, keras.Variable]:
        return {"kernel": self._add((w_in, f), name + "_kernel"), **self._bn(f, name)}

    def _reduce_weights(self, w_in: int, f: int, name: str) -> dict[str, keras.Variable]:
        return {
            "path0": self._add((w_in, f // 2), name + "_path0"),
            "path1": self._add((w_in, f - f // 2), name + "_path1"),
            **self._bn(f, name),
        }

    def _build_weights(self) -> None:
        cfg, channels = self.cfg, self.spec.input_shape[-1]
        self.stem = {
            "kernel": self._add((3, 3, channels, cfg.stem_filters), "stem_kernel"),
            **self._bn(cfg.stem_filters, "stem"),
        }
        self.w: dict[tuple, dict[str, keras.Variable]] = {}
        for c, cell in enumerate(self.cells):
            f, w_in = cell.filters, cell.width
            w0, w1 = self._width_of(cell.in0), self._width_of(cell.in1)
            pre = self._reduce_weights if cell.halve_in0 else self._conv_bn
            self.w[c, "in0"] = pre(w0, f, f"c{c}_in0")
            self.w[c, "in1"] = self._conv_bn(w1, f, f"c{c}_in1")
            for j in range(self.blocks):
                for s in range(2):
                    for op in cfg.operations:
                        name = f"c{c}_b{j}{'ab'[s]}_{op}"
                        self.w[c, j, s, op] = self._op_weights(op, w_in, f, cell.reduce, name)
        last = self._width_of(len(self.cells) - 1)
        self.head = self._add((last, self.spec.num_classes), "head", "glorot_uniform")
        self.head_bias = self._add((self.spec.num_classes,), "head_bias", "zeros")

    def _op_weights(self, op: str, w_in: int, f: int, reduce: bool, name: str) -> dict:
        w: dict[str, keras.Variable] = {}
        if op in KERNELS:
            k = KERNELS[op]
            for r in range(self.cfg.separable_repeats):
                width = w_in if r == 0 else f
                w[f"dw{r}"] = self._add((k, k, width, 1), f"{name}_dw{r}")
                w[f"pw{r}"] = self._add((width, f), f"{name}_pw{r}")
                w.update({f"{k_}{r}": v for k_, v in self._bn(f, f"{name}{r}").items()})
        elif op == "dil3x3":
            w["dw"] = self._add((3, 3, w_in, 1), name + "_dw")
            w["pw"] = self._add((w_in, f), name + "_pw")
            w.update(self._bn(f, name))
        elif op == "conv1x3_3x1":
            w["k0"] = self._add((1, 3, w_in, f), name + "_k0")
            w["k1"] = self._add((3, 1, f, f), name + "_k1")
            w.update(self._bn(f, name))
        if op in ("identity", "max3x3", "avg3x3") and w_in != f:
            w["proj"] = self._conv_bn(w_in, f, name + "_proj")
        if op == "identity" and reduce:
            w["reduce"] = self._reduce_weights(w_in, f, name + "_reduce")
        return w

    # -- a child as tensors ----------------------------------------------------------------
    def path(self, blueprint: NasnetBlueprint) -> NasnetPath:
        """The tensors of ``blueprint``'s path (plain NumPy: cheap, no graph)."""
        b = self.blocks
        inputs = np.zeros((2, b, 2), np.int32)
        branch = np.zeros((2, b, 2), np.int32)
        concat = np.zeros((2, b), np.float32)
        unused = np.zeros((2, b), np.float32)
        for k, cell in enumerate((blueprint.normal, blueprint.reduction)):
            for j, block in enumerate(cell.blocks):
                concat[k, j] = block.combine == "concat"
                for s, (i, op) in enumerate(zip(block.inputs, block.ops)):
                    inputs[k, j, s] = i
                    branch[k, j, s] = self.branches[k == 1].index(_branch(cell, k == 1, i, op))
            unused[k, list(cell.unused)] = 1.0
        return NasnetPath(inputs, branch, concat, unused)

    # -- the forward pass ------------------------------------------------------------------
    def forward(self, x, path: NasnetPath):
        """Logits of the child ``path`` on inputs ``x`` (the eager steps call this)."""
        x = tf.nn.conv2d(x, self.stem["kernel"], 1, "SAME")
        outs = {-1: _batch_norm(x, self.stem)}
        for c, cell in enumerate(self.cells):
            k = 1 if cell.reduce else 0
            outs[c] = self._cell(c, cell, outs[cell.in0], outs[cell.in1], [t[k] for t in path])
        pooled = tf.reduce_mean(tf.nn.relu(outs[len(self.cells) - 1]), axis=[1, 2])
        return tf.matmul(pooled, self.head) + self.head_bias

    def _cell(self, c: int, cell: _Cell, h0, h1, path: list):
        inputs, branch, concat, unused = path
        f, width = cell.filters, cell.width
        if cell.halve_in0:
            h0 = _factorized_reduce(h0, self.w[c, "in0"])
        else:
            h0 = _relu_conv_bn(h0, self.w[c, "in0"])
        pad = [[0, 0]] * 3 + [[0, width - f]]
        states = [tf.pad(h0, pad), tf.pad(_relu_conv_bn(h1, self.w[c, "in1"]), pad)]
        for j in range(self.blocks):
            a, b = (self._side(c, cell, j, s, states, inputs[j, s], branch[j, s]) for s in range(2))
            if width == f:  # add only
                states.append(a + b)
            else:
                states.append(tf.concat([a + (1.0 - concat[j]) * b, concat[j] * b], -1))
        mask = tf.repeat(unused, width)
        return tf.concat(states[2:], -1) * mask

    def _side(self, c: int, cell: _Cell, j: int, s: int, states: list, i, branch):
        """The chosen branch on the chosen state (stride 2 on a Reduction cell's inputs)."""
        op, stride, project = self.branches[cell.reduce][int(branch)]
        w = self.w[c, j, s, op]
        return self._op(states[int(i)], w, op=op, stride=stride, project=project)

    def _op(self, x, w: dict, *, op: str, stride: int, project: bool):
        """``op`` on ``x`` (``W`` channels, maybe zero-padded), returning ``F`` channels."""
        if op in KERNELS:
            for r in range(self.cfg.separable_repeats):
                step = stride if r == 0 else 1
                x = tf.nn.depthwise_conv2d(tf.nn.relu(x), w[f"dw{r}"], [1, step, step, 1], "SAME")
                x = pointwise_conv(x, w[f"pw{r}"])
                x = _batch_norm(x, {"gamma": w[f"gamma{r}"], "beta": w[f"beta{r}"]})
            return x
        if op == "dil3x3":
            x = tf.nn.depthwise_conv2d(tf.nn.relu(x), w["dw"], [1] * 4, "SAME", dilations=[2, 2])
            x = pointwise_conv(x, w["pw"])
            return _batch_norm(x[:, ::stride, ::stride], w)
        if op == "conv1x3_3x1":
            x = tf.nn.conv2d(tf.nn.relu(x), w["k0"], [1, 1, stride, 1], "SAME")
            x = tf.nn.conv2d(x, w["k1"], [1, stride, 1, 1], "SAME")
            return _batch_norm(x, w)
        if op == "identity" and stride == 2:
            return _factorized_reduce(x, w["reduce"])
        if op in ("max3x3", "avg3x3"):
            pool = tf.nn.max_pool2d if op == "max3x3" else tf.nn.avg_pool2d
            x = pool(x, 3, stride, "SAME")
        if project:
            return _relu_conv_bn(x, w["proj"])
        if "proj" in w:  # the first F of W channels (the rest are zero)
            return x[..., : w["proj"]["kernel"].shape[-1]]
        return x

    # -- a standalone child's weights ------------------------------------------------------
    def child_weights(self, blueprint: NasnetBlueprint) -> dict[str, list[np.ndarray]]:
        """The weights of ``blueprint``'s layers, by the layer names of
        :func:`rlnas.keras_build.nasnet_model.build_nasnet_model` (rows of its channels)."""
        out: dict[str, list[np.ndarray]] = {}
        v = lambda var: np.asarray(var)  # noqa: E731
        out["stem_conv"] = [v(self.stem["kernel"])]
        out["stem_bn"] = [v(self.stem["gamma"]), v(self.stem["beta"])]
        specs = {False: blueprint.normal, True: blueprint.reduction}
        rows_of = {-1: np.arange(self.cfg.stem_filters)}
        for c, cell in enumerate(self.cells):
            spec = specs[cell.reduce]
            f, width, name = cell.filters, cell.width, cell.name
            taken = {i for block in spec.blocks for i in block.inputs}  # Keras drops the rest
            in0, r0 = self.w[c, "in0"], rows_of[cell.in0]
            if 0 in taken and cell.halve_in0:
                out.update(_reduce_layers(in0, r0, f"{name}_in0"))
            elif 0 in taken:
                out.update(_conv_bn_layers(in0, r0, f"{name}_in0"))
            if 1 in taken:
                out.update(_conv_bn_layers(self.w[c, "in1"], rows_of[cell.in1], f"{name}_in1"))
            widths = [f, f] + [2 * f if b.combine == "concat" else f for b in spec.blocks]
            for j, block in enumerate(spec.blocks):
                for s, (i, op) in enumerate(zip(block.inputs, block.ops)):
                    w = self.w[c, j, s, op]
                    stride = 2 if cell.reduce and i < 2 else 1
                    prefix = f"{name}_b{j}{'ab'[s]}"
                    out.update(_op_layers(w, op, widths[i], stride, prefix, f))
            rows_of[c] = _output_rows(spec, width, f)
        out["classifier"] = [v(self.head)[rows_of[len(self.cells) - 1]], v(self.head_bias)]
        return out


def _branch(cell: CellSpec, reduce: bool, i: int, op: str) -> _Branch:
    """The branch of operation ``op`` on state ``i`` of ``cell``."""
    project = (
        i >= 2 and cell.blocks[i - 2].combine == "concat" and op in ("identity", "max3x3", "avg3x3")
    )
    return _Branch(op, 2 if reduce and i < 2 else 1, project)


def _output_rows(spec: CellSpec, width: int, f: int) -> np.ndarray:
    """Channels of the super-network's cell output that the child's concatenation holds."""
    rows = []
    for j in spec.unused:
        w = 2 * f if spec.blocks[j].combine == "concat" else f
        rows.append(np.arange(j * width, j * width + w))
    return np.concatenate(rows)


def _op_layers(w: dict, op: str, w_in: int, stride: int, prefix: str, f: int) -> dict:
    """The standalone layers of operation ``op`` on a ``w_in``-channel input."""
    v = lambda var: np.asarray(var)  # noqa: E731
    out: dict[str, list[np.ndarray]] = {}
    rows = np.arange(w_in)
    if op in KERNELS:
        for r in range(sum(key.startswith("dw") for key in w)):
            n = w_in if r == 0 else f
            pw = v(w[f"pw{r}"])[:n]
            out[f"{prefix}_{op}_{r}"] = [v(w[f"dw{r}"])[:, :, :n], pw.reshape((1, 1) + pw.shape)]
            out[f"{prefix}_{op}_bn{r}"] = [v(w[f"gamma{r}"]), v(w[f"beta{r}"])]
    elif op == "dil3x3":
        pw = v(w["pw"])[:w_in]
        out[f"{prefix}_dil"] = [v(w["dw"])[:, :, :w_in], pw.reshape((1, 1) + pw.shape)]
        out[f"{prefix}_dil_bn"] = [v(w["gamma"]), v(w["beta"])]
    elif op == "conv1x3_3x1":
        out[f"{prefix}_fact0"] = [v(w["k0"])[:, :, :w_in]]
        out[f"{prefix}_fact1"] = [v(w["k1"])]
        out[f"{prefix}_fact_bn"] = [v(w["gamma"]), v(w["beta"])]
    elif op == "identity" and stride == 2:
        out.update(_reduce_layers(w["reduce"], rows, f"{prefix}_reduce"))
    elif w_in != f:  # identity or pooling on a concat block
        out.update(_conv_bn_layers(w["proj"], rows, f"{prefix}_proj"))
    return out


def _conv_bn_layers(w: dict, rows: np.ndarray, name: str) -> dict:
    kernel = np.asarray(w["kernel"])[rows]
    return {
        f"{name}_conv": [kernel.reshape((1, 1) + kernel.shape)],
        f"{name}_bn": [np.asarray(w["gamma"]), np.asarray(w["beta"])],
    }


def _reduce_layers(w: dict, rows: np.ndarray, name: str) -> dict:
    out = {}
    for p in ("path0", "path1"):
        kernel = np.asarray(w[p])[rows]
        out[f"{name}_{p}"] = [kernel.reshape((1, 1) + kernel.shape)]
    out[f"{name}_bn"] = [np.asarray(w["gamma"]), np.asarray(w["beta"])]
    return out


def _batch_norm(x, w: dict):
    """Batch normalisation on the batch's statistics, as one fused operation."""
    y, _, _ = tf.compat.v1.nn.fused_batch_norm(
        x, w["gamma"], w["beta"], epsilon=BN_EPSILON, is_training=True
    )
    return y


def _relu_conv_bn(x, w: dict):
    return _batch_norm(pointwise_conv(tf.nn.relu(x), w["kernel"]), w)


def _factorized_reduce(x, w: dict):
    """Halve height and width with two 1x1 paths offset by one pixel (NASNet)."""
    x = tf.nn.relu(x)
    a = pointwise_conv(x[:, ::2, ::2], w["path0"])
    shifted = tf.pad(x[:, 1:, 1:], [[0, 0], [0, 1], [0, 1], [0, 0]])
    b = pointwise_conv(shifted[:, ::2, ::2], w["path1"])
    return _batch_norm(tf.concat([a, b], -1), w)
