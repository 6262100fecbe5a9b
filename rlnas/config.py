"""Typed, strict configuration: YAML in, frozen dataclasses out.

Each section is a frozen dataclass that lives beside the component it configures (the
``task`` section in :mod:`rlnas.task_config`, ``child`` in :mod:`rlnas.evaluators.config`,
``controller`` in :mod:`rlnas.strategies.reinforce`, ...) and states the rule of each field
once, in its type (:mod:`rlnas.rules`). This module holds the root :class:`Config`, which
also refuses pairings of sections that cannot work, and the loader, which only assembles:
it reads the file (:mod:`rlnas.config_yaml`), applies ``--set`` overrides, checks types and
names (an unknown key names the valid key meant, as in "Did you mean `child.epochs`?"), and
builds the sections. The resolved config is logged with every run, so a run can be
replayed::

    cfg = load_config("configs/demo.yaml", ["child.epochs=2", "controller.from=controllers/x"])

Importing this module loads neither TensorFlow, Keras nor MLflow. Every section's class is
also importable from here.
"""

from __future__ import annotations

import dataclasses
import math
import os
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import yaml

from rlnas.config_yaml import DuplicateKey, parse_value, read_mapping
from rlnas.errors import MAY_BE_EMPTY, ConfigError, FieldError, did_you_mean, require
from rlnas.evaluators.config import ChildConfig
from rlnas.evaluators.shared_config import SharedConfig, check_shared
from rlnas.executors.config import ExecutorConfig
from rlnas.final_config import FinalConfig
from rlnas.rules import NameOrPath, check_fields
from rlnas.search_config import SearchConfig
from rlnas.spaces.layers import LayersConfig
from rlnas.spaces.nasnet import NasnetConfig
from rlnas.strategies.evolution import EvolutionConfig
from rlnas.strategies.reinforce import ReinforceConfig
from rlnas.task_config import NB201_DATASETS, SEED_RANGE, TASKS, TaskConfig
from rlnas.tracking_config import TrackingConfig

__all__ = [
    "NB201_DATASETS",
    "TASKS",
    "ChildConfig",
    "Config",
    "EvolutionConfig",
    "ExecutorConfig",
    "FinalConfig",
    "LayersConfig",
    "NasnetConfig",
    "ReinforceConfig",
    "SearchConfig",
    "TaskConfig",
    "TrackingConfig",
    "apply_override",
    "dump_yaml",
    "from_dict",
    "load_config",
    "to_dict",
]

SPACES = ("layers", "nb201", "nasnet")
STRATEGIES = ("reinforce", "random", "rea", "nsga")
PATH_KEY = "path_key"
"""Metadata of a field that holds an import path and may also be written as a mapping with
that one key (``space: {build: my_models:build}``)."""


