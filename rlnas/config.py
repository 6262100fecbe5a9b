"""Typed, strict configuration: YAML in, frozen dataclasses out.

Every section is a frozen dataclass whose fields are documented where they are defined; the
loader checks types and names (an unknown key names the closest valid one, as in
"Did you mean `child.epochs`?"), and each dataclass checks its own rules in
``__post_init__``. The resolved config is logged with every run, so a run can be replayed::

    cfg = load_config("configs/demo.yaml", ["child.epochs=2", "controller.from=controllers/x"])
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from rlnas.errors import (
    MAY_BE_EMPTY,
    ConfigError,
    FieldError,
    did_you_mean,
    require,
    require_one_of,
)
from rlnas.evaluators.shared_config import SharedConfig, check_shared
from rlnas.spaces.layers import LayersConfig
from rlnas.spaces.nasnet import NasnetConfig
from rlnas.strategies.evolution import EvolutionConfig
from rlnas.strategies.reinforce import ReinforceConfig

TASKS = (
    "digits",
    "mnist1d",
    "fashion_mnist",
    "mnist",
    "cifar10",
    "npz",
    "image_folder",
    "nb201",
)
NB201_DATASETS = ("cifar10", "cifar100", "imagenet16_120")


@dataclass(frozen=True)
class TaskConfig:
    """The data set children are trained and validated on."""

    name: str = "digits"
    """One of: digits, mnist1d, fashion_mnist, mnist, cifar10, npz, image_folder, nb201."""
    path: str | None = None
    """The ``.npz`` file (arrays ``x``, ``y``; optional ``x_test``, ``y_test``) or the image
    folder (one sub-folder per class). Required by ``npz`` and ``image_folder``."""
    dataset: str = "cifar10"
    """NAS-Bench-201 column for ``nb201``: cifar10, cifar100 or imagenet16_120."""
    validation_fraction: float = 0.15
    """Share of the data held out for validation (the reward)."""
    test_fraction: float = 0.15
    """Share held out for the test split when the data set has none of its own."""
    train_subset: int | None = None
    """Train children on this many training examples only (stratified); ``None``: all."""
    image_size: tuple[int, int] = (64, 64)
    """Height and width images of an ``image_folder`` are resized to."""
    split_seed: int = 0
    """Seed of the stratified splits (fixed, so that runs are comparable)."""

    def __post_init__(self) -> None:
        require_one_of("name", self.name, TASKS)
        require(
            self.name not in ("npz", "image_folder") or bool(self.path),
            "path",
            self.path,
            f"a file or folder for task {self.name!r}",
        )
        require_one_of("dataset", self.dataset, NB201_DATASETS)
        for name in ("validation_fraction", "test_fraction"):
            v = getattr(self, name)
            require(0.0 < v < 0.5, name, v, "a fraction between 0 and 0.5")
        require(
            self.train_subset is None or self.train_subset >= 10,
            "train_subset",
            self.train_subset,
            "an integer >= 10 or null",
        )
        require(
            all(s >= 8 for s in self.image_size),
            "image_size",
            list(self.image_size),
            "two sizes >= 8",
        )


@dataclass(frozen=True)
class ChildConfig:
    """How each child is trained (its learning rate, batch size etc. are decisions)."""

    epochs: int = 1
    """Training epochs per child."""
    steps_per_epoch: int | None = None
    """Cap on the batches per epoch (a step budget); ``None``: the whole training set."""
    metric: str = "val_accuracy"
    """Reward: ``val_accuracy`` or ``val_loss`` (rewarded as its negative)."""
    target_mmacs: float | None = None
    """Soft compute target in millions of multiply-adds per example (MnasNet's soft
    constraint, Tan et al. 2019): a child above it is rewarded ``val_accuracy x
    (mmacs / target_mmacs) ** cost_exponent``; ``None``: accuracy alone."""
    cost_exponent: float = -0.07
    """How hard the target bites: -0.07 (MnasNet's value) costs a child twice the target
    about 5% of its reward; -1 is nearly a hard limit."""
    validate: Literal["last", "every_epoch"] = "last"
    """When a child is validated: after its ``last`` epoch only (the reward needs no more),
    or after ``every_epoch`` for validation curves in MLflow (one pass over the validation
    split per epoch more)."""

    def __post_init__(self) -> None:
        require(self.epochs >= 1, "epochs", self.epochs, "an integer >= 1")
        require(
            self.steps_per_epoch is None or self.steps_per_epoch >= 1,
            "steps_per_epoch",
            self.steps_per_epoch,
            "an integer >= 1 or null",
        )
        require(
            self.metric in ("val_accuracy", "val_loss"),
            "metric",
            self.metric,
            "val_accuracy or val_loss",
        )
        require(
            self.target_mmacs is None or self.target_mmacs > 0,
            "target_mmacs",
            self.target_mmacs,
            "a positive number (millions of multiply-adds per example) or null",
        )
        require(
            -1.0 <= self.cost_exponent < 0,
            "cost_exponent",
            self.cost_exponent,
            "a number in [-1, 0) (MnasNet uses -0.07)",
        )
        require_one_of("validate", self.validate, ("last", "every_epoch"))
        require(
            self.target_mmacs is None or self.metric == "val_accuracy",
            "metric",
            self.metric,
            "val_accuracy when target_mmacs is set (the cost factor scales an accuracy)",
        )


@dataclass(frozen=True)
class SearchConfig:
    """The budget and the failure policy."""

    children: int = 20
    """Children to train (re-used cached rewards do not count)."""
    budget_seconds: float | None = None
    """Stop when the children's summed cost reaches this (simulated seconds for tables)."""
    wall_seconds: float | None = None
    """Start no new child after this many wall-clock seconds."""
    max_failures: int = 10
    """Stop after this many failed children in a row."""
    failed_reward: float | None = None
    """Reward told for a failed child; ``null`` skips it in the update."""
    unique: bool = True
    """Never propose an architecture twice in one search."""
    cache_across_searches: bool = False
    """Also re-use rewards of earlier searches of the same task, space and training settings
    found in the tracking store."""

    def __post_init__(self) -> None:
        require(self.children >= 1, "children", self.children, "an integer >= 1")
        require(self.max_failures >= 1, "max_failures", self.max_failures, "an integer >= 1")
        for name in ("budget_seconds", "wall_seconds"):
            v = getattr(self, name)
            require(v is None or v > 0, name, v, "a positive number or null")


@dataclass(frozen=True)
class ExecutorConfig:
    """Where children run."""

    kind: Literal["inline", "process", "ray"] = "inline"
    """inline: in the main process; process: a pool of local worker processes; ray: Ray tasks."""
    workers: int = 2
    """Children in flight at once (process and ray)."""
    threads_per_worker: int | None = None
    """TensorFlow threads per worker; ``None``: the machine's cores divided by ``workers``."""
    recycle_after: int | None = 25
    """Replace a worker process after this many children, returning leaked memory."""
    child_timeout_seconds: float | None = None
    """A child running longer than this fails with reason ``timeout``."""
    ray_address: str | None = None
    """Address of an existing Ray cluster; ``None`` starts Ray locally."""

    def __post_init__(self) -> None:
        require(self.workers >= 1, "workers", self.workers, "an integer >= 1")
        require(
            self.threads_per_worker is None or self.threads_per_worker >= 1,
            "threads_per_worker",
            self.threads_per_worker,
            "an integer >= 1 or null",
        )
        require(
            self.recycle_after is None or self.recycle_after >= 1,
            "recycle_after",
            self.recycle_after,
            "an integer >= 1 or null",
        )
        require(
            self.child_timeout_seconds is None or self.child_timeout_seconds > 0,
            "child_timeout_seconds",
            self.child_timeout_seconds,
            "a positive number or null",
        )


@dataclass(frozen=True)
class TrackingConfig:
    """Where MLflow records the search."""

    uri: str | None = None
    """MLflow tracking URI; ``None``: ``$MLFLOW_TRACKING_URI``, else ``sqlite:///runs/mlflow.db``."""
    experiment: str = "rlnas"
    """MLflow experiment the search's run goes into."""
    retry_seconds: float = 300.0
    """How long a store that stops answering mid-search is retried (the search goes on, its
    results kept) before the search stops with its state saved for ``rlnas resume``."""

    def __post_init__(self) -> None:
        v = self.retry_seconds
        require(v >= 0, "retry_seconds", v, "a number of seconds >= 0")

    def resolved_uri(self) -> str:
        if self.uri:
            return self.uri
        return os.environ.get("MLFLOW_TRACKING_URI") or "sqlite:///runs/mlflow.db"


@dataclass(frozen=True)
class FinalConfig:
    """How ``rlnas final`` retrains the best architectures of a search and tests them."""

    top_k: int = 3
    """Best distinct architectures of the search (by reward) retrained from scratch."""
    epochs: int = 30
    """Training epochs of each final model (children train for ``child.epochs`` only)."""
    schedule: Literal["cosine", "constant"] = "cosine"
    """Learning rate over the final epochs: ``cosine`` decays the child's learning rate to 0
    (Loshchilov & Hutter 2017), ``constant`` keeps it."""
    budget_seconds: float | None = None
    """Wall-clock seconds for each final model's training: after every epoch the epochs are
    planned again, to what fits at the mean epoch time so far (down when the machine slows,
    up again when it recovers, never more than ``epochs``), and the cosine schedule decays
    over the budget (the larger of the fractions of epochs and of seconds used); ``None``:
    always ``epochs``."""
    train_subset: int | None = None
    """Train final models on this many examples (stratified); ``None``: all of them (the
    search's ``task.train_subset`` does not apply to final training)."""
    augment: str | None = None
    """Data augmentation of final training (none, light, strong); ``None``: each child's own
    ``train/augment``. A few epochs of a child rarely reward augmentation, long training does."""
    label_smoothing: float = 0.0
    """Train final models against targets that give this much of the probability mass to the
    other classes, evenly (Szegedy et al. 2016; NASNet's final training used 0.1); 0: the
    plain labels. The saved model is compiled with the plain loss either way."""
    test_time_flip: bool = False
    """Make each final model average its class probabilities over the image and its
    horizontal mirror (test-time augmentation; the saved, exported and registered model does
    it, in one graph that loads in safe mode). Only for image tasks whose mirror images keep
    the label (the task's ``flip``: clothes, photos; not digits) and best with augmentation
    that flips."""
    test_time_shift: int = 0
    """Pixels: also average over the image (and, with ``test_time_flip``, its mirror) shifted
    by this many pixels up, down, left and right, the edge repeated into the gap (5 or 10
    views in all; 0: none). Images only; best with augmentation that shifts, such as
    ``light``. Prediction costs as many forward passes as there are views."""
    ensemble: bool = False
    """Also evaluate one Keras model averaging the top-k final models."""
    weighted: bool = False
    """Weight the ensemble's members by weights fitted on the validation split. The members
    then train on the training split only (the weights need examples they never saw);
    unweighted final models train on training + validation."""
    register: bool = True
    """Register each final model (and the ensemble) in the MLflow Model Registry."""
    model_name: str | None = None
    """Registered model name; ``None``: ``rlnas-<task>-<space>`` (``-ensemble`` appended for
    the ensemble)."""

    def __post_init__(self) -> None:
        require(1 <= self.top_k <= 20, "top_k", self.top_k, "an integer in 1..20")
        require(self.epochs >= 1, "epochs", self.epochs, "an integer >= 1")
        require(
            self.budget_seconds is None or self.budget_seconds > 0,
            "budget_seconds",
            self.budget_seconds,
            "a positive number of seconds or null",
        )
        require(
            self.train_subset is None or self.train_subset >= 10,
            "train_subset",
            self.train_subset,
            "an integer >= 10 or null",
        )
        require(
            self.augment in (None, "none", "light", "strong"),
            "augment",
            self.augment,
            "none, light, strong or null",
        )
        require(
            0 <= self.label_smoothing < 1,
            "label_smoothing",
            self.label_smoothing,
            "a number in [0, 1) (0: the plain labels)",
        )
        require(
            0 <= self.test_time_shift <= 8,
            "test_time_shift",
            self.test_time_shift,
            "an integer number of pixels in 0..8 (0: no shifted views)",
        )
        require(
            not self.ensemble or self.top_k >= 2,
            "top_k",
            self.top_k,
            "at least 2 for an ensemble (final.ensemble: true)",
        )
        require(
            self.ensemble or not self.weighted,
            "weighted",
            self.weighted,
            "false unless final.ensemble is true",
        )
        require(
            self.model_name is None or bool(self.model_name.strip()),
            "model_name",
            self.model_name,
            "a non-empty name or null",
        )


@dataclass(frozen=True)
class Config:
    """A whole search, as written in a YAML file."""

    seed: int = 0
    """Seed of the strategy and of the children (split seeds are in ``task``)."""
    task: TaskConfig = field(default_factory=TaskConfig)
    space: str = "layers"
    """Search space: layers, nb201 or nasnet; its settings are in the section of that name."""
    layers: LayersConfig = field(default_factory=LayersConfig)
    nasnet: NasnetConfig = field(default_factory=NasnetConfig)
    strategy: Literal["reinforce", "random", "rea"] = "reinforce"
    """reinforce (the LSTM controller), random, or rea (regularized evolution)."""
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
        require_one_of("space", self.space, ("layers", "nb201", "nasnet"))
        check_shared(self)


# -- loading ------------------------------------------------------------------------------
_ALIASES = {"from": "from_"}  # YAML keys that are Python keywords


def load_config(path: str | os.PathLike | None = None, overrides: Sequence[str] = ()) -> Config:
    """Read a YAML file (or start from the defaults), apply ``key=value`` overrides, check it."""
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"--config: file {str(p)!r} does not exist.")
        try:
            loaded = yaml.safe_load(p.read_text())
        except yaml.YAMLError as exc:
            raise ConfigError(
                f"--config: {str(p)!r} is not valid YAML: {str(exc).splitlines()[0]}"
            ) from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(
                f"--config: {str(p)!r} must hold a mapping of sections, "
                f"got {type(loaded).__name__}."
            )
        data = loaded or {}
    for item in overrides:
        apply_override(data, item)
    return from_dict(Config, data)


