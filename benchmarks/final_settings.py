"""Which final-training settings to use: ``final.*`` variants compared under a time budget.

Trains one architecture (a search summary's ``best_decisions``, as ``rlnas search --summary``
writes it) once per variant, each for the same wall-clock budget the way ``rlnas final``
trains (the config's ``final`` section, with the variant's fields replaced: augmentation,
optimizer, learning rate, width, label smoothing, schedule, the epochs planned again after
each one to fit the budget), and scores each on held-out examples: the validation split,
plus (``--holdout N``) a stratified sample of the training split held out with it, so that
N examples tell settings apart (3,000 validation images have a standard error of about 0.45
points at 93%, 10,000 about 0.25). The test split is not read: this chooses settings.
Variants run one after the other, so give them the machine alone::

    python benchmarks/final_settings.py configs/fashion_mnist_shared.yaml search.json \\
        --budget 600 --holdout 10000 --try "" --try "width_multiplier=1.5" \\
        --try "optimizer=sgd learning_rate=0.05 weight_decay=0.0005"

A variant is ``field=value`` pairs of the ``final`` section, space-separated ("" is the
config as it is).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path


def variant(text: str) -> dict[str, str]:
    """``"a=1 b=x"`` -> ``{"final.a": "1", "final.b": "x"}`` (``--set`` overrides)."""
    pairs = {}
    for item in text.split():
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise argparse.ArgumentTypeError(f"expected field=value pairs, got {item!r}")
        pairs[f"final.{name}"] = value
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", help="the search's config (its task and final sections)")
    parser.add_argument("summary", help="a search summary JSON with best_decisions")
    parser.add_argument("--budget", type=float, default=600, help="seconds per variant")
    parser.add_argument(
        "--try", dest="variants", type=variant, action="append", default=None,
        help='final fields of one variant, "field=value ..." (repeat; "": the config)',
    )  # fmt: skip
    parser.add_argument(
        "--holdout", type=int, default=0,
        help="held-out examples: the validation split plus training examples up to this many",
    )  # fmt: skip
    args = parser.parse_args()
    variants = args.variants or [{}]

    import numpy as np

    from rlnas.config import load_config
    from rlnas.ensemble import view_average
    from rlnas.factory import make_space
    from rlnas.final import accuracy, final_blueprint, final_data, predict, train_final
    from rlnas.tasks import load_splits, stratified_take

    base = load_config(args.config)
    configs = [
        load_config(args.config, overrides=[f"{key}={value}" for key, value in pairs.items()])
        for pairs in variants
    ]
    task = load_splits(dataclasses.replace(base.task, train_subset=None))
    x_fit, y_fit, x_out, y_out = task.x_train, task.y_train, task.x_val, task.y_val
    extra = args.holdout - len(y_out)
    if extra > 0:  # hold out more of the training split, stratified
        take, keep = stratified_take(y_fit, extra, np.random.default_rng(base.seed))
        x_out = np.concatenate([x_out, x_fit[take]])
        y_out = np.concatenate([y_out, y_fit[take]])
        x_fit, y_fit = x_fit[keep], y_fit[keep]
    data = final_data(task, base.final, seed=base.seed)
    data = dataclasses.replace(data, x_fit=x_fit, y_fit=y_fit, x_holdout=x_out, y_holdout=y_out)
    space = make_space(base, data.spec)
    decisions = json.loads(Path(args.summary).read_text())["best_decisions"]
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print(
        f"{len(y_fit)} training, {len(y_out)} held-out examples; budget {args.budget:g} s "
        f"per variant"
    )
    print("params  epochs  s/epoch  train acc  held-out  held-out (views)  variant")
    for pairs, cfg in zip(variants, configs):
        f = cfg.final
        blueprint = final_blueprint(space, decisions, f)
        start = time.time()
        model, curves = train_final(
            blueprint, data, epochs=f.epochs, schedule=f.schedule, seed=cfg.seed,
            budget_seconds=args.budget, label_smoothing=f.label_smoothing,
        )  # fmt: skip
        seconds = time.time() - start
        epochs = len(curves["loss"])
        one = accuracy(predict(model, x_out), y_out)
        many = one
        if f.test_time_flip or f.test_time_shift:
            averaged = view_average(model, flip=f.test_time_flip, shift=f.test_time_shift)
            many = accuracy(predict(averaged, x_out), y_out)
        label = " ".join(f"{k.removeprefix('final.')}={v}" for k, v in pairs.items())
        print(
            f"{model.count_params():6d}  {epochs:6d}  {seconds / epochs:7.1f}  "
            f"{curves['accuracy'][-1]:9.4f}  {one:8.4f}  {many:16.4f}  {label or '(config)'}",
            flush=True,
        )
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
