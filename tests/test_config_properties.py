"""Property-based tests of the config loader's contract, with generated configs and files.

Whatever a user writes (every key, wrong types, boundary and non-finite numbers, unicode,
bytes in other encodings, ``--set`` strings), loading it either gives a :class:`Config` or
raises a :class:`~rlnas.errors.ConfigError` whose message is one line naming a field, the
file or the ``--set`` flag; never any other exception.

The default profile keeps the test fast; ``RLNAS_HYPOTHESIS_PROFILE=long`` runs many more
examples on demand::

    RLNAS_HYPOTHESIS_PROFILE=long pytest tests/test_config_properties.py

A few of the refused configs also go through the real ``rlnas search`` command, which must
exit 2 with one line on stderr and leave no run in the tracking store.
"""

from __future__ import annotations

import contextlib
import math
import os
import sqlite3
import subprocess
import sys
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from rlnas.config import Config, load_config, to_dict
from rlnas.errors import ConfigError

settings.register_profile(
    "rlnas-default",
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "rlnas-long", parent=settings.get_profile("rlnas-default"), max_examples=2000
)
PROFILE = settings.get_profile(f"rlnas-{os.environ.get('RLNAS_HYPOTHESIS_PROFILE', 'default')}")


def _keys(data: dict, prefix: str = "") -> list[str]:
    out = []
    for k, v in data.items():
        out += _keys(v, f"{prefix}{k}.") if isinstance(v, dict) else [f"{prefix}{k}"]
    return out


DEFAULTS = to_dict(Config())
KEYS = _keys(DEFAULTS)
"""Every config key, dotted (``child.epochs``)."""


def _default(key: str) -> Any:
    """The default value of ``key``, or ``None`` for a made-up key."""
    node: Any = DEFAULTS
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


SECTIONS = sorted({k.split(".")[0] for k in KEYS if "." in k})

BOUNDARY_NUMBERS = st.sampled_from(
    [0, -1, 1, 2, 7, 8, 10, 255, 256, 257, 1024, 1025, 2**31 - 1, 2**31, 2**32 - 1, 2**32]
    + [2**63, -(2**63), 10**30, 0.0, -0.0, 0.5, 1.0, 1e-3, 1e-300, 1e300, 1.5]
    + [math.inf, -math.inf, math.nan]
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    BOUNDARY_NUMBERS,
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["digits", "nb201", "layers", "relu", "adam", "", " ", "1e-3", "null"]),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


def like(default: Any) -> st.SearchStrategy[Any]:
    """Values of the default's kind, often at a boundary: they pass the type checks and
    reach the rules."""
    if isinstance(default, bool):
        return st.booleans()
    if isinstance(default, int):
        return st.one_of(BOUNDARY_NUMBERS.filter(lambda v: isinstance(v, int)), st.integers())
    if isinstance(default, float):
        return st.one_of(BOUNDARY_NUMBERS, st.floats(allow_nan=True, allow_infinity=True))
    if isinstance(default, list) and default:
        return st.lists(like(default[0]) | st.sampled_from(default), min_size=1, max_size=4)
    if isinstance(default, str):
        return st.one_of(st.just(default), st.text(max_size=12), st.just(default + "x"))
    return SCALARS


@st.composite
def config_dicts(draw: st.DrawFn) -> dict[str, Any]:
    """A config mapping: real keys (and some made-up ones) with values of any kind."""
    data: dict[str, Any] = {}
    keys = draw(st.lists(st.sampled_from(KEYS), max_size=6, unique=True))
    keys += draw(st.lists(st.text(max_size=12), max_size=1))
    for key in keys:
        *sections, name = key.split(".")
        node = data
        for s in sections:
            node = node.setdefault(s, {})
            if not isinstance(node, dict):
                break
        else:
            node[name] = draw(st.one_of(like(_default(key)), VALUES))
    if draw(st.booleans()):  # a section replaced by a non-mapping
        data[draw(st.sampled_from(SECTIONS))] = draw(SCALARS)
    return data


def overrides() -> st.SearchStrategy[str]:
    """``--set`` strings: a real or made-up key, ``=`` (usually), and any text or YAML."""
    key = st.one_of(st.sampled_from(KEYS), st.text(max_size=12))
    value = st.one_of(
        st.text(max_size=20),
        VALUES.map(lambda v: yaml.safe_dump(v, default_flow_style=True).strip()),
    )
    return st.one_of(st.tuples(key, value).map("=".join), st.text(max_size=20))


def assert_contract(path, sets) -> None:
    """Loading gives a Config, or one ConfigError line naming a field, the file or --set."""
    try:
        cfg = load_config(path, sets)
    except ConfigError as exc:
        message = str(exc)
        assert message and "\n" not in message and "\r" not in message, message
        assert "`" in message or "--config" in message or "--set" in message, message
    else:
        assert isinstance(cfg, Config)


@PROFILE
@given(data=config_dicts())
def test_generated_configs_load_or_fail_with_one_line(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("cfg") / "c.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    assert_contract(path, ())


@PROFILE
@given(sets=st.lists(overrides(), max_size=4))
def test_generated_overrides_load_or_fail_with_one_line(sets):
    assert_contract(None, sets)


@PROFILE
@given(
    data=config_dicts(),
    encoding=st.sampled_from(["utf-8", "latin-1", "utf-16", "utf-32", "cp1252"]),
    noise=st.binary(max_size=16),
    at=st.integers(min_value=0),
)
def test_generated_bytes_load_or_fail_with_one_line(tmp_path_factory, data, encoding, noise, at):
    text = yaml.safe_dump(data, allow_unicode=True)
    raw = text.encode(encoding, errors="replace")
    at = at % (len(raw) + 1)
    path = tmp_path_factory.mktemp("cfg") / "c.yaml"
    path.write_bytes(raw[:at] + noise + raw[at:])
    assert_contract(path, ())


@PROFILE
@given(text=st.text(max_size=200))
def test_generated_text_loads_or_fails_with_one_line(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("cfg") / "c.yaml"
    path.write_text(text, encoding="utf-8")
    assert_contract(path, ())


@pytest.fixture(scope="module")
def sqlite_store(tmp_path_factory):
    """An SQLite tracking store with MLflow's tables: a run made for refused input shows."""
    mlflow = pytest.importorskip("mlflow")
    db = tmp_path_factory.mktemp("store") / "mlflow.db"
    mlflow.MlflowClient(f"sqlite:///{db}").search_experiments()
    return db


def runs_in(db) -> int:
    with contextlib.closing(sqlite3.connect(db)) as con:
        return con.execute("select count(*) from runs").fetchone()[0]


@settings(PROFILE, max_examples=3 if PROFILE.max_examples < 1000 else 50)
@given(data=config_dicts())
def test_refused_configs_through_the_real_cli(tmp_path_factory, sqlite_store, data):
    """A few generated configs the loader refuses go through ``rlnas search`` itself: exit 2,
    exactly one line on stderr, and no run in the tracking store."""
    data.pop("tracking", None)  # the store under test is the one the search would use
    folder = tmp_path_factory.mktemp("cli")
    path = folder / "c.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    try:
        load_config(path)
    except ConfigError:
        pass
    else:
        assume(False)  # an accepted config would start a search: not this test's business
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{sqlite_store}"}
    proc = subprocess.run(
        [sys.executable, "-m", "rlnas", "search", "--config", str(path), "--no-progress"],
        capture_output=True, text=True, cwd=folder, env=env, timeout=300, errors="replace",
    )  # fmt: skip
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("rlnas: error: "), proc.stderr
    assert runs_in(sqlite_store) == 0
