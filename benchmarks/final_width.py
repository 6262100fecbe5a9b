"""How wide to train a searched architecture: ``final.width_multiplier`` under a time budget.

Trains one architecture (a search summary's ``best_decisions``, as ``rlnas search --summary``
writes it) at each width multiplier, each for the same wall-clock budget the way ``rlnas
final`` trains (the config's ``final`` section: augmentation, label smoothing, schedule,
epochs cap; the epochs planned again after each one to fit the budget), on the training
split only, and scores each on the validation split (one view, and the views of
``final.test_time_flip``/``shift``). The test split is not read: this chooses a setting.
Widths run one after the other, so give them the machine alone::

    python benchmarks/final_width.py configs/fashion_mnist_shared.yaml search.json \\
        --budget 600 --widths 1 1.5 2
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", help="the search's config (its task and final sections)")
    parser.add_argument("summary", help="a search summary JSON with best_decisions")
    parser.add_argument("--budget", type=float, default=600, help="seconds per width")
    parser.add_argument("--widths", type=float, nargs="+", default=[1.0, 1.5, 2.0])
    args = parser.parse_args()

    from rlnas.config import load_config
    from rlnas.ensemble import view_average
    from rlnas.factory import make_space
    from rlnas.final import accuracy, final_blueprint, final_data, predict, train_final
    from rlnas.tasks import load_splits

    cfg = load_config(args.config)
    f = cfg.final
    task = load_splits(dataclasses.replace(cfg.task, train_subset=None))
    data = final_data(task, f, seed=cfg.seed)  # the training split only, validation apart:
    data = dataclasses.replace(
        data, x_fit=task.x_train, y_fit=task.y_train, x_holdout=task.x_val, y_holdout=task.y_val
    )
    space = make_space(cfg, data.spec)
    decisions = json.loads(Path(args.summary).read_text())["best_decisions"]
    views = f.test_time_flip or f.test_time_shift
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print(
        f"{len(data.y_fit)} training, {len(data.y_holdout)} validation examples; budget "
        f"{args.budget:g} s per width, at most {f.epochs} epochs"
    )
    print("width  params  epochs  s/epoch  train acc  val acc  val acc (views)")
    for width in args.widths:
        blueprint = final_blueprint(
            space, decisions, dataclasses.replace(f, width_multiplier=width)
        )
        start = time.time()
        model, curves = train_final(
            blueprint, data, epochs=f.epochs, schedule=f.schedule, seed=cfg.seed,
            budget_seconds=args.budget, label_smoothing=f.label_smoothing,
        )  # fmt: skip
        seconds = time.time() - start
        epochs = len(curves["loss"])
        one = accuracy(predict(model, data.x_holdout), data.y_holdout)
        many = one
        if views:
            averaged = view_average(model, flip=f.test_time_flip, shift=f.test_time_shift)
            many = accuracy(predict(averaged, data.x_holdout), data.y_holdout)
        print(
            f"{width:5g}  {model.count_params():6d}  {epochs:6d}  {seconds / epochs:7.1f}  "
            f"{curves['accuracy'][-1]:9.4f}  {one:7.4f}  {many:15.4f}",
            flush=True,
        )
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
