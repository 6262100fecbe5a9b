"""Return what TensorFlow keeps after a Keras child is gone, so memory stays flat.

Keras's TensorFlow optimizer sums gradients through ``tf.custom_gradient``, and in graph
mode every traced ``custom_gradient`` call registers a fresh ``CustomGradient-N`` function
in TensorFlow's global gradient registry, which is never emptied. Each entry's closure holds
the traced graph of a child's training step (about a thousand operations), so a long search
in one process grows by megabytes per child even after ``keras.backend.clear_session()``.
:func:`forget_child_gradients` removes the entries registered while a child trained, once
the child's model is gone and nothing can take those gradients again.

The registry is private TensorFlow API (``ops._gradient_registry._registry``, a dict);
``tests/test_private_api.py`` fails when it moves. Where it is missing, nothing is removed.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from tensorflow.python.framework import ops

log = logging.getLogger(__name__)

PREFIX = "CustomGradient-"
"""Names TensorFlow gives the gradient functions of ``tf.custom_gradient`` calls."""


def gradient_registry() -> dict | None:
    """TensorFlow's global name -> gradient function dict, or None in another layout."""
    registry = getattr(getattr(ops, "_gradient_registry", None), "_registry", None)
    return registry if isinstance(registry, dict) else None


@contextlib.contextmanager
def forget_child_gradients() -> Iterator[None]:
    """Drop the ``CustomGradient-*`` entries registered inside this block when it ends.

    Use it around one child's build-train-discard cycle in a process that trains nothing
    else at the same time (the evaluators run children one at a time per process).
    """
    registry = gradient_registry()
    before = set(registry) if registry is not None else set()
    try:
        yield
    finally:
        if registry is not None:
            added = [k for k in registry if k not in before and k.startswith(PREFIX)]
            for key in added:
                registry.pop(key, None)
            log.debug("dropped %d custom gradient registrations", len(added))
