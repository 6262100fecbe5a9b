"""Saved controllers: a folder with the policy's Keras weights and a JSON card.

A saved controller is a folder (``controllers/<name>/`` or the ``controller/`` artifact of a
search's MLflow run) holding:

* ``controller.weights.h5`` — the LSTM policy's weights, written by Keras's
  ``Model.save_weights`` (never a pickle);
* ``card.json`` — what the weights mean and where they come from: the space signature
  (``space.describe()``: every decision name and its choices, in order, which fixes the
  policy's token and head layout), the controller settings, the task(s) and number of
  children it was trained on, the best reward reached, the baseline and reward spread at
  the end, the weights file's SHA-256, the rlnas version and the card format version.

Starting a search from one (``controller.from`` in the config) copies the weights into a
fresh controller; its baseline, reward spread and optimizer start afresh because a new
search's rewards may have another scale, and the first ``controller.warm_updates`` updates
sample at ``controller.warm_temperature``. When the new space is not the saved one, the
decisions they share by name are transferred (the LSTM itself, and for each shared decision
the embeddings and head columns of the choices both have) and the rest starts fresh; the
search says what was not transferred. With no decision in common it is an error that lists
the differences::

    controller = make_strategy(cfg, space)
    card = zoo.warm_start(controller, "controllers/mnist1d")
    ...
    zoo.save_controller(controller, "controllers/new", task="digits", children=20,
                        best_reward=0.97)
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import re
import tempfile
import time
import weakref
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import rlnas
from rlnas import bundled
from rlnas.config import TrackingConfig
from rlnas.errors import ConfigError, ControllerError
from rlnas.space import Decision, Space
from rlnas.strategies.base import Strategy
from rlnas.strategies.reinforce import LSTMPolicy, ReinforceConfig, ReinforceController
from rlnas.tracking.store import download_artifacts
from rlnas.zoo_transfer import (  # noqa: F401 (Transfer, plan_transfer: the zoo's API too)
    Transfer,
    copy_shared,
    plan_transfer,
    space_differences,
)

if TYPE_CHECKING:
    from rlnas.search import Search, SearchResult

log = logging.getLogger(__name__)

FORMAT = "rlnas-controller"
FORMAT_VERSION = 1
WEIGHTS = "controller.weights.h5"
CARD = "card.json"
ROOT = Path("controllers")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
# the card each warm-started controller came from, so that a later save records its lineage
_ORIGINS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class ControllerCard:
    """The JSON card of a saved controller (``card.json``)."""

    space: dict[str, Any]
    """``space.describe()`` of the space it was trained on: name and decisions with choices."""
    controller: dict[str, Any]
    """The controller settings (``ReinforceConfig`` fields; ``hidden_size`` fixes shapes)."""
    tasks: list[str]
    """Every task it was trained on, oldest first."""
    children: int
    """Children it learned from, over all its searches."""
    best_reward: float | None
    """Best reward of its last search."""
    updates: int = 0
    """Policy updates of its last search."""
    baseline: float | None = None
    """Reward baseline at the end of its last search."""
    reward_var: float | None = None
    """Running reward variance at the end of its last search."""
    weights_sha256: str = ""
    """Digest of the weights file, to detect a corrupt or swapped file."""
    run_id: str | None = None
    """MLflow parent run of its last search, if tracked."""
    created: str = ""
    lineage: list[dict[str, Any]] = field(default_factory=list)
    """One entry per search it went through: task, children, best_reward, run_id, created."""
    strategy: str = "reinforce"
    rlnas_version: str = rlnas.__version__
    format_version: int = FORMAT_VERSION

    def signature(self) -> tuple[Decision, ...]:
        """The saved space's decisions (what a policy with these weights was built for)."""
        return tuple(
            Decision(d["name"], tuple(d["choices"]), i)
            for i, d in enumerate(self.space["decisions"])
        )

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = CARD) -> ControllerCard:
        if not isinstance(data, Mapping) or data.get("format") != FORMAT:
            raise ControllerError(f"{where}: not an rlnas controller card (no format {FORMAT!r}).")
        version = data.get("format_version")
        if type(version) is not int or version < 1:
            raise ControllerError(
                f"{where}: format_version {version!r} is not a card format version (expected "
                f"an integer from 1 to {FORMAT_VERSION})."
            )
        if version > FORMAT_VERSION:
            raise ControllerError(
                f"{where}: card format version {version!r} is newer than this rlnas "
                f"{rlnas.__version__} reads (up to {FORMAT_VERSION}); upgrade rlnas."
            )
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in names}  # newer optional keys ignored
        try:
            card = cls(**kwargs)
            card.signature()
        except (TypeError, KeyError) as exc:
            raise ControllerError(f"{where}: incomplete card ({exc}).") from None
        return card


