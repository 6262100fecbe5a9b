"""``rlnas controllers list|show``: the saved controllers and what their policies prefer.

``list`` reads only the cards (``card.json``) under ``./controllers`` and the controllers
shipped with rlnas (:func:`rlnas.bundled.controller_roots`; or under ``--root`` alone), so it
starts no TensorFlow; a folder that is not a usable controller is listed with the reason.
``show NAME_OR_PATH`` (a name under the root, a folder, or ``runs:/<run_id>/controller``)
prints the card and, per decision, the policy's most likely choices along its greedy path::

    rlnas controllers list
    rlnas controllers show mnist1d-layers --top 3

The policy is rebuilt from the card alone: :class:`CardSpace` declares the card's decisions
in order with their choices, which is all a controller's shapes depend on, so no data set
or config is needed.
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rlnas import bundled, zoo
from rlnas.commands import add_command
from rlnas.errors import ConfigError, ControllerError, SpaceError, did_you_mean
from rlnas.space import Space
from rlnas.tracking.store import download_artifacts, open_store

ROOT_HELP = (
    "folder of saved controllers (default: ./controllers, then the controllers shipped with rlnas)"
)


def register(subparsers) -> None:
    p = add_command(
        subparsers,
        "controllers",
        "list saved controllers or show one's card and preferences",
        description="Inspect saved REINFORCE controllers (folders written by `rlnas search "
        "--save-controller NAME`, or a search run's controller artifact).",
    )
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    ls = sub.add_parser("list", help="one line per saved controller folder")
    ls.add_argument(
        "--root",
        help=ROOT_HELP,
    )
    ls.set_defaults(func=run_list)
    show = sub.add_parser("show", help="a controller's card and most likely choices")
    show.add_argument(
        "source",
        metavar="NAME_OR_PATH",
        help="a name under --root (or the default folders), a controller folder, or "
        "runs:/<run_id>/controller",
    )
    show.add_argument(
        "--top", type=int, default=3, metavar="N", help="choices shown per decision (default: 3)"
    )
    show.add_argument(
        "--root",
        help=ROOT_HELP,
    )
    show.add_argument("--uri", help="tracking store URI for runs:/ sources (default: as search)")
    show.set_defaults(func=run_show)


class CardSpace(Space):
    """A space that declares exactly a card's decisions, in order, with their choices.

    It has no builder (its blueprint is the chosen values), but its ``describe()`` equals the
    card's space, which is all a saved policy needs to be loaded and queried.
    """

    def __init__(self, description: Mapping[str, Any]) -> None:
        self.name = str(description["space"])
        self._decisions = [(str(d["name"]), tuple(d["choices"])) for d in description["decisions"]]

    def declare(self, d) -> dict[str, Any]:
        return {name: d.choice(name, choices) for name, choices in self._decisions}


def space_from_card(card, where: str) -> CardSpace:
    """The :class:`CardSpace` of ``card``; :class:`ControllerError` naming ``where`` if its
    space description cannot be declared."""
    try:
        space = CardSpace(card.space)
        space.signature  # noqa: B018 - one dry run checks names and choices
    except (KeyError, TypeError, SpaceError) as exc:
        raise ControllerError(f"{where}: its space cannot be rebuilt ({exc}).") from None
    return space


# -- list -------------------------------------------------------------------------------------
def run_list(args: argparse.Namespace) -> int:
    roots = _roots(args.root)
    by_name: dict[str, Path] = {}  # a name in ./controllers hides the shipped one
    for root in roots:
        for folder in _folders(root):
            by_name.setdefault(folder.name, folder)
    folders = sorted(by_name.values(), key=lambda f: f.name)
    where = " or ".join(repr(str(r)) for r in roots) or repr(str(zoo.ROOT))
    if not folders:
        why = "is empty" if any(r.is_dir() for r in roots) else "does not exist"
        print(
            f"No saved controllers: {where} {why}. Save one with "
            "`rlnas search --config FILE --save-controller NAME`."
        )
        return 0
    header = ("NAME", "SPACE", "DECISIONS", "TASKS", "CHILDREN", "BEST", "RLNAS", "CREATED")
    rows, bad = [], []
    for folder in folders:
        try:
            card = zoo.read_card(folder)
            _check_weights(folder, card)
        except ControllerError as exc:
            bad.append((folder.name, " ".join(str(exc).split())))
            continue
        best = "-" if card.best_reward is None else f"{card.best_reward:.4f}"
        rows.append(
            (
                folder.name,
                str(card.space.get("space", "?")),
                str(len(card.space["decisions"])),
                ",".join(card.tasks) or "-",
                str(card.children),
                best,
                card.rlnas_version,
                card.created or "-",
            )
        )
    if rows:
        widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
        for row in (header, *rows):
            print("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())
    else:
        print(f"No usable controllers in {where}.")
    for name, reason in bad:
        print(f"{name}: not a usable controller: {reason}")
    return 0


def _roots(root: str | None) -> list[Path]:
    """``--root`` alone if given (checked), else ``./controllers`` and the shipped folder."""
    if root is None:
        return bundled.controller_roots()
    path = Path(root)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--root: {root!r} is a file; expected a folder of controllers.")
    return [path]


def _folders(root: Path) -> list[Path]:
    """Sub-folders of ``root`` by name (hidden ones, e.g. a save in progress, left out)."""
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _check_weights(folder: Path, card) -> None:
    weights = folder / zoo.WEIGHTS
    if not weights.is_file():
        raise ControllerError(f"{str(weights)!r} does not exist.")
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    if card.weights_sha256 and digest != card.weights_sha256:
        raise ControllerError(f"{str(weights)!r} is corrupt: its SHA-256 differs from its card's.")


# -- show -------------------------------------------------------------------------------------
def run_show(args: argparse.Namespace) -> int:
    if args.top < 1:
        raise ConfigError(f"--top: expected an integer >= 1, got {args.top}.")
    source = args.source
    if source.startswith("runs:/"):
        uri, _ = open_store(args.uri)
        with tempfile.TemporaryDirectory() as tmp:
            folder = download_artifacts(source, uri, tmp)
            _show(folder, source, args.top)
        return 0
    _show(_local(source, _roots(args.root)), source, args.top)
    return 0


def _local(source: str, roots: list[Path]) -> Path:
    """The folder ``source`` names: a path, or a name under the first root that has it."""
    for folder in (Path(source), *(root / source for root in roots)):
        if folder.is_dir():
            return folder
    names = sorted({p.name for root in roots for p in _folders(root)})
    them = "it" if len(roots) == 1 else "them"
    known = f"in {them}: {_few(names)}" if names else f"none in {them}"
    where = " or ".join(repr(str(r)) for r in roots) or repr(str(zoo.ROOT))
    raise ControllerError(
        f"NAME_OR_PATH: {source!r} is neither a controller folder nor a name under "
        f"{where} ({known}).{did_you_mean(source, names)}"
    )


def _show(folder: Path, source: str, top: int) -> None:
    card = zoo.read_card(folder)
    space = space_from_card(card, str(folder / zoo.CARD))
    controller = zoo.load_controller(str(folder), space)  # TensorFlow starts here
    _print_card(source, card)
    print(f"Most likely choices (greedy path, top {top}; masks ignored):")
    greedy = controller.greedy()
    width = max(len(name) for name, _ in greedy)
    for name, ranked in greedy:
        shown = "   ".join(f"{_value(c)} {p:.3f}" for c, p in ranked[:top])
        more = f"   (+{len(ranked) - top} more)" if len(ranked) > top else ""
        print(f"  {name:<{width}}  {shown}{more}")


def _print_card(source: str, card) -> None:
    c = card.controller
    best = "-" if card.best_reward is None else f"{card.best_reward:.4f}"
    base = "-" if card.baseline is None else f"{card.baseline:.4f}"
    print(f"Controller {source}")
    print(f"  space         {card.space['space']} ({len(card.space['decisions'])} decisions)")
    print(f"  tasks         {', '.join(card.tasks) or '-'}")
    print(f"  children      {card.children} (last search: {card.updates} policy updates)")
    print(f"  best reward   {best} (last search); baseline {base}")
    print(
        f"  controller    {card.strategy}, hidden_size {c.get('hidden_size')}, "
        f"learning_rate {c.get('learning_rate')}, batch_size {c.get('batch_size')}"
    )
    print(f"  created       {card.created or '-'} with rlnas {card.rlnas_version}")
    print(f"  card format   {card.format_version}; weights sha256 {card.weights_sha256[:16]}")
    if card.run_id:
        print(f"  MLflow run    {card.run_id}")
    for i, e in enumerate(card.lineage, 1):
        reward = "-" if e.get("best_reward") is None else f"{e['best_reward']:.4f}"
        print(
            f"  search {i:<6} {e.get('task')}: {e.get('children')} children, best {reward}, "
            f"{e.get('created')}"
        )


def _few(names: list[str], n: int = 8) -> str:
    return ", ".join(names[:n]) + (f" (+{len(names) - n} more)" if len(names) > n else "")


def _value(choice: object) -> str:
    return "none" if choice is None else str(choice)
