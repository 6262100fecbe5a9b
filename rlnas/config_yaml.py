"""Reading config YAML strictly and defensively: every bad file becomes one clear line.

* Numbers follow YAML 1.2 as well as PyYAML's YAML 1.1: ``1e-3`` is a float, not the
  string ``"1e-3"`` (YAML 1.1 wants ``1.0e-3``).
* A key given twice in one mapping is an error naming the key and its line (PyYAML would
  silently keep the last value).
* A config file must be a regular file of UTF-8 text holding a mapping; a folder, a device,
  a file in another encoding or an empty file is refused with what it is.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Any

import yaml

from rlnas.errors import ConfigError

MAX_BYTES = 1 << 20
"""Largest config file read (1 MiB; a config is a few kilobytes)."""

_FLOAT_12 = re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$")
"""Floats with an exponent but no dot (``1e-3``): YAML 1.2 floats that YAML 1.1 misses."""


class DuplicateKey(yaml.YAMLError):
    """A mapping gives the same key twice."""

    def __init__(self, key: str, line: int) -> None:
        super().__init__(f"key `{key}` is given twice (line {line}); give each key once")
        self.key = key
        self.line = line


class StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2 floats and duplicate keys refused."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set[tuple[str, str]] = set()
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                continue
            key = (key_node.tag, key_node.value)
            if key in seen:
                raise DuplicateKey(key_node.value, key_node.start_mark.line + 1)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


StrictLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_12, list("-+.0123456789"))

_PARSE_ERRORS = (yaml.YAMLError, ValueError, TypeError, OverflowError, RecursionError)
"""What PyYAML raises on bad input: its own errors, and Python's from its constructors
(``2020-13-01`` as a date, an integer too long to convert, nesting too deep)."""


def parse_yaml(text: str) -> Any:
    """``text`` parsed strictly; :class:`DuplicateKey` or one of :data:`_PARSE_ERRORS`."""
    return yaml.load(text, Loader=StrictLoader)  # noqa: S506 - a SafeLoader subclass


def parse_value(raw: str) -> Any:
    """A ``--set`` value: YAML if it parses (``2``, ``1e-3``, ``[8, 16]``), else the string."""
    if not raw.strip():
        return None
    try:
        return parse_yaml(raw)
    except DuplicateKey:
        raise
    except _PARSE_ERRORS:
        return raw


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def read_text(path: str | os.PathLike) -> str:
    """The text of config file ``path``: a regular file of UTF-8 text, at most 1 MiB."""
    p = Path(path)
    shown = repr(str(p))
    try:
        st = p.stat()
    except FileNotFoundError:
        raise ConfigError(f"--config: file {shown} does not exist.") from None
    except OSError as exc:
        raise ConfigError(f"--config: cannot read {shown}: {exc.strerror or exc}.") from None
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(f"--config: {shown} is {_kind(st.st_mode)}; expected a YAML file.")
    if st.st_size > MAX_BYTES:
        raise ConfigError(
            f"--config: {shown} holds {st.st_size} bytes; a config file is at most "
            f"{MAX_BYTES} bytes of YAML."
        )
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"--config: cannot read {shown}: {exc.strerror or exc}.") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"--config: {shown} is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset "
            f"{exc.start}); a config file must be UTF-8 text."
        ) from None
    if "\x00" in text:
        at = text.index("\x00")
        raise ConfigError(
            f"--config: {shown} is not UTF-8 text (a NUL character at offset {at}); "
            "a config file must be UTF-8 text."
        )
    return text


def read_mapping(path: str | os.PathLike) -> dict[str, Any]:
    """Config file ``path`` as a mapping of sections; :class:`ConfigError` for anything else."""
    shown = repr(str(Path(path)))
    text = read_text(path)
    try:
        loaded = parse_yaml(text)
    except DuplicateKey as exc:
        raise ConfigError(f"--config: {shown}: {exc}.") from None
    except _PARSE_ERRORS as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ConfigError(f"--config: {shown} is not valid YAML: {first}") from None
    if loaded is None:
        raise ConfigError(
            f"--config: config file {shown} is empty (or only comments); write the settings "
            "to change, e.g. `child: {epochs: 2}`, or `{}` for all the defaults."
        )
    if not isinstance(loaded, dict):
        raise ConfigError(
            f"--config: {shown} must hold a mapping of sections, got {type(loaded).__name__}."
        )
    return loaded
