"""A Keras 3 super-network of the `layers` space: every child is a path through it.

Each layer position holds the weights of every operation once, at the largest width ``C``
(the most filters, or the input's channels if more): a child with ``f`` filters computes
with the first ``f`` output channels of that operation's weights, a slice of the largest
(``tf.slice`` with sizes from the path, so the activations are the child's own width).
A 32-filter layer therefore costs what a 32-filter layer costs, and layer 0 reads the
input's own channels: the earlier form computed every layer at ``C`` channels and masked
the extra ones to zero, which made a Fashion-MNIST training step 3.9 times slower
(benchmarks/RESULTS.md).
Kernel sizes are separate operations (``conv`` 3 and ``conv`` 5 share nothing), as in ENAS.
A skip from layer ``j`` into layer ``i`` has its own 1x1 projection, used when the widths
differ, as in :mod:`rlnas.keras_build.layers_model`. A stem (``layers.stem_filters``) is one
more convolution and batch normalisation that every child uses whole.

The architecture enters the traced functions as tensors (:class:`Path`: the operation,
activation, width and skips of every layer), and ``tf.switch_case`` runs the chosen
operation only (``tf.cond`` adds a skip, projected when the widths differ), so a new child never
traces a new graph: one ``train_step`` and one ``eval_step`` graph serve every child
(``traces`` counts the tracings)::

    net = SuperNet(space.cfg, spec)
    path = net.path(space.blueprint(architecture))
    loss, accuracy = net.train_step(x, y, *path)
    correct, loss_sum = net.eval_step(x_val, y_val, *path)

Batch normalisation always uses the batch's statistics (training and evaluation alike), as
one-shot methods do: running statistics shared by children of different widths and
operations would fit none of them. The super-network supports fixed strides of 1 with
downsampling at ``reduce_after``, ``add`` merges and image or sequence inputs
(:func:`rlnas.evaluators.shared_config.check_layers` says so in the config).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import keras
import numpy as np
import tensorflow as tf

from rlnas.evaluators.shared_config import SharedConfig, check_layers
from rlnas.spaces.layers import WEIGHTED_OPS, LayersBlueprint, LayersConfig
from rlnas.tasks import TaskSpec

BN_EPSILON = 1e-3
"""Keras's BatchNormalization epsilon (the standalone child uses the same)."""


class Path(NamedTuple):
    """One child as tensors of fixed shape (``L`` layers, ``C`` channels)."""

    branch: np.ndarray  # int32 [L]: index into SuperNet.branches
    activation: np.ndarray  # int32 [L]: index into the activations (weighted ops)
    width: np.ndarray  # int32 [L]: the layer's output channels
    skip: np.ndarray  # float32 [L, L]: skip[i, j] = 1 when layer i merges layer j
    project: np.ndarray  # float32 [L, L]: the skip needs a 1x1 projection (widths differ)


