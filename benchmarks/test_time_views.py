"""Test accuracy of saved final models under each set of test-time views.

Loads each ``model.keras`` that ``rlnas final`` saved (in safe mode; a model shipped with
views has its trained network as the layer ``model``), wraps that network with
:func:`rlnas.ensemble.view_average` for every view set (one view, mirror, shifts of 1 and 2
pixels, mirror and shifts) and prints the test accuracy of each on the task's test split,
one column per model, with the mean change against one view::

    python benchmarks/test_time_views.py fashion_mnist RUN_A/model.keras RUN_B/model.keras

With ``--tflite`` it also exports each network with one view and with the config's 10 views
(mirror and 1-pixel shifts) to float32 and int8 TFLite, as ``rlnas export`` does (500
representative training images), and prints the file sizes and the int8 test accuracy.

The models are evaluated, not chosen between: this reports what each view set does to
networks that are already trained.
"""

from __future__ import annotations

import argparse

import numpy as np

VIEWS = [
    ("one", False, 0),
    ("2: + mirror", True, 0),
    ("5: + 1-pixel shifts", False, 1),
    ("10: mirror and 1-pixel shifts", True, 1),
    ("5: + 2-pixel shifts", False, 2),
    ("10: mirror and 2-pixel shifts", True, 2),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task", help="task name, e.g. fashion_mnist (its test split is used)")
    parser.add_argument("models", nargs="+", help="model.keras files saved by rlnas final")
    parser.add_argument("--tflite", action="store_true", help="also report TFLite sizes")
    args = parser.parse_args()

    import keras

    from rlnas.config import TaskConfig
    from rlnas.ensemble import view_average
    from rlnas.tasks import load_task

    data = load_task(TaskConfig(name=args.task))
    networks = []
    for path in args.models:
        model = keras.saving.load_model(path, safe_mode=True)
        names = {layer.name for layer in model.layers}
        inner = model.get_layer("model") if "model" in names else model
        networks.append(keras.Model(inner.inputs[0], inner.outputs[0]))

    def accuracy(net, flip: bool, shift: int) -> float:
        return _accuracy(view_average(net, flip=flip, shift=shift) if flip or shift else net, data)

    print(f"test split of {args.task}: {len(data.y_test)} examples; models: {args.models}")
    columns = " | ".join(f"model {k + 1}" for k in range(len(networks)))
    print(f"| views | {columns} | mean change |")
    base = None
    for label, flip, shift in VIEWS:
        row = np.array([accuracy(net, flip, shift) for net in networks])
        base = row if base is None else base
        change = "" if row is base else f"{100 * np.mean(row - base):+.2f}"
        cells = " | ".join(f"{100 * a:.2f}%" for a in row)
        print(f"| {label} | {cells} | {change} |", flush=True)
    if args.tflite:
        _tflite(networks, data)


def _accuracy(model, data) -> float:
    from rlnas.final import accuracy, predict

    return accuracy(predict(model, data.x_test), data.y_test)


def _tflite(networks, data) -> None:
    from rlnas.ensemble import view_average
    from rlnas.export import representative, tflite_accuracy, to_tflite

    sample = representative(data.x_train, seed=0)
    print("| model | views | float32 bytes | int8 bytes | smaller | Keras acc | int8 acc |")
    for k, net in enumerate(networks):
        for label, model in (("one", net), ("10", view_average(net, flip=True, shift=1))):
            keras_acc = _accuracy(model, data)
            full = len(to_tflite(model))
            int8 = to_tflite(model, "int8", sample)
            acc = tflite_accuracy(int8, data.x_test, data.y_test)
            print(
                f"| model {k + 1} | {label} | {full:,} | {len(int8):,} | {full / len(int8):.2f}x "
                f"| {100 * keras_acc:.2f}% | {100 * acc:.2f}% |",
                flush=True,
            )


if __name__ == "__main__":
    main()
