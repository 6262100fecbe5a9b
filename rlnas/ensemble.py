"""Ensembles (model fusion): one Keras model that averages the class probabilities of several.

:func:`build_ensemble` wraps trained models into a single functional model: the input goes
to every member, each member's softmax output is scaled by its weight (a built-in
``Rescaling`` layer) and the results are summed (``Add``); equal weights give the plain
average. Only built-in layers are used, so the ensemble saves as one ``.keras`` file that
loads in safe mode, and exports like any model.

:func:`fit_weights` fits the weights on held-out examples (the validation split, which the
members then must not have trained on): it minimises the log-loss of the weighted average
over the simplex by exponentiated gradient descent, a convex problem::

    weights = fit_weights([predict(m, x_val) for m in members], y_val)  # rlnas.final.predict
    ensemble = build_ensemble(members, weights)

:func:`view_average` is the same fusion over views of one model (test-time augmentation):
the image, its horizontal mirror and these shifted by a few pixels (cropping and edge
repetition), stacked into one batch for the network and averaged. It uses built-in layers
and ``keras.ops`` calls (flip, concatenate, reshape, mean), which a saved functional model
records as its own operations, so it too loads in safe mode.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def fit_weights(
    probs: Sequence[np.ndarray], y: np.ndarray, steps: int = 500, rate: float = 0.5
) -> np.ndarray:
    """Weights on the simplex minimising the log-loss of ``sum_k w_k probs[k]`` for labels
    ``y`` (exponentiated gradient from equal weights)."""
    if not probs:
        raise ValueError("fit_weights: no member predictions")
    # p[k, n]: member k's probability of example n's true class
    p = np.stack([np.asarray(q, dtype=np.float64)[np.arange(len(y)), y] for q in probs])
    p = np.clip(p, 1e-12, 1.0)
    w = np.full(len(probs), 1.0 / len(probs))
    for _ in range(steps):
        mix = w @ p
        grad = -(p / mix).mean(axis=1)  # d/dw of the mean negative log-likelihood
        w = w * np.exp(-rate * (grad - grad.min()))  # shifted: same step, no overflow
        w /= w.sum()
    return w


def log_loss(probs: Sequence[np.ndarray], weights: np.ndarray, y: np.ndarray) -> float:
    """Mean negative log-likelihood of the weighted average of ``probs``."""
    mix = sum(w * np.asarray(q, dtype=np.float64) for w, q in zip(weights, probs))
    return float(-np.mean(np.log(np.clip(mix[np.arange(len(y)), y], 1e-12, 1.0))))


def build_ensemble(
    models: Sequence, weights: Sequence[float] | None = None, name: str = "ensemble"
):
    """One Keras model returning the weighted average of ``models``' outputs.

    ``weights`` default to equal; they are normalised to sum to 1. Every model must take the
    same input shape and return probabilities of the same classes.
    """
    import keras  # lazy: keras loads TensorFlow; rlnas.final_runs imports this module

    if not models:
        raise ValueError("build_ensemble: no models")
    w = np.ones(len(models)) if weights is None else np.asarray(weights, dtype=np.float64)
    if len(w) != len(models) or (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"build_ensemble: expected {len(models)} non-negative weights, got {w}")
    w = w / w.sum()
    shape = tuple(models[0].inputs[0].shape[1:])
    outputs_shape = tuple(models[0].outputs[0].shape[1:])
    for m in models[1:]:
        if tuple(m.inputs[0].shape[1:]) != shape or tuple(m.outputs[0].shape[1:]) != outputs_shape:
            raise ValueError("build_ensemble: members take or return differently shaped tensors")
    inputs = keras.Input(shape=shape, name="input")
    scaled = []
    for k, (model, wk) in enumerate(zip(models, w)):
        member = keras.Model(model.inputs[0], model.outputs[0], name=f"member_{k}")
        out = member(inputs)
        scaled.append(keras.layers.Rescaling(float(wk), name=f"weight_{k}")(out))
    out = scaled[0] if len(scaled) == 1 else keras.layers.Add(name="average")(scaled)
    return keras.Model(inputs, out, name=name)


def max_shift(height: int, width: int) -> int:
    """The largest test-time shift of ``height`` x ``width`` images: less than half the
    shorter side, so that every shifted view keeps more of the image than it repeats."""
    return min(height, width) // 2 - 1


def view_average(model, *, flip: bool = True, shift: int = 0, name: str = "view_average"):
    """One Keras model returning the mean of ``model``'s outputs over views of an image
    ``(H, W, C)``: the image itself, with ``flip`` its horizontal mirror, and with ``shift``
    each of these moved by ``shift`` pixels up, down, left and right (the rows or columns
    that come in repeat the edge, as ``fill_mode="nearest"`` augmentation fills them): 1, 2,
    5 or 10 views. The views are stacked into one batch for ``model`` (called once), so the
    graph, and a TFLite export of it, holds one copy of the network."""
    import keras  # lazy: keras loads TensorFlow; rlnas.final_runs imports this module

    shape = tuple(model.inputs[0].shape[1:])
    if len(shape) != 3:
        raise ValueError(f"view_average: expected images (H, W, C), got inputs of shape {shape}")
    height, width = int(shape[0]), int(shape[1])
    if not 0 <= shift <= max_shift(height, width):
        raise ValueError(
            f"view_average: shift must be in 0..{max_shift(height, width)} pixels for "
            f"{height}x{width} images, got {shift}"
        )
    if not flip and not shift:
        raise ValueError("view_average: no view besides the image itself (flip=False, shift=0)")
    inputs = keras.Input(shape=shape, name="input")
    views = [inputs]
    if flip:
        views.append(keras.ops.flip(inputs, axis=2))
    moves = ((1, shift, "down"), (1, -shift, "up"), (2, shift, "right"), (2, -shift, "left"))
    if shift:
        views += [
            _shifted(view, axis, step, (height, width), f"view{k}_{label}")
            for k, view in enumerate(list(views))
            for axis, step, label in moves
        ]
    # the views go through the network as one batch of V times the images, then are averaged:
    # one copy of the network in the graph, so an exported model stays the size of one view's
    member = keras.Model(model.inputs[0], model.outputs[0], name="model")
    each = member(keras.ops.concatenate(views, axis=0))  # (V * B, classes)
    out = keras.ops.mean(keras.ops.reshape(each, (len(views), -1, *each.shape[1:])), axis=0)
    return keras.Model(inputs, out, name=name)


def _shifted(x, axis: int, step: int, size: tuple[int, int], name: str):
    """``x`` moved by ``step`` pixels along ``axis`` (1: rows, 2: columns; positive: down or
    right), its edge row or column repeated into the gap: built-in cropping and concatenation
    only."""
    import keras  # lazy: keras loads TensorFlow; rlnas.final_runs imports this module

    n, side = abs(step), size[axis - 1]

    def crop(start: int, stop: int, what: str):  # keep rows (or columns) start..stop-1
        cut = (start, side - stop)
        cropping = (cut, (0, 0)) if axis == 1 else ((0, 0), cut)
        return keras.layers.Cropping2D(cropping, name=f"{name}_{what}")(x)

    edge = crop(0, 1, "edge") if step > 0 else crop(side - 1, side, "edge")
    fill = edge if n == 1 else keras.layers.Concatenate(axis=axis, name=f"{name}_fill")([edge] * n)
    body = crop(0, side - n, "body") if step > 0 else crop(n, side, "body")
    parts = [fill, body] if step > 0 else [body, fill]
    return keras.layers.Concatenate(axis=axis, name=name)(parts)
