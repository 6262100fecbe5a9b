"""Search your own ``.npz`` data, starting from a controller of the zoo.

    .venv/bin/python examples/zoo_on_npz.py                     # synthetic 8x8 digits
    .venv/bin/python examples/zoo_on_npz.py my_data.npz --children 10

The ``.npz`` file holds arrays ``x`` (images ``(N, H, W, C)``, sequences ``(N, L, C)`` or flat
features ``(N, F)``) and ``y`` (integer labels); without one, scikit-learn's digits are saved
as one in a temporary folder. The search uses the ``layers`` space and REINFORCE, its
controller starting from the saved ``controllers/mnist1d-layers`` (``controller.from``): the
decisions the two spaces share start with what it learnt on MNIST-1D. When that folder is
missing or cannot be used, the search starts cold and says why. The best child is printed;
every child is in MLflow (``rlnas ui``).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from rlnas import zoo
from rlnas.commands.search import prepare
from rlnas.config import load_config
from rlnas.errors import ControllerError

ZOO = Path("controllers/mnist1d-layers")
# the layers space of configs/mnist1d.yaml, so that its decisions match the zoo controller's
LAYERS = [
    "layers.num_layers=4",
    "layers.operations=[conv, sepconv, maxpool, identity]",
    "layers.filters=[32, 64, 128]",
    "layers.kernel_sizes=[3, 5]",
    "layers.activations=[relu, swish, gelu]",
]


def digits_npz(folder: Path) -> Path:
    """scikit-learn's 8x8 digits as an ``.npz`` of images ``(N, 8, 8, 1)`` and labels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    path = folder / "digits.npz"
    x = (digits.images[..., None] / 16.0).astype(np.float32)
    np.savez(path, x=x, y=digits.target.astype(np.int64))
    return path


def search(data: Path, children: int) -> None:
    overrides = [
        "task.name=npz",
        f"task.path={data}",
        "space=layers",
        *LAYERS,
        "strategy=reinforce",
        "controller.batch_size=2",
        "child.epochs=1",
        f"search.children={children}",
        "tracking.experiment=zoo-on-npz",
    ]
    warm = []
    if ZOO.is_dir():
        hidden = zoo.read_card(ZOO).controller["hidden_size"]  # the saved policy's size
        warm = [f"controller.from={ZOO}", f"controller.hidden_size={hidden}"]
    else:
        print(f"No saved controller at {ZOO}: the controller starts cold.")
    try:
        prepared = prepare(load_config(None, overrides + warm))  # checks everything first
    except ControllerError as exc:
        if not warm:
            raise
        print(f"{ZOO} cannot start this search: {str(exc).rstrip('.')}. Starting cold.")
        prepared = prepare(load_config(None, overrides))
    with prepared.tracker:  # should the search raise, its MLflow run ends FAILED
        result = prepared.search.run()
    if prepared.progress is not None:
        prepared.progress.close()
    best = result.best
    if best is None:
        print("No child completed.")
        return
    print(f"Best child {best.number}: val_accuracy {best.reward:.4f}")
    for name, value in best.architecture.items():
        print(f"  {name:<28} {value}")
    print(f"MLflow run {prepared.tracker.run_id} in {prepared.tracker.tracking_uri}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", help=".npz file with arrays x and y")
    parser.add_argument("--children", type=int, default=6, help="children to train")
    args = parser.parse_args()
    if args.data:
        search(Path(args.data), args.children)
        return
    with tempfile.TemporaryDirectory() as tmp:
        search(digits_npz(Path(tmp)), args.children)


if __name__ == "__main__":
    main()
