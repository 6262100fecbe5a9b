"""The configs and saved controllers that ship with rlnas, found through ``importlib.resources``.

They live in the package as ``rlnas/data/configs`` and ``rlnas/data/controllers`` (in the
checkout, links to the repository's ``configs/`` and ``controllers/`` folders, which stay
where the README's commands expect them), so an installed wheel has them wherever it is
run from. A user's own folders come first::

    controller_roots()        # [Path("controllers"), <site-packages>/rlnas/data/controllers]
    config_path("demo")       # ./configs/demo.yaml if there is one, else the shipped file
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from rlnas.errors import ConfigError, did_you_mean

USER_CONTROLLERS = Path("controllers")
"""The user's own saved controllers (``--save-controller`` writes here); searched first."""
USER_CONFIGS = Path("configs")


def _shipped(name: str) -> Path:
    """A folder of package data as a file-system path (wheels are installed unpacked)."""
    return Path(str(resources.files("rlnas").joinpath("data", name)))


def shipped_controllers() -> Path:
    """The folder of controllers shipped with rlnas."""
    return _shipped("controllers")


def shipped_configs() -> Path:
    """The folder of configs shipped with rlnas."""
    return _shipped("configs")


def controller_roots() -> list[Path]:
    """Where saved controllers are looked up, in order: ``./controllers`` (the user's), then
    the shipped ones; each folder once, and only folders that exist."""
    roots: list[Path] = []
    for root in (USER_CONTROLLERS, shipped_controllers()):
        if root.is_dir() and not any(root.resolve() == r.resolve() for r in roots):
            roots.append(root)
    return roots


def find_controller(name: str) -> Path | None:
    """The folder of the saved controller ``name`` in the first root that has it."""
    for root in controller_roots():
        if (root / name).is_dir():
            return root / name
    return None


def config_names() -> list[str]:
    """Names of the shipped configs (``demo``, ``mnist1d``, ...)."""
    return sorted(p.stem for p in shipped_configs().glob("*.yaml"))


def config_path(name: str) -> Path:
    """``configs/NAME.yaml`` in the current folder if it exists, else the shipped config
    ``NAME`` (with or without ``.yaml``); a one-line ConfigError naming the choices if
    neither exists."""
    file = name if name.endswith((".yaml", ".yml")) else f"{name}.yaml"
    for folder in (USER_CONFIGS, shipped_configs()):
        if (folder / file).is_file():
            return folder / file
    names = config_names()
    raise ConfigError(
        f"--config: no config {name!r} in ./configs or among the shipped ones "
        f"({', '.join(names)}).{did_you_mean(Path(file).stem, names)}"
    )
