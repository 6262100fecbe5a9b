"""Your own search space: a small ResNet-style family on Fashion-MNIST, searched from Python.

    .venv/bin/python examples/custom_space_fashion.py [--quick] [--children 8] [--train 2000]

``build(d, spec)`` builds one member of the family and declares, as it goes, the decisions
that pick it: the stem width, how many stages (each halves the image and doubles the
width), the blocks of each stage and whether they have a skip connection, the dropout
before the classifier and the learning rate. A stage that a child does not have declares
its decisions inactive (``active=False``), so every call declares the same decisions.

The data are Fashion-MNIST from the Debian package ``dataset-fashion-mnist`` (or Keras's
cache), read offline by rlnas's reader; a stratified subset keeps the search to a few
minutes on two CPU cores (``--quick``: 4 children on 1,000 examples, about a minute). The
best child comes back with its trained weights; ``rlnas final RUN_ID`` retrains it on the
training and validation subsets and scores it on the test split given as ``test_data``.
"""

from __future__ import annotations

import argparse

import keras
import numpy as np

import rlnas
from rlnas.task_config import TaskConfig
from rlnas.tasks import load_task, stratified_take


def residual_block(x, filters: int, stride: int, skip: bool):
    """conv-BN-ReLU, conv-BN, plus the input (1x1-projected when its shape changes)."""
    y = keras.layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False)(x)
    y = keras.layers.ReLU()(keras.layers.BatchNormalization()(y))
    y = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False)(y)
    y = keras.layers.BatchNormalization()(y)
    if skip:
        if stride != 1 or x.shape[-1] != filters:
            x = keras.layers.Conv2D(filters, 1, strides=stride, use_bias=False)(x)
        y = keras.layers.Add()([x, y])
    return keras.layers.ReLU()(y)


def build(d, spec):
    """One member of the family; ``d`` declares each decision where it is used."""
    width = d.choice("stem/width", [8, 16])
    stages = d.int("stages", 1, 3)
    inputs = keras.Input(spec.input_shape)
    x = keras.layers.Conv2D(width, 3, padding="same", activation="relu")(inputs)
    for s in range(3):
        here = s < stages
        blocks = d.int(f"stage_{s}/blocks", 1, 2, active=here)
        skip = d.bool(f"stage_{s}/skip", active=here)
        for b in range(blocks or 0):
            stride = 2 if s > 0 and b == 0 else 1
            x = residual_block(x, width * 2**s, stride, bool(skip))
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(d.float("dropout", [0.0, 0.2]))(x)
    d.choice("train/learning_rate", [1e-3, 3e-3])  # read by rlnas when it compiles the child
    outputs = keras.layers.Dense(spec.num_classes, activation="softmax")(x)
    return keras.Model(inputs, outputs)


def fashion_subset(n_train: int, n_val: int, n_test: int, seed: int = 0):
    """Stratified training, validation and test subsets of Fashion-MNIST (the test subset
    from its own test split)."""
    data = load_task(TaskConfig(name="fashion_mnist", validation_fraction=0.1))
    rng = np.random.default_rng(seed)
    train, _ = stratified_take(data.y_train, n_train, rng)
    val, _ = stratified_take(data.y_val, n_val, rng)
    test, _ = stratified_take(data.y_test, n_test, rng)
    return (
        (data.x_train[train], data.y_train[train]),
        (data.x_val[val], data.y_val[val]),
        (data.x_test[test], data.y_test[test]),
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--children", type=int, default=8)
    p.add_argument("--train", type=int, default=2000, help="training examples")
    p.add_argument("--strategy", default="reinforce")
    p.add_argument("--quick", action="store_true", help="4 children, 1000 examples, 1 epoch")
    args = p.parse_args()
    if args.quick:
        args.children, args.train = 4, 1000
    n_val, n_test = (500, 2000) if args.quick else (1000, 10000)
    (x, y), validation, (x_test, y_test) = fashion_subset(args.train, n_val, n_test)
    result = rlnas.search(
        build,
        x,
        y,
        validation_data=validation,
        test_data=(x_test, y_test),  # only rlnas final scores it
        epochs=1 if args.quick else 2,
        children=args.children,
        strategy=args.strategy,
        experiment="custom-space-fashion",
        controller={"batch_size": 4},
    )
    print(result.trials[["number", "reward", "stages", "stem/width", "dropout"]])
    best = result.best
    print(f"best child {best.number}: val_accuracy {best.reward:.4f}")
    for name, value in best.architecture.items():
        print(f"  {name:<20} {value}")
    model = result.best_model()  # the child's trained weights, kept during the search
    test = model.evaluate(x_test, y_test, verbose=0, return_dict=True)
    print(f"its test accuracy as trained in the search: {test['accuracy']:.4f}")
    print(f"MLflow run {result.run_id}: rlnas final {result.run_id} retrains it for longer")


if __name__ == "__main__":
    main()