class SharedSteps(keras.layers.Layer):
    """What every super-network shares: its SGD optimizer and the traced ``train_step``,
    ``eval_step`` and ``logits`` functions of inputs and a path (a tuple of tensors).

    A subclass creates its weights, then calls :meth:`_make_steps` with the specs of its
    path tensors, and defines ``forward(x, path)`` (logits) and ``path(blueprint)``.

    ``compiled=False`` runs the steps eagerly instead: the forward pass then computes the
    path's operations only, chosen in Python, and a step updates only the weights the path
    used (their L2 decay is added to their gradients). Nothing is traced, so a new path costs
    what any other does.
    """

    path_type: type = tuple
    """The NamedTuple a subclass's ``forward`` receives its path tensors as."""

    def __init__(self, spec: TaskSpec, shared: SharedConfig | None, name: str) -> None:
        super().__init__(name=name)
        self.spec = spec
        self.shared = shared or SharedConfig(enabled=True)
        self.traces = {"train": 0, "eval": 0}
        """How often each step function was traced (1 each, however many children)."""

    def forward(self, x, path):
        raise NotImplementedError

    def _make_steps(self, path_specs: list[tf.TensorSpec], compiled: bool = True) -> None:
        """Build the optimizer and the step functions taking ``x, y, *path``: traced once
        each, or eager (``compiled=False``)."""
        self.compiled = compiled
        self.optimizer = keras.optimizers.SGD(
            self.shared.learning_rate, momentum=self.shared.momentum, nesterov=True
        )
        self.optimizer.build(self.trainable_variables)
        if not compiled:
            self.train_step, self.eval_step, self.logits = self._train, self._eval, self._logits
            return
        x_spec = tf.TensorSpec((None,) + tuple(self.spec.input_shape), tf.float32)
        signature = [x_spec, tf.TensorSpec((None,), tf.int32), *path_specs]
        self.train_step = tf.function(self._train, input_signature=signature)
        self.eval_step = tf.function(self._eval, input_signature=signature)
        self.logits = tf.function(self._logits, input_signature=[x_spec, *path_specs])

    def _train(self, x, y, *path):
        if not tf.executing_eagerly():
            self.traces["train"] += 1  # runs once per tracing, never per call
        variables = self.trainable_variables
        decay = self.shared.weight_decay / 2
        with tf.GradientTape() as tape:
            logits = self.forward(x, self.path_type(*path))
            loss = tf.reduce_mean(
                tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits)
            )
            loss_total = loss
            if decay and self.compiled:
                kernels = [v for v in variables if _decays(v)]
                loss_total = loss + decay * tf.add_n([tf.reduce_sum(tf.square(v)) for v in kernels])
        grads = tape.gradient(loss_total, variables)
        if self.compiled:
            grads = [tf.zeros_like(v) if g is None else g for g, v in zip(grads, variables)]
        else:  # the path's weights only, decayed here
            used = [(g, v) for g, v in zip(grads, variables) if g is not None]
            variables = [v for _, v in used]
            grads = [g + 2 * decay * v if _decays(v) else g for g, v in used]
        grads, _ = tf.clip_by_global_norm(grads, self.shared.grad_clip)
        self.optimizer.apply_gradients(zip(grads, variables))
        hits = tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), y), tf.float32)
        return loss, tf.reduce_mean(hits)

    def _eval(self, x, y, *path):
        if not tf.executing_eagerly():
            self.traces["eval"] += 1
        logits = self.forward(x, self.path_type(*path))
        losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits)
        hits = tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), y), tf.float32)
        return tf.reduce_sum(hits), tf.reduce_sum(losses)

    def _logits(self, x, *path):
        return self.forward(x, self.path_type(*path))