def can_save(strategy: Strategy) -> bool:
    """Whether ``strategy`` has a policy to save (the REINFORCE controller)."""
    return strategy.can_save


class ControllerSaver:
    """Adds a search's controller to its MLflow parent run (the ``controller/`` artifact)
    as the search ends: an artifact writer of :class:`~rlnas.tracking.MLflowTracker`,
    which ``rlnas search`` attaches. Strategies without a policy to save add nothing.

    ``card`` is the card of the controller saved last (``None`` until then).
    """

    def __init__(self) -> None:
        self.card: ControllerCard | None = None

    def write_artifacts(
        self, folder: Path, search: Search, result: SearchResult, *, run_id: str | None, task: str
    ) -> None:
        if not can_save(search.strategy):
            return
        best = result.best.reward if result.best else None
        children = sum(t.cached_from is None and t.state.finished for t in result.trials)
        self.card = save_controller(
            search.strategy,  # type: ignore[arg-type]  # can_save: a ReinforceController
            folder / "controller",
            task=task,
            children=children,
            best_reward=best,
            run_id=run_id,
        )


def controller_dir(name: str, root: str | Path = ROOT) -> Path:
    """``controllers/<name>`` for ``--save-controller NAME``, checked before any work."""
    if not _NAME.match(name):
        raise ConfigError(
            f"--save-controller: expected a name of letters, digits, '.', '_' or '-', got {name!r}."
        )
    folder = Path(root) / name
    if folder.exists():
        raise ConfigError(
            f"--save-controller: {str(folder)!r} already exists; choose another name or remove it."
        )
    return folder


def save_controller(
    controller: ReinforceController,
    folder: str | Path,
    *,
    task: str,
    children: int,
    best_reward: float | None,
    run_id: str | None = None,
) -> ControllerCard:
    """Write ``controller``'s weights and card into ``folder`` (created; must not exist)."""
    folder = Path(folder)
    base: ControllerCard | None = _ORIGINS.get(controller)
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    entry = {
        "task": task,
        "children": int(children),
        "best_reward": best_reward,
        "run_id": run_id,
        "created": created,
    }
    tmp = folder.with_name(f".{folder.name}.partial")
    tmp.mkdir(parents=True, exist_ok=True)
    controller.keras_model.save_weights(str(tmp / WEIGHTS))
    config = dataclasses.asdict(controller.config)
    config.pop("from_", None)
    card = ControllerCard(
        space=json.loads(json.dumps(controller.space.describe())),
        controller=config,
        tasks=list(dict.fromkeys([*(base.tasks if base else []), task])),
        children=int(children) + (base.children if base else 0),
        best_reward=best_reward,
        updates=int(controller.step),
        baseline=controller.baseline,
        reward_var=controller.reward_var,
        weights_sha256=_sha256(tmp / WEIGHTS),
        run_id=run_id,
        created=created,
        lineage=[*(base.lineage if base else []), entry],
    )
    (tmp / CARD).write_text(card_text(card))
    tmp.replace(folder)  # atomic: a folder either holds a whole controller or nothing
    return card


def card_text(card: ControllerCard) -> str:
    """The card as JSON, indented, with one line per decision of the space."""
    data = card.to_dict()
    decisions = data["space"]["decisions"]
    data["space"] = {**data["space"], "decisions": "@decisions@"}
    rows = ",\n   ".join(json.dumps(d) for d in decisions)
    return json.dumps(data, indent=1).replace('"@decisions@"', f"[\n   {rows}\n  ]") + "\n"


def read_card(folder: str | Path) -> ControllerCard:
    """The card of a saved controller folder; :class:`ControllerError` if unusable."""
    path = Path(folder) / CARD
    if not path.is_file():
        raise ControllerError(f"{str(path)!r} does not exist: not a saved controller folder.")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ControllerError(f"{str(path)!r} is not valid JSON ({exc}).") from None
    return ControllerCard.from_dict(data, str(path))


def check_source(
    source: str, space: Space, hidden_size: int, *, tracking_uri: str | None = None
) -> ControllerCard:
    """Check, without TensorFlow, that ``source`` can start a controller for ``space``:
    a readable card, the same space, the same hidden size, an intact weights file."""
    with _local_folder(source, tracking_uri) as folder:
        return _check(folder, source, space, hidden_size)


