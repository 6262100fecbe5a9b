"""A 1-D convolutional network searched on sequences from your own ``.npz`` file.

    .venv/bin/python examples/sequence_mnist1d.py

MNIST-1D (Greydanus 2020; generated offline by the ``mnist1d`` package) is saved as a plain
``(N, 40)`` array, the way signals are often stored. rlnas reads a 2-D ``x`` as flat
vectors unless told otherwise; ``task.input_kind: sequence`` reads every row as 40 steps of
one channel, so the `layers` space searches 1-D convolutions and poolings over time.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

import rlnas


def write_signals(folder: Path) -> Path:
    """MNIST-1D's examples as ``x`` of shape (N, 40) with labels ``y``, in an npz file."""
    from mnist1d.data import get_dataset_args, make_dataset

    d = make_dataset(get_dataset_args())
    path = folder / "signals.npz"
    np.savez(path, x=d["x"].astype(np.float32), y=d["y"], x_test=d["x_test"], y_test=d["y_test"])
    return path


def main(**overrides) -> float:
    """Search the signals; ``overrides``: settings as ``rlnas.search`` takes them."""
    with tempfile.TemporaryDirectory() as tmp:
        path = write_signals(Path(tmp))
        task = {"name": "npz", "path": str(path), "input_kind": "sequence"}  # (N, 40) -> (N, 40, 1)
        layers = {"num_layers": 3, "filters": [16, 32], "kernel_sizes": [3, 5]}
        settings = dict(epochs=8, children=6, experiment="sequence_npz", controller__batch_size=3)
        result = rlnas.search(
            task=task, layers={**layers, "augmentations": ["none"]}, **{**settings, **overrides}
        )
    best = result.best
    print(f"best child {best.number}: val_accuracy {best.reward:.4f}")
    print("decisions:", dict(best.architecture))
    return best.reward


if __name__ == "__main__":
    main()
