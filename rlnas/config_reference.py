"""The configuration reference (docs/configuration.md), generated from the config dataclasses.

Every section of :class:`rlnas.config.Config` is a dataclass whose fields carry their
documentation as attribute docstrings (a string literal right after the field). This module
reads those docstrings from each class's own source, wherever the class is defined, and
renders them as one Markdown table, section by section: YAML key, type, default and meaning,
plus the field's rule when the field declares one (``field(metadata={"rule": ...})`` or an
``Annotated[...]`` extra). docs/configuration.md holds the result between two markers, and
a test fails when it drifts from the classes::

    python -m rlnas.config_reference              # print the reference
    python -m rlnas.config_reference --write docs/configuration.md
    python -m rlnas.config_reference --check docs/configuration.md
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import keyword
import sys
import textwrap
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlnas.rules import rule_of

START = "<!-- config-reference:start -->"
END = "<!-- config-reference:end -->"
COMMAND = "python -m rlnas.config_reference --write docs/configuration.md"
RULE_KEY = "rule"


@dataclass(frozen=True)
class FieldDoc:
    """One documented field: its YAML key, type, default, meaning and rule (if declared)."""

    key: str
    type: str
    default: str
    doc: str
    rule: str | None = None


@dataclass(frozen=True)
class SectionDoc:
    """One config section: its YAML name ("" for top-level keys), summary and fields."""

    name: str
    summary: str
    fields: tuple[FieldDoc, ...]


def attribute_docstrings(cls: type) -> dict[str, str]:
    """Map each field of ``cls`` (or of a base it inherits the field from) to the string
    literal written right after it."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__[:-1]):
        docs.update(_own_docstrings(klass))
    return docs


def _own_docstrings(cls: type) -> dict[str, str]:
    """The attribute docstrings written in ``cls``'s own body."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    node = ast.parse(source).body[0]
    docs: dict[str, str] = {}
    body = getattr(node, "body", [])
    for stmt, following in zip(body, body[1:]):
        if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)):
            continue
        if (
            isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            docs[stmt.target.id] = inspect.cleandoc(following.value.value)
    return docs


def yaml_key(name: str) -> str:
    """The YAML spelling of a field: ``from_`` is written ``from`` (a Python keyword)."""
    if name.endswith("_") and keyword.iskeyword(name[:-1]):
        return name[:-1]
    return name


def describe_type(tp: Any) -> str:
    """A short, user-facing spelling of a type hint (``Annotated`` extras left out)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Annotated:
        return describe_type(args[0])
    if origin is typing.Literal:
        return " \\| ".join(str(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        parts = [describe_type(a) for a in args if a is not type(None)]
        text = " \\| ".join(parts)
        return text + " \\| null" if type(None) in args else text
    if origin in (tuple, list) or tp in (tuple, list):
        if len(args) == 2 and args[1] is Ellipsis:
            return f"list of {describe_type(args[0])}"
        if args:
            return "[" + ", ".join(describe_type(a) for a in args) + "]"
        return "list"
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp).replace("typing.", ""))


def yaml_value(value: Any) -> str:
    """A default as it would be written in a config file."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(yaml_value(v) for v in value) + "]"
    return str(value)


def _rule_text(obj: Any) -> str | None:
    """The rule an object states: a string, or anything with ``describe()`` or ``expected``."""
    if isinstance(obj, str):
        return obj
    describe = getattr(obj, "describe", None)
    if callable(describe):
        return str(describe())
    expected = getattr(obj, "expected", None)
    return expected if isinstance(expected, str) else None


def _declared_rule(cls: type, f: dataclasses.Field, hint: Any) -> str | None:
    """The rule as the config's own check states it (``rlnas.rules``), else as declared."""
    try:
        text = rule_of(cls, f.name)
    except (KeyError, TypeError, NameError):
        text = ""
    return text or field_rule(f, hint)


def field_rule(f: dataclasses.Field, hint: Any) -> str | None:
    """The rule a field declares in its metadata or ``Annotated`` extras, if any."""
    if RULE_KEY in f.metadata:
        return _rule_text(f.metadata[RULE_KEY])
    if typing.get_origin(hint) is typing.Annotated:
        for extra in typing.get_args(hint)[1:]:
            text = _rule_text(extra)
            if text:
                return text
    return None


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def _section_class(f: dataclasses.Field, hint: Any) -> type | None:
    """The dataclass a field holds when it is a section (by its type, else its factory)."""
    for candidate in (hint, f.default_factory):
        if isinstance(candidate, type) and dataclasses.is_dataclass(candidate):
            return candidate
    return None


