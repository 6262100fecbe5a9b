"""Compression: a Keras model to a LiteRT (TFLite) flat buffer, optionally quantized, and its
accuracy measured with the LiteRT interpreter that deployments use.

The model goes through Keras's own LiteRT export (``model.export(path, format="litert")``),
in inference mode (augmentation layers are identities), with LiteRT's built-in operators
only, so the file runs on any LiteRT runtime without the TensorFlow "flex" delegate. What
each setting produces:

* ``quantize=None``: float32 weights and activations; float32 input and output.
* ``"float16"``: weights stored as float16 (about half the size) and widened to float32 when
  the model loads; float32 activations, input and output.
* ``"int8"``: int8 weights and activations; float32 input and output (the file quantizes
  the input and dequantizes the output itself), so it is a drop-in replacement.
* ``"int8"`` with ``io_type="int8"`` (or ``"uint8"``): full-integer, int8 weights and
  activations and int8 (uint8) input and output tensors; no float operation is left.

``int8`` calibrates the activation ranges on a *representative dataset* of training examples
(never test examples) and fails rather than keep a float operator. The integer ``io_type``
is what microcontrollers and Edge TPUs need: the caller quantizes its input with the input
tensor's ``(scale, zero_point)`` and dequantizes the output likewise, as
:func:`tflite_predict` does.

::

    blob = to_tflite(model, "int8", representative=x_train[:500], io_type="int8")
    accuracy = tflite_accuracy(blob, x_test, y_test)
"""

from __future__ import annotations

import functools
import os
import tempfile
from collections.abc import Iterator

import numpy as np

from rlnas.entry_points import callable_module

QUANTIZATIONS = ("float16", "int8")
IO_TYPES = ("float32", "int8", "uint8")
"""Input and output dtypes of the exported model; the integer ones need ``quantize="int8"``."""


def to_tflite(
    model,
    quantize: str | None = None,
    representative: np.ndarray | None = None,
    *,
    io_type: str = "float32",
) -> bytes:
    """The LiteRT flat buffer of ``model`` (see the module docstring for the settings)."""
    import tensorflow as tf

    if quantize not in (None, *QUANTIZATIONS):
        raise ValueError(f"quantize: expected none, float16 or int8, got {quantize!r}")
    if io_type not in IO_TYPES:
        raise ValueError(f"io_type: expected one of {', '.join(IO_TYPES)}, got {io_type!r}")
    if io_type != "float32" and quantize != "int8":
        raise ValueError(f"io_type={io_type} needs quantize=int8, got quantize={quantize!r}")
    if quantize == "int8" and (representative is None or len(representative) == 0):
        raise ValueError("quantize=int8 needs representative training examples")
    settings: dict = {"target_spec": {"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS]}}
    if quantize is not None:
        settings["optimizations"] = [tf.lite.Optimize.DEFAULT]
    if quantize == "float16":
        settings["target_spec"]["supported_types"] = [tf.float16]
    elif quantize == "int8":
        settings["representative_dataset"] = functools.partial(_batches, representative)
        settings["target_spec"]["supported_ops"] = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if io_type != "float32":
            settings["inference_input_type"] = settings["inference_output_type"] = getattr(
                tf, io_type
            )
    shape = tuple(model.inputs[0].shape[1:])
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "model.tflite")
        model.export(
            path,
            format="litert",
            input_signature=[tf.TensorSpec((None, *shape), tf.float32)],
            verbose=False,
            **settings,
        )
        with open(path, "rb") as file:
            return file.read()


def representative(x_train: np.ndarray, seed: int, count: int = 500) -> np.ndarray:
    """``count`` training examples drawn at random with ``seed`` (in their original order):
    the sample that calibrates int8 activation ranges."""
    pick = np.random.default_rng(seed).permutation(len(x_train))[:count]
    return x_train[np.sort(pick)]


def _batches(x: np.ndarray) -> Iterator[list[np.ndarray]]:
    for i in range(len(x)):
        yield [np.asarray(x[i : i + 1], dtype=np.float32)]


def io_types(blob: bytes) -> tuple[np.dtype, np.dtype]:
    """The input and output dtypes of the LiteRT model ``blob``."""
    interpreter = _interpreter(blob)
    inp = interpreter.get_input_details()[0]
    out = interpreter.get_output_details()[0]
    return np.dtype(inp["dtype"]), np.dtype(out["dtype"])


def tflite_predict(blob: bytes, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Class probabilities (float32) of the LiteRT model ``blob`` on float examples ``x``.

    A model with integer input gets ``x`` quantized with its input's scale and zero point;
    integer output is dequantized with the output's."""
    interpreter = _interpreter(blob)
    inp = interpreter.get_input_details()[0]
    out = interpreter.get_output_details()[0]
    results = []
    current = None
    for start in range(0, len(x), batch_size):
        batch = quantize_input(np.asarray(x[start : start + batch_size]), inp)
        if current != len(batch):
            interpreter.resize_tensor_input(inp["index"], batch.shape)
            interpreter.allocate_tensors()
            current = len(batch)
        interpreter.set_tensor(inp["index"], batch)
        interpreter.invoke()
        results.append(dequantize_output(np.array(interpreter.get_tensor(out["index"])), out))
    return np.concatenate(results)


def quantize_input(x: np.ndarray, detail: dict) -> np.ndarray:
    """``x`` as the input tensor described by ``detail`` takes it (float, or integers from
    its ``(scale, zero_point)``, rounded and clipped to the dtype's range)."""
    dtype = np.dtype(detail["dtype"])
    if not np.issubdtype(dtype, np.integer):
        return x.astype(dtype, copy=False)
    scale, zero = detail["quantization"]
    limits = np.iinfo(dtype)
    q = np.round(x.astype(np.float32) / scale + zero)
    return np.clip(q, limits.min, limits.max).astype(dtype)


def dequantize_output(y: np.ndarray, detail: dict) -> np.ndarray:
    """Float values of the output tensor ``y`` described by ``detail``."""
    if not np.issubdtype(np.dtype(detail["dtype"]), np.integer):
        return y.astype(np.float32, copy=False)
    scale, zero = detail["quantization"]
    return (y.astype(np.float32) - zero) * scale


def tflite_accuracy(blob: bytes, x: np.ndarray, y: np.ndarray) -> float:
    """Accuracy of the LiteRT model ``blob`` on examples ``x`` with labels ``y``."""
    return float(np.mean(np.argmax(tflite_predict(blob, x), axis=1) == y))


def _interpreter(blob: bytes):
    """The LiteRT interpreter (``ai-edge-litert``, the ``litert`` extra) when installed,
    else TensorFlow's ``tf.lite.Interpreter``, which TensorFlow deprecates in its favour. The
    fallback stays because ai-edge-litert 2 has no wheel everywhere TensorFlow has one
    (checked on PyPI, 2026-12-07: Intel Macs get 1.0.1 at most, Linux needs glibc 2.27)."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import warnings

        import tensorflow as tf

        with warnings.catch_warnings():  # tf.lite.Interpreter warns that LiteRT replaces it
            warnings.simplefilter("ignore")
            return tf.lite.Interpreter(model_content=blob, num_threads=None)
    return Interpreter(model_content=blob, num_threads=None)


callable_module(__name__, "export")  # rlnas.export(run_id, ...): rlnas.api.export