def _check(folder: Path, source: str, space: Space, hidden_size: int) -> ControllerCard:
    card = read_card(folder)
    transfer = plan_transfer(card.space, space)
    if transfer is not None and not transfer.shared:
        diffs = space_differences(card.space, space)
        raise ControllerError(
            f"controller.from: {source!r} was trained on another search space and shares no "
            "decision (name and choice) with this one: "
            + "; ".join(diffs[:4])
            + (f" (and {len(diffs) - 4} more)" if len(diffs) > 4 else "")
            + "."
        )
    saved_h = card.controller.get("hidden_size")
    if saved_h != hidden_size:
        raise ControllerError(
            f"controller.hidden_size: {source!r} has {saved_h} units, this config "
            f"{hidden_size}; set controller.hidden_size={saved_h}."
        )
    weights = folder / WEIGHTS
    if not weights.is_file():
        raise ControllerError(f"{str(weights)!r} does not exist.")
    if card.weights_sha256 and _sha256(weights) != card.weights_sha256:
        raise ControllerError(
            f"{str(weights)!r} is corrupt: its SHA-256 differs from the one in its card."
        )
    return card


def warm_start(
    controller: ReinforceController, source: str, *, tracking_uri: str | None = None
) -> ControllerCard:
    """Copy a saved controller's weights into ``controller`` (same space and hidden size).

    ``source`` is a folder (``controllers/NAME``, or just ``NAME`` when that folder exists)
    or an MLflow artifact URI ``runs:/<run_id>/controller``.
    """
    with _local_folder(source, tracking_uri) as folder:
        card = _check(folder, source, controller.space, controller.config.hidden_size)
        transfer = plan_transfer(card.space, controller.space)
        weights = folder / WEIGHTS
        if transfer is None:
            _load_weights(controller.policy, weights)
        else:
            saved = LSTMPolicy(card.signature(), controller.config, seed=0)
            _load_weights(saved, weights)
            copy_shared(saved, controller.policy, transfer)
            log.warning(transfer.note(source))
    controller.policy_changed()  # refresh the tables the sampler reads
    controller.warm_started()
    _ORIGINS[controller] = card
    return card


def _load_weights(policy: LSTMPolicy, weights: Path) -> None:
    try:
        policy.load_keras_weights(str(weights))
    except Exception as exc:
        raise ControllerError(f"{str(weights)!r} cannot be loaded: {exc}") from None


def load_controller(
    source: str,
    space: Space,
    config: ReinforceConfig | None = None,
    *,
    seed: int = 0,
    unique: bool = True,
    tracking_uri: str | None = None,
) -> ReinforceController:
    """A new controller for ``space`` with a saved controller's weights (and, unless
    ``config`` is given, its settings)."""
    if config is None:
        with _local_folder(source, tracking_uri) as folder:
            saved = read_card(folder).controller
        names = {f.name for f in dataclasses.fields(ReinforceConfig)} - {"from_"}
        config = ReinforceConfig(**{k: v for k, v in saved.items() if k in names})
    controller = ReinforceController(space, config, seed=seed, unique=unique)
    warm_start(controller, source, tracking_uri=tracking_uri)
    return controller


def keras_model(source: str, *, tracking_uri: str | None = None):
    """A saved controller's policy as a plain Keras model (token sequence in, the heads' raw
    outputs at every step out; see :mod:`rlnas.strategies.keras_policy`), to look inside or
    to keep as a ``.keras`` file that ``keras.saving.load_model`` reads::

        zoo.keras_model("controllers/nb201-cifar10").save("policy.keras")
    """
    with _local_folder(source, tracking_uri) as folder:
        card = read_card(folder)
        shape = ReinforceConfig(hidden_size=card.controller["hidden_size"])
        policy = LSTMPolicy(card.signature(), shape, seed=0)
        _load_weights(policy, folder / WEIGHTS)
    return policy.keras_model()


@contextlib.contextmanager
def _local_folder(source: str, tracking_uri: str | None) -> Iterator[Path]:
    if source.startswith("runs:/"):
        uri = tracking_uri or TrackingConfig().resolved_uri()
        with tempfile.TemporaryDirectory() as tmp:
            yield download_artifacts(source, uri, tmp)
        return
    folder = Path(source)
    if not folder.exists() and "/" not in source:  # a name: ./controllers, then the shipped
        folder = bundled.find_controller(source) or folder
    if not folder.is_dir():
        raise ControllerError(
            f"controller.from: {source!r} is not a saved controller folder (expected "
            "controllers/NAME holding card.json and controller.weights.h5, or "
            "runs:/<run_id>/controller)."
        )
    yield folder


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