def apply_override(data: dict[str, Any], item: str) -> None:
    """Apply one ``section.key=value`` override (the value is parsed as YAML)."""
    if "=" not in item:
        raise ConfigError(f"--set: expected key=value, got {item!r}.")
    key, _, raw = item.partition("=")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    parts = key.strip().split(".")
    node = data
    for part in parts[:-1]:
        child = node.get(part)
        if child is None or not isinstance(child, dict):
            child = node[part] = {} if not isinstance(child, str) else {"name": child}
        node = child
    node[parts[-1]] = value


def from_dict(cls: type, data: Mapping[str, Any], section: str = "") -> Any:
    """Build dataclass ``cls`` from ``data`` strictly (unknown keys and wrong types fail)."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"`{section}`: expected a mapping of settings, got {data!r}.")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    names = set(fields)
    yaml_names = {_yaml_name(n) for n in names}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        name = _ALIASES.get(key, key)
        dotted = f"{section}.{key}" if section else str(key)
        if name not in names:
            valid = [f"{section}.{n}" if section else n for n in sorted(yaml_names)]
            raise ConfigError(f"unknown config key `{dotted}`." + did_you_mean(dotted, valid))
        empty = isinstance(value, (list, tuple)) and not value
        if empty and fields[name].metadata.get(MAY_BE_EMPTY):
            kwargs[name] = ()  # a list that may be empty (choice lists may not)
            continue
        kwargs[name] = _convert(hints[name], value, dotted)
    try:
        return cls(**kwargs)
    except FieldError as exc:
        raise exc.within(section) from None


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
        return float(value)
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
