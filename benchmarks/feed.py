"""Keras's own feeding of NumPy arrays against ``rlnas.keras_build.batches``, side by side.

The same network (the first architecture a seeded random search of the config's space
asks for) is trained from the same initial weights for ``--epochs`` epochs on ``--images``
training images (or all of the training split, if smaller), then predicts the validation
split, in two ways per round:

* **keras**: ``model.fit(x, y, batch_size=..., shuffle=True)`` and ``model.predict(x)``:
  Keras builds an autotuned tf.data pipeline and a new iterator for every epoch and call;
* **rlnas**: ``model.fit(batches(x, y, ...))`` and ``model.predict(batches(x, ...))``:
  the index-gathering pipeline with autotuning off that rlnas's children and final
  trainings use.

For each epoch it records the wall time and the first step's time (where a stalled
iterator hand-over shows), and for each fit the wait between the last epoch's end and the
return of ``fit``. The order of the two alternates from round to round; the figures are
medians over rounds, and the ratio is keras's median over rlnas's. Threads as the final
training has them (TensorFlow's defaults for the host) unless ``--threads`` says otherwise.

    .venv/bin/python benchmarks/feed.py configs/fashion_mnist.yaml --epochs 4 --rounds 2
    .venv/bin/python benchmarks/feed.py --search-run RUN_ID --images 30000 --epochs 3

With ``--search-run`` the network is the search's best and the images those its final
training fits (training + validation), and nothing is predicted unless the search's config
holds examples out.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time


def network(config: str, seed: int):
    """The config's data and the blueprint of the first architecture a random search asks."""
    from rlnas import factory
    from rlnas.config import load_config

    cfg = load_config(config, ["strategy=random", f"seed={seed}"])
    data = factory.load_task_data(cfg)
    space = factory.make_space(cfg)
    sample = factory.make_strategy(cfg, space).ask()
    return data.x_train, data.y_train, data.x_val, data.spec, space.blueprint(sample.architecture)


def best_of(run_id: str, uri: str | None):
    """A search's best architecture and the data its final training fits (as `rlnas final`)."""
    from rlnas.final_runs import prepare

    plan = prepare(run_id, [], uri)
    _, _, blueprint = plan.members[0]
    d = plan.data
    return d.x_fit, d.y_fit, d.x_holdout, d.spec, blueprint  # no holdout: None


class Clock:
    """Times of epoch starts and ends and of training steps' ends, as a Keras callback."""

    def __init__(self) -> None:
        import keras

        self.events: list[tuple[str, float]] = []
        mark = self.events.append
        self.callback = keras.callbacks.LambdaCallback(
            on_epoch_begin=lambda epoch, logs: mark(("begin", time.perf_counter())),
            on_train_batch_end=lambda batch, logs: mark(("step", time.perf_counter())),
            on_epoch_end=lambda epoch, logs: mark(("end", time.perf_counter())),
        )

    def epochs(self) -> list[tuple[float, float]]:
        """(epoch seconds, first step seconds) per epoch."""
        out, begin, first = [], 0.0, None
        for kind, t in self.events:
            if kind == "begin":
                begin, first = t, None
            elif kind == "step" and first is None:
                first = t - begin
            elif kind == "end":
                out.append((t - begin, first or 0.0))
        return out


def one_pass(way: str, net, images: int, epochs: int, seed: int) -> dict:
    import keras

    from rlnas.keras_build import batches, build_model, compile_model

    x_all, y_all, x_val, spec, blueprint = net
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    model = build_model(blueprint, spec)
    compile_model(model, blueprint.training)
    x, y = x_all[:images], y_all[:images]
    size = blueprint.training.batch_size
    model.fit(x[: 4 * size], y[: 4 * size], batch_size=size, verbose=0)  # trace, untimed
    model.fit(batches(x[: 4 * size], y[: 4 * size], batch_size=size), shuffle=False, verbose=0)
    clock = Clock()
    start = time.perf_counter()
    if way == "keras":
        model.fit(x, y, batch_size=size, epochs=epochs, shuffle=True, verbose=0,
                  callbacks=[clock.callback])  # fmt: skip
    else:
        feed = batches(x, y, batch_size=size, shuffle=True, seed=seed)
        model.fit(feed, epochs=epochs, shuffle=False, verbose=0, callbacks=[clock.callback])
    returned = time.perf_counter()
    last_end = max(t for kind, t in clock.events if kind == "end")
    if x_val is None:
        pass  # nothing held out to predict
    elif way == "keras":
        model.predict(x_val, batch_size=512, verbose=0)
    else:
        model.predict(batches(x_val, batch_size=512), verbose=0)
    predicted = time.perf_counter()
    per_epoch = clock.epochs()
    return {
        "way": way,
        "images": len(x),
        "fit_seconds": returned - start,
        "epoch_seconds": [round(e, 2) for e, _ in per_epoch],
        "first_step_seconds": [round(f, 2) for _, f in per_epoch],
        "return_wait": returned - last_end,
        "predict_seconds": predicted - returned,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("config", nargs="?", help="a search config (its first random architecture)")
    p.add_argument("--search-run", help="instead: this search's best architecture and final data")
    p.add_argument("--uri", help="the tracking store of --search-run")
    p.add_argument("--images", type=int, default=6400)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="intra-op threads (0: TensorFlow's)")
    args = p.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    if args.search_run:
        net = best_of(args.search_run, args.uri)
    elif args.config:
        net = network(args.config, args.seed)
    else:
        p.error("give a CONFIG or --search-run RUN_ID")
    rows: dict[str, list[dict]] = {"keras": [], "rlnas": []}
    for r in range(args.rounds):
        order = ("keras", "rlnas") if r % 2 == 0 else ("rlnas", "keras")
        for way in order:
            row = one_pass(way, net, args.images, args.epochs, args.seed)
            rows[way].append(row)
            print(json.dumps({"round": r, **row}), flush=True)

    def median(way: str, key: str) -> float:
        values = [row[key] if isinstance(row[key], list) else [row[key]] for row in rows[way]]
        return statistics.median(v for row in values for v in row)

    images = rows["keras"][0]["images"]  # at most --images: the training split may be smaller
    per = 60000 / images
    print(f"\n{images} images x {args.epochs} epochs, {args.rounds} rounds; medians:")
    print(f"{'':28}{'keras':>10}{'rlnas':>10}{'keras/rlnas':>13}")
    for key, label, scale in (
        ("fit_seconds", "fit (s)", 1.0),
        ("epoch_seconds", "epoch, per 60k images (s)", per),
        ("first_step_seconds", "first step of an epoch (s)", 1.0),
        ("return_wait", "last epoch end -> return (s)", 1.0),
        ("predict_seconds", "predict validation (s)", 1.0),
    ):
        k, n = median("keras", key) * scale, median("rlnas", key) * scale
        ratio = f"{k / n:13.2f}" if n >= 0.01 else f"{'-':>13}"
        print(f"{label:28}{k:10.2f}{n:10.2f}{ratio}")
    stalls = {
        w: sum(f > 2.0 for row in rows[w] for f in row["first_step_seconds"][1:]) for w in rows
    }
    later = args.rounds * (args.epochs - 1)
    print(f"epochs after the first whose first step took over 2 s: keras {stalls['keras']} "
          f"of {later}, rlnas {stalls['rlnas']} of {later}")  # fmt: skip


if __name__ == "__main__":
    main()
