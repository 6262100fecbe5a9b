"""The pipeline that feeds arrays to Keras (rlnas.keras_build.batches): every example once per
pass, seeded shuffles, endless streams, autotuning off, and a model trained through it."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from rlnas.keras_build import batches


def test_one_pass_in_order_then_shuffled_passes_that_differ_and_repeat_with_the_seed():
    x = np.arange(10, dtype=np.float32).reshape(10, 1) * 10
    y = np.arange(10)
    plain = list(batches(x, y, batch_size=4))
    assert [len(b[1]) for b in plain] == [4, 4, 2]
    assert np.concatenate([b[1] for b in plain]).tolist() == list(range(10))
    assert np.concatenate([b[0][:, 0] for b in plain]).tolist() == [10.0 * i for i in range(10)]

    feed = batches(x, y, batch_size=4, shuffle=True, seed=5)
    first = np.concatenate([b[1] for b in feed])
    second = np.concatenate([b[1] for b in feed])
    assert sorted(first) == sorted(second) == list(range(10))  # each example once per pass
    assert first.tolist() != second.tolist()  # reshuffled for the next epoch
    for b in feed:
        assert np.all(np.asarray(b[0])[:, 0] == 10 * np.asarray(b[1]))  # rows stay paired
    again = np.concatenate([b[1] for b in batches(x, y, batch_size=4, shuffle=True, seed=5)])
    assert again.tolist() == first.tolist()
    other = np.concatenate([b[1] for b in batches(x, y, batch_size=4, shuffle=True, seed=6)])
    assert other.tolist() != first.tolist()


def test_inputs_alone_an_endless_stream_and_autotuning_off():
    x = np.arange(6, dtype=np.float32).reshape(6, 1)
    alone = list(batches(x, batch_size=4))
    assert [np.asarray(b).shape for b in alone] == [(4, 1), (2, 1)]
    stream = batches(x, np.arange(6), batch_size=4, shuffle=True, seed=0, repeat=True)
    taken = np.concatenate([b[1] for b in stream.take(6)])
    assert len(taken) == 24 and np.bincount(taken).tolist() == [4] * 6  # whole passes joined
    assert stream.options().autotune.enabled is False


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="batch_size: expected a positive integer, got 0"):
        batches(np.zeros((3, 1)), batch_size=0)
    with pytest.raises(ValueError, match="3 inputs but 2 targets"):
        batches(np.zeros((3, 1)), np.zeros(2), batch_size=2)


def test_a_model_fits_and_predicts_through_it_as_through_arrays():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 4)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="sparse_categorical_crossentropy")
    feed = batches(x, y, batch_size=32, shuffle=True, seed=0)
    history = model.fit(feed, epochs=5, shuffle=False, verbose=0)
    assert len(history.history["loss"]) == 5
    assert history.history["loss"][-1] < history.history["loss"][0]
    through = model.predict(batches(x, batch_size=100), verbose=0)
    direct = model.predict(x, batch_size=100, verbose=0)
    assert through.shape == (256, 2)
    np.testing.assert_allclose(through, direct, rtol=1e-6, atol=1e-6)
    assert np.mean(np.argmax(through, axis=1) == y) > 0.9