class SuperNet(SharedSteps):
    """The shared weights of every child of a `layers` space, with retrace-free steps."""

    path_type = Path

    def __init__(
        self, cfg: LayersConfig, spec: TaskSpec, shared: SharedConfig | None = None
    ) -> None:
        super().__init__(spec, shared, "supernet")
        check_layers(cfg)
        if spec.input_kind not in ("image", "sequence"):
            raise ValueError(f"the super-network needs image or sequence inputs, not {spec}")
        self.cfg = cfg
        self.rank = 2 if spec.input_kind == "image" else 1
        self.in_channels = cfg.stem_filters or spec.input_shape[-1]  # what layer 0 sees
        self.channels = max(max(cfg.filters), self.in_channels)
        self.layers_n = cfg.num_layers
        self.branches = [
            ("identity", 0) if op == "identity" else (op, k)
            for op in cfg.operations
            for k in ((0,) if op == "identity" else cfg.kernel_sizes)
        ]
        self.sizes = self._sizes()
        self._build_weights()
        n = self.layers_n
        self._make_steps(
            [
                tf.TensorSpec((n,), tf.int32),
                tf.TensorSpec((n,), tf.int32),
                tf.TensorSpec((n,), tf.int32),
                tf.TensorSpec((n, n), tf.float32),
                tf.TensorSpec((n, n), tf.float32),
            ]
        )

    # -- weights ---------------------------------------------------------------------------
    def _build_weights(self) -> None:
        c, r = self.channels, self.rank
        he = keras.initializers.HeNormal(seed=0)
        stem = self.cfg.stem_filters
        if stem is not None:
            shape = (3,) * r + (self.spec.input_shape[-1], stem)
            self.stem_weights = {
                "kernel": self.add_weight(shape, he, name="stem_kernel"),
                "gamma": self.add_weight((stem,), "ones", name="stem_gamma"),
                "beta": self.add_weight((stem,), "zeros", name="stem_beta"),
            }
        self.op_weights: dict[tuple[int, int], dict[str, keras.Variable]] = {}
        for i in range(self.layers_n):
            c_in = self.in_channels if i == 0 else c  # layer 0 reads the input as it is
            for b, (op, k) in enumerate(self.branches):
                if op not in WEIGHTED_OPS:
                    continue
                w: dict[str, keras.Variable] = {}
                name = f"l{i}_{op}{k}"
                if op == "conv":
                    w["kernel"] = self.add_weight((k,) * r + (c_in, c), he, name=name + "_kernel")
                else:
                    w["depthwise"] = self.add_weight((k,) * r + (c_in, 1), he, name=name + "_dw")
                    w["pointwise"] = self.add_weight((c_in, c), he, name=name + "_pw")
                w["gamma"] = self.add_weight((c,), "ones", name=name + "_gamma")
                w["beta"] = self.add_weight((c,), "zeros", name=name + "_beta")
                self.op_weights[i, b] = w
        self.projections = {
            (i, j): self.add_weight((c, c), he, name=f"l{i}_from{j}_proj")
            for i in range(self.layers_n)
            for j in range(i - 1)
            if self.cfg.skip_connections
        }
        self.head = self.add_weight((c, self.spec.num_classes), "glorot_uniform", name="head")
        self.head_bias = self.add_weight((self.spec.num_classes,), "zeros", name="head_bias")

    def _sizes(self) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
        """Spatial size of each layer's output before and after its reduction (strides are
        1; ``reduce_after`` halves): skips merge at the first, later layers see the second."""
        size, out = list(self.spec.input_shape[:-1]), []
        for i in range(self.cfg.num_layers):
            merged = tuple(size)
            if i in self.cfg.reduce_after:
                size = [math.ceil(s / 2) for s in size]
            out.append((merged, tuple(size)))
        return out

    # -- a child as tensors ----------------------------------------------------------------
    def path(self, blueprint: LayersBlueprint) -> Path:
        """The tensors of ``blueprint``'s path (plain NumPy: cheap, no graph)."""
        n = self.layers_n
        branch = np.zeros(n, np.int32)
        act = np.zeros(n, np.int32)
        width = np.zeros(n, np.int32)
        skip = np.zeros((n, n), np.float32)
        project = np.zeros((n, n), np.float32)
        w_in = self.in_channels
        for i, layer in enumerate(blueprint.layers):
            branch[i] = self.branches.index((layer.op, layer.kernel or 0))
            weighted = layer.op in WEIGHTED_OPS
            w_out = int(layer.filters) if weighted else w_in
            if weighted:
                act[i] = self.cfg.activations.index(layer.activation)
            width[i] = w_out
            for j in layer.skips:
                skip[i, j] = 1.0
                project[i, j] = float(width[j] != w_out)
            w_in = w_out
        return Path(branch, act, width, skip, project)

    # -- the forward pass ------------------------------------------------------------------
    def forward(self, x, path: Path):
        """Logits of the child ``path`` on inputs ``x`` (a traced function calls this)."""
        branch, act, widths, skip, project = path
        if self.cfg.stem_filters is not None:
            y = tf.nn.convolution(x, self.stem_weights["kernel"], padding="SAME")
            x = self._normalize(y, self.stem_weights)
        outputs = []
        for i in range(self.layers_n):
            w_in = widths[i - 1] if i else self.in_channels  # the channels x has
            cut = self._cuts(w_in, widths[i])
            fns = [self._branch_fn(i, b, x, act[i], cut) for b in range(len(self.branches))]
            y = tf.switch_case(branch[i], fns)
            for j in range(i - 1) if self.cfg.skip_connections else ():
                y = self._skip(y, outputs[j], i, j, skip[i, j], project[i, j], widths[j], widths[i])
            if i in self.cfg.reduce_after:
                y = self._pool("max", y, 2, strides=2)
            outputs.append(y)
            x = y
        pooled = tf.reduce_mean(x, axis=list(range(1, self.rank + 1)))
        return tf.matmul(pooled, self.head[: tf.shape(pooled)[-1]]) + self.head_bias

    def _cuts(self, w_in, w_out) -> dict[str, tuple]:
        """The (begin, size) of the slice of each kind of weight that a layer reading
        ``w_in`` channels and writing ``w_out`` uses, by weight name and kernel size. Made
        outside the branches: sizes computed inside a branch become integer intermediates of
        ``tf.switch_case``'s gradient, which TensorFlow's type inference then warns about."""
        r = self.rank
        cuts: dict[str, tuple] = {"pointwise": _cut(w_in, w_out), "vector": _cut(w_out)}
        for k in self.cfg.kernel_sizes:
            cuts[f"kernel{k}"] = _cut(*([k] * r), w_in, w_out)
            cuts[f"depthwise{k}"] = _cut(*([k] * r), w_in, 1)
        return cuts

    def _branch_fn(self, i: int, b: int, x, act, cut):
        """Branch ``b`` of layer ``i``: its operation on the slice ``cut`` of its weights
        (the channels ``x`` has in, the layer's width out)."""
        op, k = self.branches[b]
        if op == "identity":
            return lambda: tf.identity(x)
        if op in ("maxpool", "avgpool"):
            return lambda: self._pool(op[:3], x, k, strides=1)
        w = self.op_weights[i, b]

        def weighted():
            if op == "conv":
                kernel = tf.slice(w["kernel"], *cut[f"kernel{k}"])
                y = tf.nn.convolution(x, kernel, padding="SAME")
            else:
                depthwise = tf.slice(w["depthwise"], *cut[f"depthwise{k}"])
                y = self._sepconv(x, depthwise, tf.slice(w["pointwise"], *cut["pointwise"]))
            scale = {key: tf.slice(w[key], *cut["vector"]) for key in ("gamma", "beta")}
            y = self._normalize(y, scale)
            fns = [(lambda a=a: _activation(a)(y)) for a in self.cfg.activations]
            return tf.switch_case(act, fns)

        return weighted

    def _normalize(self, y, w):
        """Batch normalisation with the batch's statistics and ``w``'s scale and shift."""
        mean, var = tf.nn.moments(y, list(range(self.rank + 1)))
        return tf.nn.batch_normalization(y, mean, var, w["beta"], w["gamma"], BN_EPSILON)

    def _sepconv(self, x, depthwise, pointwise):
        if self.rank == 1:
            x = tf.expand_dims(x, 1)
            depthwise = tf.expand_dims(depthwise, 0)
        y = tf.nn.depthwise_conv2d(x, depthwise, [1, 1, 1, 1], "SAME")
        y = pointwise_conv(y, pointwise)
        return tf.squeeze(y, 1) if self.rank == 1 else y

    def _pool(self, kind: str, x, size: int, strides: int):
        fn = tf.nn.max_pool if kind == "max" else tf.nn.avg_pool
        return fn(x, [size] * self.rank, [strides] * self.rank, "SAME")

    def _skip(self, y, e, i: int, j: int, on, project, w_from, w_out):
        """``y`` plus, when ``on``, layer ``j``'s output ``e`` (resized; projected to
        ``w_out`` channels when ``project``)."""
        cut = _cut(w_from, w_out)  # outside the branches, as in _cuts

        def merged():
            r = self._resize(e, self.sizes[j][1], self.sizes[i][0])
            kernel = self.projections[i, j]
            s = tf.cond(project > 0, lambda: pointwise_conv(r, tf.slice(kernel, *cut)), lambda: r)
            return y + s

        return tf.cond(on > 0, merged, lambda: y)

    def _resize(self, x, size: tuple[int, ...], target: tuple[int, ...]):
        """Average-pool ``x`` from ``size`` down to ``target`` (pad or crop to it exactly)."""
        if size == target:
            return x
        factors = [max(1, math.ceil(s / t)) for s, t in zip(size, target)]
        if any(f > 1 for f in factors):
            x = tf.nn.avg_pool(x, factors, factors, "SAME")
        now = [math.ceil(s / f) for s, f in zip(size, factors)]
        pads = [[0, max(0, t - s)] for s, t in zip(now, target)]
        x = tf.pad(x, [[0, 0]] + pads + [[0, 0]])
        return x[(slice(None),) + tuple(slice(0, t) for t in target)]

    # -- a standalone child's weights ------------------------------------------------------
    def child_weights(self, blueprint: LayersBlueprint) -> dict[str, list[np.ndarray]]:
        """The weights of ``blueprint``'s layers, by the layer names of
        :func:`rlnas.keras_build.layers_model.build_model` (sliced from the shared ones)."""
        out: dict[str, list[np.ndarray]] = {}
        if self.cfg.stem_filters is not None:
            stem = {k: np.asarray(v) for k, v in self.stem_weights.items()}
            out["stem_conv"] = [stem["kernel"]]
            out["stem_bn"] = [stem["gamma"], stem["beta"]]
        w_in = self.in_channels
        widths: list[int] = []
        for i, layer in enumerate(blueprint.layers):
            b = self.branches.index((layer.op, layer.kernel or 0))
            w_out = int(layer.filters) if layer.op in WEIGHTED_OPS else w_in
            if layer.op in WEIGHTED_OPS:
                w = {k: np.asarray(v) for k, v in self.op_weights[i, b].items()}
                if layer.op == "conv":
                    out[f"layer{i}_conv"] = [w["kernel"][..., :w_in, :w_out]]
                else:
                    out[f"layer{i}_sepconv"] = [
                        w["depthwise"][..., :w_in, :],
                        w["pointwise"][:w_in, :w_out].reshape((1,) * self.rank + (w_in, w_out)),
                    ]
                out[f"layer{i}_bn"] = [w["gamma"][:w_out], w["beta"][:w_out]]
            for j in layer.skips:
                if widths[j] != w_out:
                    p = np.asarray(self.projections[i, j])[: widths[j], :w_out]
                    out[f"layer{i}_from{j}_proj"] = [p.reshape((1,) * self.rank + p.shape)]
            widths.append(w_out)
            w_in = w_out
        out["classifier"] = [np.asarray(self.head)[:w_in], np.asarray(self.head_bias)]
        return out


