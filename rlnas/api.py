"""The Python entry point: ``rlnas.search(build, x, y)``, as ``model.fit`` reads.

::

    import rlnas

    def build(d, spec):                       # your own space, define-by-run
        ...
        return keras.Model(inputs, outputs)

    result = rlnas.search(build, x, y, validation_data=(x_val, y_val), epochs=2, children=20)
    result.best.reward, result.trials          # a pandas DataFrame of every child
    model = result.best_model()               # the best child with its trained weights

It goes the way ``rlnas search --config`` goes (:mod:`rlnas.commands.session`): the
arguments become a :class:`~rlnas.config.Config` (on top of ``config``, a YAML path, a dict
or a Config), every part is checked before the MLflow run exists, and the search is logged
to MLflow the same way. Arrays (and ``tf.data`` datasets or Keras ``PyDataset`` objects,
read into memory once: small data only) are written to an ``.npz`` file beside the tracking
store, so worker processes, ``rlnas resume`` and ``rlnas final`` read them as the CLI
would. A function, Space, Strategy class or training loop given as an object is named by
its import path in the config (one defined in the script you run, by the script's file:
``/path/script.py:build``, so that ``rlnas final`` and worker processes load it from
there); one that cannot be imported by that path (a lambda, a closure) works in this
process only (``executor="inline"``).
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from rlnas import registry
from rlnas.api_result import SearchResult
from rlnas.config import Config, from_dict, to_dict
from rlnas.config_yaml import read_mapping
from rlnas.errors import ConfigError

__all__ = ["SearchResult", "export", "final", "search"]


# Longer than our 60-line guide only through its keyword list and docstring (the body is
# under 40 lines): every setting a Keras user passes to it is a named, documented argument.
def search(
    space: Any = None,
    x: Any = None,
    y: Any = None,
    *,
    validation_data: tuple[Any, Any] | None = None,
    test_data: tuple[Any, Any] | None = None,
    task: str | Mapping[str, Any] | None = None,
    epochs: int | None = None,
    children: int | None = None,
    strategy: str | type | None = None,
    workers: int | None = None,
    executor: str | None = None,
    tracking_uri: str | None = None,
    experiment: str | None = None,
    seed: int | None = None,
    config: str | os.PathLike | Mapping[str, Any] | Config | None = None,
    train: Callable[..., float] | str | None = None,
    keep_weights: bool = True,
    progress: bool = True,
    **overrides: Any,
) -> SearchResult:
    """Search ``space`` on ``x``/``y`` (or ``task``); the :class:`SearchResult`.

    ``space``: a ``build(d, spec)`` function, a :class:`~rlnas.space.Space`, a built-in name
    (``layers``, ``nasnet``) or an import path; ``None``: the config's (default ``layers``).
    ``x``, ``y``: arrays (or a ``tf.data`` dataset or ``PyDataset`` of pairs as ``x``).
    ``validation_data``: the split that rewards children; ``None``: a ``task.
    validation_fraction`` of ``x``. ``test_data``: the split only ``rlnas final`` scores;
    ``None``: a ``task.test_fraction`` of ``x`` held out, never trained on in the search.
    ``task`` (instead of ``x``): a task name or settings, merged into the config's task
    section (the keys given override, the others are kept).
    ``strategy``: reinforce, random, rea, a Strategy subclass or an import path. ``train``:
    your own ``train(model, data, d)`` returning the reward. Arguments left at ``None`` keep
    the config's value (defaults: 1 epoch, 10 children, reinforce, inline, seed 0).
    ``overrides``: any other setting, ``section__key=value`` (``controller__batch_size=4``)
    or a whole section as a dict. ``keep_weights``: keep the best children's weights, so
    ``best_model()`` needs no retraining.
    """
    data = _base(config)
    if space is not None:  # else the config's (default: layers)
        data["space"] = _named(space, "space")
    if strategy is not None:
        data["strategy"] = _named(strategy, "strategy")
    child = data.setdefault("child", {})
    child["keep_weights"] = keep_weights
    if train is not None:
        child["train"] = _named(train, "train")
    for value, section, key in (
        (epochs, "child", "epochs"),
        (children, "search", "children"),
        (executor, "executor", "kind"),
        (workers, "executor", "workers"),
        (tracking_uri, "tracking", "uri"),
        (experiment, "tracking", "experiment"),
    ):
        if value is not None:
            data.setdefault(section, {})[key] = value
    if seed is not None:
        data["seed"] = seed
    _apply(data, overrides)
    if x is not None:
        data["task"] = _array_task(data, x, y, validation_data, test_data)
    elif task is not None:
        given = {"name": task} if isinstance(task, str) else _plain(task)
        data["task"] = {**(data.get("task") or {}), **given}
    elif validation_data is not None or test_data is not None or y is not None:
        raise ConfigError("rlnas.search: y, validation_data and test_data need x; got x=None.")
    cfg = from_dict(Config, data)
    from rlnas.commands import session  # lazy: its imports start MLflow

    prepared = session.prepare(cfg, progress=progress)
    result, summary = session.run_search(prepared)
    if result.stopped == "interrupted":
        raise KeyboardInterrupt(
            f"search interrupted; continue it with rlnas resume {summary['run_id']}"
        )
    space = prepared.search.strategy.space
    if cfg.shared.enabled:  # the retrained children's: train/* lists uncut
        from rlnas.factory import make_space

        space = make_space(cfg)
    return SearchResult(cfg, result, summary, space)


def final(run_id: str, *, tracking_uri: str | None = None, **overrides: Any) -> dict[str, Any]:
    """``rlnas final RUN_ID``: retrain the search's best architectures, test them, log and
    register them; the command's summary. ``overrides``: ``final`` settings
    (``epochs=5, top_k=1``) or dotted ``section__key=value``."""
    from rlnas import final_runs  # lazy: MLflow

    items = [f"{_dotted(k, 'final')}={_yaml(v)}" for k, v in overrides.items()]
    plan = final_runs.prepare(run_id, items, tracking_uri)
    return final_runs.execute(plan)


def export(
    run_id: str,
    output: str | os.PathLike | None = None,
    *,
    quantize: str | None = None,
    tracking_uri: str | None = None,
) -> dict[str, Any]:
    """``rlnas export RUN_ID --tflite``: a final model as a TensorFlow Lite file; its summary."""
    from rlnas.commands.export import export as export_model
    from rlnas.tracking.models import final_model_run, search_config
    from rlnas.tracking.store import open_store

    uri, client = open_store(tracking_uri)
    run, record = final_model_run(client, run_id, uri)
    cfg = search_config(record, [])
    kind = quantize or "float32"
    path = Path(output or f"{run.info.run_name}-{run.info.run_id[:8]}-{kind}.tflite")
    return export_model(client, run, cfg, quantize, path)


# -- arguments into config data ---------------------------------------------------------
def _base(config: Any) -> dict[str, Any]:
    if config is None:
        return {}
    if isinstance(config, Config):
        return to_dict(config)
    if isinstance(config, Mapping):
        return _plain(config)
    return read_mapping(config)


def _plain(value: Any) -> Any:
    """A deep copy of nested mappings as dicts (lists kept)."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _named(obj: Any, field: str) -> str:
    """A name or import path as it is; an object by its import path, provided to the
    registry in case that path does not import it (a lambda, a closure, ``__main__``)."""
    if isinstance(obj, str):
        return obj
    if not callable(obj) and not hasattr(type(obj), "declare"):
        raise ConfigError(
            f"rlnas.search: `{field}` must be a name, an import path or a function/class, "
            f"got {obj!r}."
        )
    target = obj if callable(obj) else type(obj)
    path = registry.path_of(target).replace("<locals>.", "locals_").replace("<lambda>", "lambda")
    script = getattr(sys.modules.get("__main__"), "__file__", None)
    if path.startswith("__main__:") and path == registry.path_of(target) and script:
        path = f"{os.path.abspath(script)}:{target.__qualname__}"  # a script's own function
    if not callable(obj):  # a Space object: the class names it, the object is used
        path = path + "_instance"
    registry.provide(path, obj)
    return path


