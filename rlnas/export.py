"""Compression: a Keras model to a TFLite flat buffer, optionally quantized, and its accuracy.

The model is exported in inference mode (augmentation layers are identities) as a
SavedModel through Keras's ``ExportArchive`` and converted with TensorFlow's
``TFLiteConverter``, using TFLite's built-in operators only, so the file runs on any TFLite
(LiteRT) runtime without the TensorFlow "flex" delegate:

* ``quantize=None``: float32 weights and activations;
* ``float16``: weights stored as float16 (about half the size), computed in float32;
* ``int8``: weights and activations quantized to 8 bits, with the activation ranges
  calibrated on a *representative dataset* of training examples (never test examples);
  inputs and outputs stay float32, so the file is a drop-in replacement.

::

    blob = to_tflite(model, "int8", representative=x_train[:500])
    accuracy = tflite_accuracy(blob, x_test, y_test)
"""

from __future__ import annotations

import functools
import tempfile
from collections.abc import Iterator

import numpy as np

QUANTIZATIONS = ("float16", "int8")


def to_tflite(
    model, quantize: str | None = None, representative: np.ndarray | None = None
) -> bytes:
    """The TFLite flat buffer of ``model`` (see the module docstring for ``quantize``)."""
    import tensorflow as tf
    from keras.export import ExportArchive

    if quantize not in (None, *QUANTIZATIONS):
        raise ValueError(f"quantize: expected none, float16 or int8, got {quantize!r}")
    if quantize == "int8" and (representative is None or len(representative) == 0):
        raise ValueError("quantize=int8 needs representative training examples")
    shape = tuple(model.inputs[0].shape[1:])
    with tempfile.TemporaryDirectory() as folder:
        archive = ExportArchive()
        archive.track(model)
        archive.add_endpoint(
            "serve",
            functools.partial(model.__call__, training=False),
            input_signature=[tf.TensorSpec((None, *shape), tf.float32)],
        )
        archive.write_out(folder, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(folder)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        if quantize is not None:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if quantize == "float16":
            converter.target_spec.supported_types = [tf.float16]
        elif quantize == "int8":
            converter.representative_dataset = functools.partial(_batches, representative)
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        return bytes(converter.convert())


def representative(x_train: np.ndarray, seed: int, count: int = 500) -> np.ndarray:
    """``count`` training examples drawn at random with ``seed`` (in their original order):
    the sample that calibrates int8 activation ranges."""
    pick = np.random.default_rng(seed).permutation(len(x_train))[:count]
    return x_train[np.sort(pick)]


def _batches(x: np.ndarray) -> Iterator[list[np.ndarray]]:
    for i in range(len(x)):
        yield [np.asarray(x[i : i + 1], dtype=np.float32)]


def tflite_predict(blob: bytes, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Class probabilities of the TFLite model ``blob`` on ``x``."""
    interpreter = _interpreter(blob)
    inp = interpreter.get_input_details()[0]
    out = interpreter.get_output_details()[0]
    results = []
    current = None
    for start in range(0, len(x), batch_size):
        batch = np.asarray(x[start : start + batch_size], dtype=np.float32)
        if current != len(batch):
            interpreter.resize_tensor_input(inp["index"], batch.shape)
            interpreter.allocate_tensors()
            current = len(batch)
        interpreter.set_tensor(inp["index"], batch)
        interpreter.invoke()
        results.append(np.array(interpreter.get_tensor(out["index"])))
    return np.concatenate(results)


def tflite_accuracy(blob: bytes, x: np.ndarray, y: np.ndarray) -> float:
    """Accuracy of the TFLite model ``blob`` on examples ``x`` with labels ``y``."""
    return float(np.mean(np.argmax(tflite_predict(blob, x), axis=1) == y))


def _interpreter(blob: bytes):
    import warnings

    import tensorflow as tf

    with warnings.catch_warnings():  # tf.lite.Interpreter warns that LiteRT replaces it
        warnings.simplefilter("ignore")
        return tf.lite.Interpreter(model_content=blob, num_threads=None)