def _cut(*sizes) -> tuple:
    """``tf.slice``'s (begin, size) for the leading ``sizes`` of a weight (ints or int32
    scalar tensors)."""
    size = tf.stack([tf.convert_to_tensor(v, tf.int32) for v in sizes])
    return tf.zeros_like(size), size


def _decays(variable) -> bool:
    """Whether the L2 penalty applies: kernels, not batch normalisation's scale and shift."""
    return "gamma" not in variable.path and "beta" not in variable.path


def pointwise_conv(x, kernel):
    """A 1x1 convolution as one matrix product over the last axis, any rank (``tf.einsum``'s
    gradient is far slower)."""
    flat = tf.matmul(tf.reshape(x, [-1, tf.shape(x)[-1]]), kernel)
    return tf.reshape(flat, tf.concat([tf.shape(x)[:-1], tf.shape(kernel)[-1:]], 0))


def _activation(name: str):
    """Keras's activation ``name``; swish as ``x * sigmoid(x)``: TensorFlow's own swish has a
    custom gradient that fails inside a ``tf.switch_case`` branch under a gradient tape."""
    if name in ("swish", "silu"):
        return lambda x: x * tf.sigmoid(x)
    return keras.activations.get(name)


def load_child_weights(model: keras.Model, weights: dict[str, list[np.ndarray]]) -> None:
    """Set a standalone child's layers to ``weights`` (from :meth:`SuperNet.child_weights`);
    batch normalisation keeps its running statistics (the super-network has none)."""
    for name, arrays in weights.items():
        layer = model.get_layer(name)
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.gamma.assign(arrays[0])
            layer.beta.assign(arrays[1])
        else:
            layer.set_weights(arrays)