def _hints(cls: type) -> dict[str, Any]:
    """Resolved type hints of ``cls``; the annotations as written when they do not resolve."""
    try:
        return typing.get_type_hints(cls, include_extras=True)
    except (NameError, TypeError):
        return {f.name: f.type for f in dataclasses.fields(cls)}


def document_fields(cls: type, prefix: str = "") -> tuple[FieldDoc, ...]:
    """The plain (non-section) fields of dataclass ``cls``, keys prefixed by ``prefix``."""
    hints = _hints(cls)
    docs = attribute_docstrings(cls)
    out = []
    for f in dataclasses.fields(cls):
        hint = hints.get(f.name, f.type)
        nested = _section_class(f, hint)
        if nested is not None:
            if prefix:  # a sub-section (``child.latency``): its keys in place
                out.extend(document_fields(nested, prefix + yaml_key(f.name) + "."))
            continue
        default = _default(f)
        out.append(
            FieldDoc(
                key=prefix + yaml_key(f.name),
                type=describe_type(hint),
                default="(required)" if default is dataclasses.MISSING else yaml_value(default),
                doc=docs.get(f.name, ""),
                rule=_declared_rule(cls, f, hint),
            )
        )
    return tuple(out)


def sections(root: type | None = None) -> list[SectionDoc]:
    """The top-level keys of ``root`` (default: ``rlnas.config.Config``), then each section."""
    if root is None:
        from rlnas.config import Config

        root = Config
    hints = _hints(root)
    root_docs = attribute_docstrings(root)
    out = [SectionDoc("", "Top-level keys.", document_fields(root))]
    for f in dataclasses.fields(root):
        section = _section_class(f, hints.get(f.name, f.type))
        if section is not None:
            summary = inspect.cleandoc(section.__doc__ or "")
            if summary.startswith(section.__name__ + "("):  # the generated signature
                summary = ""
            summary = summary or root_docs.get(f.name, "")
            name = yaml_key(f.name)
            out.append(SectionDoc(name, summary, document_fields(section, name + ".")))
    return out


def _cell(text: str) -> str:
    """Markdown table cell: one line, RST literals as code, pipes escaped."""
    text = " ".join(text.split()).replace("``", "`")
    for python, yaml_word in (("None", "null"), ("True", "true"), ("False", "false")):
        text = text.replace(f"`{python}`", f"`{yaml_word}`")
    return text.replace("|", "\\|").replace("\\\\|", "\\|")


def render(root: type | None = None) -> str:
    """The whole reference as one Markdown table, a bold row opening each section."""
    rows = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for section in sections(root):
        if section.name:
            rows.append(f"| **`{section.name}`** | | | *{_cell(section.summary)}* |")
        for fd in section.fields:
            meaning = _cell(fd.doc) if fd.doc else "—"
            if fd.rule:
                meaning += f" Allowed: {_cell(fd.rule)}."
            rows.append(f"| `{fd.key}` | {_cell(fd.type)} | `{_cell(fd.default)}` | {meaning} |")
    return "\n".join(rows) + "\n"


def splice(text: str, block: str) -> str:
    """``text`` with everything between the markers replaced by ``block``."""
    start, end = text.find(START), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"the markers {START} and {END} are missing or out of order")
    return text[: start + len(START)] + "\n" + block.rstrip("\n") + "\n" + text[end:]


def current_block(text: str) -> str:
    """What the markers of ``text`` enclose now."""
    start, end = text.find(START), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"the markers {START} and {END} are missing or out of order")
    return text[start + len(START) : end].strip("\n") + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rlnas.config_reference", description=__doc__.splitlines()[0]
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", metavar="FILE", help="rewrite the block between the markers")
    mode.add_argument("--check", metavar="FILE", help="exit 1 when the block is out of date")
    args = parser.parse_args(argv)
    block = render()
    if not (args.write or args.check):
        sys.stdout.write(block)
        return 0
    path = Path(args.write or args.check)
    text = path.read_text(encoding="utf-8")
    if args.check:
        if current_block(text) == block:
            return 0
        print(f"{path}: the configuration reference is out of date; run `{COMMAND}`.")
        return 1
    path.write_text(splice(text, block), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
