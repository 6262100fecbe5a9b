"""A child's compute per example: multiply-adds of its forward pass, counted from the model.

Every layer that multiplies its input by a kernel (dense, convolution of any kind,
depthwise and separable convolution) costs ``kernel size x output positions`` multiply-adds:
a ``Conv2D`` kernel ``(kh, kw, c_in, c_out)`` applied at ``H x W`` output positions costs
``kh*kw*c_in*c_out*H*W``; a ``Dense`` layer on a flat vector has one output position.
Pooling, normalisation, activations and additions are not counted (they are cheap next to
the products). The count does not depend on the machine, so a cost target in a config
means the same everywhere::

    multiply_adds(model) / 1e6   # MMACs per example, as logged for every child
"""

from __future__ import annotations

import math

KERNELS = ("kernel", "depthwise_kernel", "pointwise_kernel")


def multiply_adds(model) -> int:
    """Multiply-adds of one example's forward pass through ``model`` (a built Keras model)."""
    total = 0
    for layer in model.layers:
        kernels = [w for w in layer.weights if w.path.rsplit("/", 1)[-1] in KERNELS]
        if not kernels:
            continue
        out = layer.output.shape  # (batch, *positions, channels)
        positions = math.prod(int(d) for d in out[1:-1]) if len(out) > 2 else 1
        total += positions * sum(math.prod(int(d) for d in w.shape) for w in kernels)
    return total
