"""The wheel a user installs: built from this tree, installed into a fresh virtualenv, run
from another folder. Its shipped configs and controllers are found through
``importlib.resources`` (``rlnas.bundled``), and a two-child table search runs.

Offline and quick by design: the wheel is built with ``--no-build-isolation`` (the build
tools of the running environment, no download) from a copy of the tree (no ``build/`` or
``*.egg-info`` left in the checkout), and installed with ``--no-deps`` into a venv created
``--without-pip``. Its dependencies come from the running environment through a ``.pth``
line naming that environment's site-packages: a plain path entry, so the ``.pth`` files
there (the editable install of the checkout) are not run and only the wheel's rlnas can be
imported. (``--system-site-packages`` would give the base interpreter's packages, which
need not hold TensorFlow and MLflow.)
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_CONTROLLERS = {"mnist1d-layers", "nb201-cifar10"}
SHIPPED_CONFIGS = {p.stem for p in (Path(__file__).resolve().parents[1] / "configs").glob("*.yaml")}
"""Every config of the checkout's configs/ folder ships in the wheel."""


def run(cmd: list[str], cwd: Path) -> str:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(cwd)}  # no PYTHONPATH: only what is installed
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{cmd}: {done.stdout[-1500:]}{done.stderr[-2500:]}"
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, Path]:
    """(the fresh venv's python, a folder outside the checkout)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "configs", "controllers", "rlnas"):
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy2
        kwargs = {"symlinks": True, "ignore": shutil.ignore_patterns("__pycache__")}
        copy(ROOT / name, src / name, **(kwargs if copy is shutil.copytree else {}))
    wheels = tmp / "wheels"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(src)], tmp)
    [wheel] = wheels.glob("rlnas-*.whl")
    venv = tmp / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp)
    python = venv / "bin" / "python"
    run([*pip, "--python", str(python), "install", "--no-deps", str(wheel)], tmp)
    site = Path(
        run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], tmp
        ).strip()
    )
    (site / "_rlnas_test_deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    elsewhere = tmp / "elsewhere"
    elsewhere.mkdir()
    return python, elsewhere


def test_the_installed_package_is_the_wheels_with_its_data(installed):
    python, elsewhere = installed
    out = run(
        [str(python), "-c",
         "import rlnas, rlnas.bundled as b\n"
         "print(rlnas.__file__)\n"
         "print(b.shipped_controllers())\n"
         "print(','.join(sorted(p.name for p in b.shipped_controllers().iterdir())))\n"
         "print(','.join(b.config_names()))\n"
         "print(b.config_path('demo'))\n"
         "print(len(b.controller_roots()))"],
        elsewhere,
    )  # fmt: skip
    package, controllers, names, configs, demo, roots = out.splitlines()
    venv = python.parent.parent
    assert Path(package).is_relative_to(venv) and not Path(package).is_relative_to(ROOT)
    assert Path(controllers).is_relative_to(venv)
    assert set(names.split(",")) == SHIPPED_CONTROLLERS
    assert set(configs.split(",")) == SHIPPED_CONFIGS
    assert Path(demo).is_file() and Path(demo).is_relative_to(venv)
    assert roots == "1"  # no ./controllers here: the shipped folder alone


def test_rlnas_controllers_list_shows_the_shipped_controllers(installed):
    python, elsewhere = installed
    rlnas = python.with_name("rlnas")
    out = run([str(rlnas), "controllers", "list"], elsewhere)  # the shipped folder by default
    for name in SHIPPED_CONTROLLERS:
        assert name in out


def test_a_two_child_search_runs_from_the_installed_wheel(installed):
    python, elsewhere = installed
    rlnas = python.with_name("rlnas")
    code = "import rlnas.bundled as b; print(b.config_path('nb201-cifar10'))"
    config = run([str(python), "-c", code], elsewhere).strip()
    store = elsewhere / "mlflow.db"
    run(
        [str(rlnas), "search", "-c", config, "--no-progress", "--set", "search.children=2",
         "--set", "strategy=random", "--set", f"tracking.uri=sqlite:///{store}"],
        elsewhere,
    )  # fmt: skip
    assert store.is_file()


# -- rlnas.bundled in the checkout (quick) -------------------------------------------------
def test_a_users_own_folders_come_before_the_shipped_ones(tmp_path, monkeypatch):
    from rlnas import bundled

    monkeypatch.chdir(tmp_path)
    assert bundled.controller_roots() == [bundled.shipped_controllers()]
    assert bundled.find_controller("nb201-cifar10") == bundled.shipped_controllers() / (
        "nb201-cifar10"
    )
    assert bundled.config_path("demo") == bundled.shipped_configs() / "demo.yaml"
    (tmp_path / "controllers" / "nb201-cifar10").mkdir(parents=True)
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "demo.yaml").write_text("seed: 1\n")
    assert bundled.controller_roots()[0] == Path("controllers")
    assert bundled.find_controller("nb201-cifar10") == Path("controllers/nb201-cifar10")
    assert bundled.config_path("demo.yaml") == Path("configs/demo.yaml")


def test_an_unknown_config_name_lists_the_shipped_ones(tmp_path, monkeypatch):
    from rlnas import bundled
    from rlnas.errors import ConfigError

    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as info:
        bundled.config_path("dmeo")
    message = str(info.value)
    assert "\n" not in message and "no config 'dmeo'" in message
    assert "nb201-cifar10" in message and message.endswith("Did you mean `demo`?")


def test_the_checkout_ships_the_repository_folders_themselves():
    from rlnas import bundled

    assert bundled.shipped_configs().resolve() == (ROOT / "configs").resolve()
    assert bundled.shipped_controllers().resolve() == (ROOT / "controllers").resolve()