def _apply(data: dict[str, Any], overrides: Mapping[str, Any]) -> None:
    for key, value in overrides.items():
        if "__" in key:
            *sections, last = key.split("__")
            node = data
            for s in sections:
                node = node.setdefault(s, {})
            node[last] = value
        elif isinstance(value, Mapping):
            data.setdefault(key, {}).update(_plain(value))
        else:
            data[key] = value


def _dotted(key: str, section: str) -> str:
    return key.replace("__", ".") if "__" in key else f"{section}.{key}"


def _yaml(value: Any) -> str:
    import json

    return json.dumps(value)


def _array_task(data: dict[str, Any], x: Any, y: Any, validation: Any, test: Any) -> dict[str, Any]:
    """The task of in-memory arrays: an npz file beside the tracking store (by content)."""
    from rlnas.checkpoint import state_root
    from rlnas.tracking_config import TrackingConfig

    x, y = _arrays(x, y, "x")
    arrays = {"x": x, "y": y}
    for given, key, what in ((validation, "val", "validation_data"), (test, "test", "test_data")):
        if given is None:
            continue
        if isinstance(given, (tuple, list)) and len(given) == 2:
            arrays[f"x_{key}"], arrays[f"y_{key}"] = _arrays(given[0], given[1], what)
        else:
            arrays[f"x_{key}"], arrays[f"y_{key}"] = _arrays(given, None, what)
    digest = hashlib.sha256()
    for key in sorted(arrays):
        digest.update(
            key.encode() + str(arrays[key].shape).encode() + arrays[key].dtype.str.encode()
        )
        digest.update(np.ascontiguousarray(arrays[key]).tobytes())
    tracking = from_dict(TrackingConfig, data.get("tracking", {}), "tracking")
    folder = state_root(tracking.resolved_uri()).parent / "data"
    path = folder / f"arrays-{digest.hexdigest()[:16]}.npz"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial.npz")
        np.savez(partial, **arrays)
        partial.replace(path)
    task = dict(data.get("task") or {})
    task.pop("dataset", None)
    task.update(name="npz", path=str(path))
    return task


def _arrays(x: Any, y: Any, what: str) -> tuple[np.ndarray, np.ndarray]:
    """NumPy features and labels from arrays, a ``tf.data`` dataset or a Keras
    ``PyDataset`` (of (features, labels) pairs, batched or not)."""
    if y is not None:
        return np.asarray(x), np.asarray(y)
    if hasattr(x, "as_numpy_iterator"):
        pairs = list(x.as_numpy_iterator())
    elif hasattr(x, "__getitem__") and hasattr(x, "__len__") and not isinstance(x, np.ndarray):
        pairs = [x[i] for i in range(len(x))]
    else:
        raise ConfigError(
            f"rlnas.search: {what} without labels must be a tf.data.Dataset or PyDataset of "
            f"(features, labels) pairs; got {type(x).__name__}."
        )
    if not pairs or len(pairs[0]) < 2:
        raise ConfigError(f"rlnas.search: {what} yields no (features, labels) pairs.")
    xs = [np.asarray(p[0]) for p in pairs]
    ys = [np.asarray(p[1]) for p in pairs]
    join = np.stack if ys[0].ndim == 0 else np.concatenate  # examples, or batches of them
    return join(xs), join(ys)
