"""Define-by-run spaces for the tests (imported by path, also in worker processes)."""

from __future__ import annotations

import keras

from rlnas.strategies.random_search import RandomSearch


def build(d, spec):
    """A tiny MLP family: depth, width per layer (inactive beyond the depth), a skip."""
    depth = d.int("depth", 1, 2)
    inputs = keras.Input(spec.input_shape)
    x = keras.layers.Flatten()(inputs)
    for i in range(2):
        units = d.choice(f"units_{i}", [8, 16], active=i < depth)
        if units:
            x = keras.layers.Dense(units, activation=d.choice(f"act_{i}", ["relu", "tanh"]))(x)
        else:
            d.choice(f"act_{i}", ["relu", "tanh"], active=False)
    d.float("train/learning_rate", [1e-3, 3e-3])
    d.bool("wide_head")
    outputs = keras.layers.Dense(spec.num_classes, activation="softmax")(x)
    return keras.Model(inputs, outputs)


def fails_when_deep(d, spec):
    """Raises for depth 2 (after every decision: the evaluator finds it)."""
    depth = d.int("depth", 1, 2)
    units = d.choice("units", [8, 16])
    if depth == 2:
        raise ValueError("depth 2 is not supported by this family")
    inputs = keras.Input(spec.input_shape)
    x = keras.layers.Dense(units)(keras.layers.Flatten()(inputs))
    return keras.Model(inputs, keras.layers.Dense(spec.num_classes, activation="softmax")(x))


def wrong_head(d, spec):
    """Ends in 3 units whatever the task: the child does not fit it."""
    units = d.choice("units", [8, 16])
    inputs = keras.Input(spec.input_shape)
    x = keras.layers.Dense(units)(keras.layers.Flatten()(inputs))
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))


_calls = {"n": 0}


def changes_signature(d, spec):
    """Declares `b` on its first call and `c` afterwards."""
    _calls["n"] += 1
    d.choice("a", [1, 2])
    d.choice("b" if _calls["n"] == 1 else "c", [1, 2])
    inputs = keras.Input(spec.input_shape)
    x = keras.layers.Flatten()(inputs)
    return keras.Model(inputs, keras.layers.Dense(spec.num_classes, activation="softmax")(x))


def no_model(d, spec):
    d.choice("a", [1, 2])
    return "not a model"


NOT_CALLABLE = 3


def train(model, data, decisions):
    """A custom loop: one epoch of plain fit, rewarded by validation accuracy."""
    model.fit(data.x_train, data.y_train, epochs=1, batch_size=32, verbose=0)
    return model.evaluate(data.x_val, data.y_val, verbose=0, return_dict=True)["accuracy"]


class MyRandom(RandomSearch):
    """A user's strategy: random search under its own name."""

    name = "my_random"


INTERRUPT_AT: int | None = None
"""`train_or_interrupt` raises KeyboardInterrupt (a Ctrl-C) at this call (the tests set it)."""
_trained = {"n": 0}


def train_or_interrupt(model, data, decisions):
    """`train`, with a Ctrl-C at call INTERRUPT_AT."""
    if INTERRUPT_AT is not None and _trained["n"] == INTERRUPT_AT:
        _trained["n"] = 0
        raise KeyboardInterrupt
    _trained["n"] += 1
    return train(model, data, decisions)
