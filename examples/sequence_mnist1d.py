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

from rlnas import factory
from rlnas.config import load_config
from rlnas.progress import ProgressBar
from rlnas.search import Budget, Search
from rlnas.tracking import MLflowTracker


def write_signals(folder: Path) -> Path:
    """MNIST-1D's examples as ``x`` of shape (N, 40) with labels ``y``, in an npz file."""
    from mnist1d.data import get_dataset_args, make_dataset

    d = make_dataset(get_dataset_args())
    path = folder / "signals.npz"
    np.savez(path, x=d["x"].astype(np.float32), y=d["y"], x_test=d["x_test"], y_test=d["y_test"])
    return path


def main(overrides: tuple[str, ...] = ()) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        path = write_signals(Path(tmp))
        cfg = load_config(
            None,
            [
                "task.name=npz",
                f"task.path={path}",
                "task.input_kind=sequence",  # (N, 40) -> (N, 40, 1): 40 steps, 1 channel
                "layers.num_layers=3",
                "layers.filters=[16,32]",
                "layers.kernel_sizes=[3,5]",
                "layers.augmentations=[none]",
                "child.epochs=8",
                "search.children=6",
                "controller.batch_size=3",
                "tracking.experiment=sequence_npz",
                *overrides,
            ],
        )
        tracker = MLflowTracker.from_config(cfg)
        tracker.connect()
        space = factory.make_space(cfg)
        print("inputs:", factory.load_task_data(cfg).spec.input_shape, "(steps, channels)")
        search = Search(
            factory.make_strategy(cfg, space),
            factory.make_executor(cfg),
            Budget(children=cfg.search.children),
            seed=cfg.seed,
            observers=[tracker, ProgressBar(cfg.search.children)],
        )
        with tracker:
            result = search.run()
    best = result.best
    print(f"best child {best.number}: val_accuracy {best.reward:.4f}")
    print("decisions:", dict(best.architecture))
    return best.reward


if __name__ == "__main__":
    main()
