"""TFLite export of a small trained Keras model: float32, float16 and int8 sizes and test
accuracy against the Keras model; augmentation layers stay out of the exported graph."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")
pytestmark = pytest.mark.slow

from rlnas.export import tflite_accuracy, tflite_predict, to_tflite  # noqa: E402


@pytest.fixture(scope="module")
def trained():
    """A small CNN with training-only augmentation, trained for a few epochs on digits."""
    from rlnas.config import TaskConfig
    from rlnas.keras_build import augment_inputs
    from rlnas.tasks import load_task

    data = load_task(TaskConfig(name="digits"))
    keras.utils.set_random_seed(0)
    inputs = keras.Input(data.spec.input_shape)
    x = augment_inputs(inputs, "light", data.spec)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    x = keras.layers.Conv2D(64, 3, strides=2, padding="same", activation="relu")(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(64, activation="relu")(x)
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(x))
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(data.x_train, data.y_train, epochs=4, batch_size=64, verbose=0)
    acc = float(np.mean(model.predict(data.x_test, verbose=0).argmax(1) == data.y_test))
    return model, data, acc


def test_float32_tflite_matches_the_keras_model_in_inference_mode(trained):
    model, data, acc = trained
    blob = to_tflite(model)
    probs = tflite_predict(blob, data.x_test[:64])
    assert np.allclose(probs, model.predict(data.x_test[:64], verbose=0), atol=1e-4)
    assert tflite_accuracy(blob, data.x_test, data.y_test) == pytest.approx(acc)
    assert acc > 0.8  # the comparison below means something


def test_quantized_models_are_smaller_and_nearly_as_accurate(trained):
    model, data, acc = trained
    weights = sum(int(np.prod(w.shape)) for w in model.weights) * 4
    blobs = {q: to_tflite(model, q, data.x_train[:200]) for q in (None, "float16", "int8")}
    sizes = {q: len(b) for q, b in blobs.items()}
    int8, f16 = blobs["int8"], blobs["float16"]
    print(f"weights {weights} B, TFLite sizes {sizes}")
    assert sizes[None] > weights  # every float32 weight is stored
    assert sizes[None] / sizes["float16"] > 1.8
    assert sizes[None] / sizes["int8"] > 3.0
    assert abs(tflite_accuracy(f16, data.x_test, data.y_test) - acc) <= 0.01
    assert abs(tflite_accuracy(int8, data.x_test, data.y_test) - acc) <= 0.03


def test_a_model_averaging_10_views_exports_one_copy_of_its_network(trained):
    """The views go through the network as one batch: the int8 file of the 10-view model
    is the one-view file plus the views' few slicing operations, not ten networks, so it
    stays more than 3x smaller than its float32 file; the TFLite model gives the same mean."""
    from rlnas.ensemble import view_average

    model, data, _ = trained
    views = view_average(model, flip=True, shift=1)
    x = data.x_test[:64]
    blob = to_tflite(views)
    assert np.allclose(tflite_predict(blob, x), views.predict(x, verbose=0), atol=1e-4)
    one = len(to_tflite(model, "int8", data.x_train[:200]))
    int8 = to_tflite(views, "int8", data.x_train[:200])
    print(f"int8 bytes: one view {one}, 10 views {len(int8)}; float32 10 views {len(blob)}")
    assert len(int8) < 1.25 * one
    assert len(blob) / len(int8) > 3.0
    keras_acc = float(np.mean(views.predict(data.x_test, verbose=0).argmax(1) == data.y_test))
    assert abs(tflite_accuracy(int8, data.x_test, data.y_test) - keras_acc) <= 0.03


def test_bad_quantization_settings_are_refused(trained):
    model, _, _ = trained
    with pytest.raises(ValueError, match="expected none, float16 or int8"):
        to_tflite(model, "int4")
    with pytest.raises(ValueError, match="representative training examples"):
        to_tflite(model, "int8")


@pytest.mark.parametrize("io_type", ["int8", "uint8"])
def test_full_integer_io_takes_and_gives_integers_and_keeps_the_accuracy(trained, io_type):
    from rlnas.export import _interpreter, io_types

    model, data, acc = trained
    float_io = to_tflite(model, "int8", data.x_train[:200])
    integer = to_tflite(model, "int8", data.x_train[:200], io_type=io_type)
    assert io_types(float_io) == (np.float32, np.float32)
    assert io_types(integer) == (np.dtype(io_type), np.dtype(io_type))
    # the interpreter runs it on integer input as a microcontroller would feed it
    interpreter = _interpreter(integer)
    inp = interpreter.get_input_details()[0]
    out = interpreter.get_output_details()[0]
    scale, zero = inp["quantization"]
    assert scale > 0
    info = np.iinfo(io_type)
    x = data.x_test[:32]
    q = np.clip(np.round(x / scale + zero), info.min, info.max).astype(io_type)
    interpreter.resize_tensor_input(inp["index"], q.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(inp["index"], q)
    interpreter.invoke()
    raw = interpreter.get_tensor(out["index"])
    assert raw.dtype == np.dtype(io_type)
    o_scale, o_zero = out["quantization"]
    probs = (raw.astype(np.float32) - o_zero) * o_scale
    assert np.mean(probs.argmax(1) == model.predict(x, verbose=0).argmax(1)) >= 0.9
    assert abs(tflite_accuracy(integer, data.x_test, data.y_test) - acc) <= 0.03


def test_integer_io_needs_int8_quantization(trained):
    model, data, _ = trained
    with pytest.raises(ValueError, match="io_type=int8 needs quantize=int8"):
        to_tflite(model, "float16", io_type="int8")
    with pytest.raises(ValueError, match="io_type: expected one of float32, int8, uint8"):
        to_tflite(model, "int8", data.x_train[:10], io_type="int4")


def test_the_interpreter_is_litert_when_installed(trained):
    pytest.importorskip("ai_edge_litert")
    from ai_edge_litert.interpreter import Interpreter

    from rlnas.export import _interpreter

    model, _, _ = trained
    assert isinstance(_interpreter(to_tflite(model)), Interpreter)
