"""Milliseconds per shared training step and per validation step of the `layers`
super-network, this checkout's against another commit's, side by side in one process.

Both super-networks are built for the config's space and task shape and run the same
uniformly sampled paths on the same random batch (the weights' values do not change the
cost); rounds alternate between the two so that the machine's load falls on both alike, and
the medians over rounds are printed with their ratio. ``--against REV`` loads
``rlnas/keras_build/supernet.py`` as it was at ``REV`` (``git show``) beside today's::

    python benchmarks/supernet_step.py configs/fashion_mnist_shared.yaml --against 29f3e50
    python benchmarks/supernet_step.py configs/mnist1d_shared.yaml --against 29f3e50
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODULE = "rlnas/keras_build/supernet.py"


def _module_at(rev: str):
    """``supernet.py`` as committed at ``rev``, imported under another name."""
    shown = subprocess.run(
        ["git", "show", f"{rev}:{MODULE}"], cwd=ROOT, capture_output=True, text=True
    )
    if shown.returncode:
        raise SystemExit(f"--against: {rev!r} has no {MODULE} (git: {shown.stderr.strip()})")
    source = shown.stdout
    with tempfile.TemporaryDirectory() as folder:  # the file is read once, at import
        path = Path(folder) / f"supernet_{rev}.py"
        path.write_text(source)
        found = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(found)
        found.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", type=Path)
    parser.add_argument("--against", required=True, help="git revision to compare with")
    parser.add_argument("--paths", type=int, default=40, help="uniform paths per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    against = _module_at(args.against)  # a bad revision fails before any work

    import keras
    import numpy as np

    from rlnas.config import load_config
    from rlnas.factory import load_task_data, make_search_space
    from rlnas.keras_build import supernet
    from rlnas.strategies.random_search import RandomSearch

    cfg = load_config(args.config)
    spec = load_task_data(cfg).spec
    space = make_search_space(cfg)  # the shared phase's space, as a search builds it
    sampler = RandomSearch(space, seed=0)
    blueprints = [space.blueprint(sampler.ask().architecture) for _ in range(args.paths)]
    batch = cfg.shared.batch_size
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch,) + tuple(spec.input_shape)).astype("float32")
    y = rng.integers(0, spec.num_classes, batch).astype("int32")

    print(f"load average before: {os.getloadavg()}")
    nets = {}
    for name, module in ((args.against, against), ("this checkout", supernet)):
        keras.utils.set_random_seed(0)
        net = module.SuperNet(space.cfg, spec, cfg.shared)
        paths = [net.path(b) for b in blueprints]
        net.train_step(x, y, *paths[0])  # trace both steps before timing
        net.eval_step(x, y, *paths[0])
        nets[name] = (net, paths)
    times: dict[str, dict[str, list[float]]] = {n: {"train": [], "eval": []} for n in nets}
    for _ in range(args.rounds):
        for name, (net, paths) in nets.items():
            for step, fn in (("train", net.train_step), ("eval", net.eval_step)):
                start = time.perf_counter()
                for path in paths:
                    fn(x, y, *path)
                times[name][step].append(1000 * (time.perf_counter() - start) / len(paths))
    print(f"load average after: {os.getloadavg()}")
    print(f"{args.config.name}: {args.paths} uniform paths x {args.rounds} rounds, batch {batch}")
    print("| super-network | train step (ms, median) | validation step (ms, median) |")
    print("|---|---:|---:|")
    med = {n: {s: statistics.median(v) for s, v in d.items()} for n, d in times.items()}
    for name in nets:
        print(f"| {name} | {med[name]['train']:.1f} | {med[name]['eval']:.1f} |")
    old, new = med[args.against], med["this checkout"]
    print(
        f"ratio {args.against} / this checkout: train {old['train'] / new['train']:.2f}x, "
        f"validation {old['eval'] / new['eval']:.2f}x"
    )


if __name__ == "__main__":
    sys.exit(main())