@dataclass(frozen=True)
class Config:
    """A whole search, as written in a YAML file."""

    seed: Annotated[int, SEED_RANGE] = 0
    """Seed of the strategy and of the children (split seeds are in ``task``)."""
    task: TaskConfig = field(default_factory=TaskConfig)
    space: Annotated[str, NameOrPath(SPACES, "function")] = field(
        default="layers", metadata={PATH_KEY: "build"}
    )
    """Search space: layers, nb201 or nasnet (its settings are in the section of that name),
    or your own: the import path of a ``build(d, spec) -> keras.Model`` function, also
    written ``space: {build: package.module:function}``."""
    layers: LayersConfig = field(default_factory=LayersConfig)
    nasnet: NasnetConfig = field(default_factory=NasnetConfig)
    strategy: Annotated[str, NameOrPath(STRATEGIES, "Class")] = "reinforce"
    """reinforce (the LSTM controller), random, rea (regularized evolution), nsga
    (multi-objective evolution; needs ``search.objectives``; the ``evolution`` section when it
    is set, else a population of 20 and tournaments of 3), or the import path of your own
    Strategy subclass, made as ``Class(space, seed=..., unique=...)``."""
    controller: ReinforceConfig = field(default_factory=ReinforceConfig)
    evolution: EvolutionConfig = field(default_factory=EvolutionConfig)
    child: ChildConfig = field(default_factory=ChildConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    final: FinalConfig = field(default_factory=FinalConfig)
    """Final training of the best architectures (``rlnas final``)."""
    shared: SharedConfig = field(default_factory=SharedConfig)
    """Weight sharing (ENAS): children rewarded as paths through one super-network."""

    def __post_init__(self) -> None:
        check_fields(self)
        check_shared(self)
        table = self.task.name == "nb201"
        require(
            not table or self.space == "nb201",
            "space",
            self.space,
            "nb201 for task nb201 (a table of nb201 cells)",
        )
        require(
            table or self.space != "nb201",
            "space",
            self.space,
            f"layers or nasnet for task {self.task.name!r} (the nb201 space only looks up "
            "the NAS-Bench-201 table: task nb201)",
        )
        check_objectives(self)


TABLE_OBJECTIVES = ("reward", "test_accuracy", "nb201_index", "cost_seconds")
"""Metrics an nb201 look-up has besides the HW-NAS-Bench ones (``hw_*``)."""


def check_objectives(cfg: Config) -> None:
    """Refuse objectives the task's evaluator cannot produce, and nsga without objectives."""
    objectives = cfg.search.parsed_objectives
    require(
        cfg.strategy != "nsga" or bool(objectives),
        "strategy",
        cfg.strategy,
        "reinforce, random or rea for a single-objective search (nsga needs "
        "search.objectives, e.g. [accuracy, 'latency:pixel3'])",
    )
    require(
        cfg.controller.front_weight == 0 or len(objectives) >= 2,
        "controller.front_weight",
        cfg.controller.front_weight,
        "0 for a single-objective search (the Pareto front it replays needs two or more "
        "search.objectives)",
    )
    table = cfg.task.name == "nb201"
    for o in objectives:
        if o.device is not None and not table:
            raise ConfigError(
                f"`search.objectives`: {o.name!r} reads the HW-NAS-Bench table, which only task "
                f"nb201 has (task is {cfg.task.name!r}); use 'latency' (measured) instead."
            )
        if table and o.device is None and o.metric not in TABLE_OBJECTIVES:
            raise ConfigError(
                f"`search.objectives`: task nb201 looks cells up in a table and cannot give "
                f"{o.name!r}; use accuracy, 'latency:DEVICE' or 'energy:DEVICE' (HW-NAS-Bench)."
            )


# -- loading ------------------------------------------------------------------------------
_ALIASES = {"from": "from_"}  # YAML keys that are Python keywords

MEANT: dict[str, tuple[str, ...]] = {
    "lr": ("learning_rate", "learning_rates"),
    "learning_rate": ("learning_rates",),
    "lr_decay": ("schedule",),
    "wd": ("weight_decays",),
    "weight_decay": ("weight_decays",),
    "bs": ("batch_size", "batch_sizes"),
    "batch": ("batch_size", "batch_sizes"),
    "batch_size": ("batch_sizes",),
    "epoch": ("epochs",),
    "num_epochs": ("epochs",),
    "n_workers": ("workers",),
    "num_workers": ("workers",),
    "n_layers": ("num_layers",),
    "trials": ("children",),
    "num_children": ("children",),
}
"""Names users write for a setting, by meaning: tried before the closest spelling."""


def load_config(path: str | os.PathLike | None = None, overrides: Sequence[str] = ()) -> Config:
    """Read a YAML file (or start from the defaults), apply ``key=value`` overrides, check it."""
    data: dict[str, Any] = read_mapping(path) if path is not None else {}
    for item in overrides:
        apply_override(data, item)
    return from_dict(Config, data)


def apply_override(data: dict[str, Any], item: str) -> None:
    """Apply one ``section.key=value`` override (the value is parsed as YAML)."""
    if "=" not in item:
        raise ConfigError(f"--set: expected key=value, got {item!r}.")
    key, _, raw = item.partition("=")
    try:
        value = parse_value(raw)
    except DuplicateKey as exc:
        raise ConfigError(f"--set {key.strip()}: {exc}.") from None
    parts = key.strip().split(".")
    node = data
    for part in parts[:-1]:
        child = node.get(part)
        if child is None or not isinstance(child, dict):
            child = node[part] = {} if not isinstance(child, str) else {"name": child}
        node = child
    node[parts[-1]] = value


def _show(key: Any) -> str:
    """A key as a message shows it: plain when printable, else its repr (one line)."""
    plain = isinstance(key, str) and key.isprintable() and key.strip() == key and key
    return key if plain else repr(key)


def _suggest(key: Any, section: str, names: Sequence[str]) -> str:
    """The hint for an unknown key: the key meant (:data:`MEANT`), else the closest spelling."""
    full = [f"{section}.{n}" if section else n for n in names]
    for meant in MEANT.get(str(key).strip().lower(), ()):
        if meant in names:
            return f" Did you mean `{section + '.' if section else ''}{meant}`?"
    dotted = f"{section}.{_show(key)}" if section else _show(key)
    return did_you_mean(dotted, full)


def from_dict(cls: type, data: Mapping[str, Any], section: str = "") -> Any:
    """Build dataclass ``cls`` from ``data`` strictly (unknown keys and wrong types fail)."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"`{section}`: expected a mapping of settings, got {data!r}.")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    yaml_names = sorted(_yaml_name(n) for n in fields)
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        name = _ALIASES.get(key, key) if isinstance(key, str) else key
        dotted = f"{section}.{_show(key)}" if section else _show(key)
        if name not in fields:
            hint = _suggest(key, section, yaml_names)
            raise ConfigError(f"unknown config key `{dotted}`." + hint)
        path_key = fields[name].metadata.get(PATH_KEY)
        if path_key and isinstance(value, Mapping):
            value = _path_of(value, path_key, dotted)
        empty = isinstance(value, (list, tuple)) and not value
        if empty and fields[name].metadata.get(MAY_BE_EMPTY):
            kwargs[name] = ()  # a list that may be empty (choice lists may not)
            continue
        kwargs[name] = _convert(hints[name], value, dotted)
    try:
        return cls(**kwargs)
    except FieldError as exc:
        raise exc.within(section) from None


def _path_of(value: Mapping[str, Any], key: str, dotted: str) -> Any:
    """The import path of ``{key: path}`` (``{name: x}`` from a ``--set`` is ``x``)."""
    for k in value:
        if k not in (key, "name"):
            raise ConfigError(f"unknown config key `{dotted}.{_show(k)}`." + did_you_mean(k, [key]))
    return value[key] if key in value else value.get("name")


def _yaml_name(name: str) -> str:
    return {v: k for k, v in _ALIASES.items()}.get(name, name)


def _convert(tp: Any, value: Any, dotted: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value if value is not None else {}, dotted)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        errors = []
        for a in inner:
            try:
                return _convert(a, value, dotted)
            except ConfigError as exc:
                errors.append(exc)
        raise errors[0]
    if origin is Literal:
        if value not in args:
            raise ConfigError(
                f"`{dotted}`: expected one of {', '.join(map(str, args))}, got {value!r}."
                + did_you_mean(str(value), [str(a) for a in args])
            )
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"`{dotted}`: expected a list, got {value!r}.")
        if len(args) == 2 and args[1] is Ellipsis:
            if not value:
                raise ConfigError(f"`{dotted}`: expected a non-empty list, got [].")
            return tuple(_convert(args[0], v, dotted) for v in value)
        if len(value) != len(args):
            raise ConfigError(f"`{dotted}`: expected a list of {len(args)} values, got {value!r}.")
        return tuple(_convert(a, v, dotted) for a, v in zip(args, value))
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"`{dotted}`: expected true or false, got {value!r}.")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"`{dotted}`: expected an integer, got {value!r}.")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"`{dotted}`: expected a number, got {value!r}.")
        number = float(value) if isinstance(value, float) or abs(value) < 2**1000 else math.inf
        return number  # a non-finite number is refused by its section's rules
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"`{dotted}`: expected a string, got {value!r}.")
        return value
    if tp is Any:
        return value
    raise TypeError(f"config type {tp!r} of `{dotted}` is not supported")  # our bug


def to_dict(cfg: Any) -> dict[str, Any]:
    """The resolved config as plain data (YAML keys, lists for tuples)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            value = to_dict(value)
        elif isinstance(value, tuple):
            value = list(value)
        out[_yaml_name(f.name)] = value
    return out


def dump_yaml(cfg: Config) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)
