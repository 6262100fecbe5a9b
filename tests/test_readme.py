"""The README's configuration reference matches the config classes; its links resolve."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import pytest

from rlnas import config_reference as ref

if TYPE_CHECKING:  # names the annotations below use but that do not resolve at run time
    from collections import OrderedDict as _OnlyForTypeCheckers

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
REFERENCE = ROOT / "docs" / "configuration.md"


class _Bound:
    """A rule object as a declarative bound might be written."""

    def describe(self) -> str:
        return "an integer >= 1"


@dataclass(frozen=True)
class _Inner:
    """A toy section."""

    count: Annotated[int, _Bound()] = 3
    """How many
    things (a docstring over two lines)."""
    ratio: float = field(default=0.5, metadata={"rule": "a number in [0, 1)"})
    """A share."""
    names: tuple[str, ...] = ("a", "b")
    undocumented_flag: bool = False
    from_: str | None = None
    """Where to start from; ``None``: nowhere."""


@dataclass(frozen=True)
class _Root:
    """A toy root."""

    seed: int = 0
    """Seed."""
    mode: Literal["fast", "slow"] = "fast"
    """Mode | with a pipe."""
    inner: _Inner = field(default_factory=_Inner)


@dataclass(frozen=True)
class _Unresolved:
    """A root whose annotations name a type-checking-only import."""

    table: _OnlyForTypeCheckers | None = None
    """A table."""
    inner: _OnlyForTypeCheckers = field(default_factory=_Inner)


def test_readme_reference_matches_the_config_classes() -> None:
    block = ref.current_block(REFERENCE.read_text(encoding="utf-8"))
    assert block == ref.render(), (
        f"docs/configuration.md differs from the config classes; run `{ref.COMMAND}`"
    )


def test_sections_read_fields_types_defaults_docstrings_and_rules() -> None:
    top, inner = ref.sections(_Root)
    assert [f.key for f in top.fields] == ["seed", "mode"]
    assert top.fields[1].type == "fast \\| slow"
    assert inner.name == "inner" and inner.summary == "A toy section."
    by_key = {f.key: f for f in inner.fields}
    assert list(by_key) == [
        "inner.count",
        "inner.ratio",
        "inner.names",
        "inner.undocumented_flag",
        "inner.from",
    ]
    count = by_key["inner.count"]
    assert (count.type, count.default, count.rule) == ("int", "3", "an integer >= 1")
    assert count.doc == "How many\nthings (a docstring over two lines)."
    assert by_key["inner.ratio"].rule == "a number in [0, 1)"
    assert (by_key["inner.names"].type, by_key["inner.names"].default) == ("list of str", "[a, b]")
    assert by_key["inner.undocumented_flag"].doc == ""
    assert by_key["inner.from"].type == "str \\| null"
    assert by_key["inner.from"].default == "null"


def test_render_writes_one_row_per_field_in_markdown() -> None:
    text = ref.render(_Root)
    assert "| `inner.count` | int | `3` | How many things (a docstring over two lines). " in text
    assert "Allowed: an integer >= 1." in text
    row = "| `inner.from` | str \\| null | `null` | Where to start from; `null`: nowhere. |"
    assert row in text
    assert "| `inner.undocumented_flag` | bool | `false` | — |" in text
    assert "Mode \\| with a pipe." in text
    assert "| **`inner`** | | | *A toy section.* |" in text


def test_check_fails_on_a_stale_block_and_write_mends_it(tmp_path, capsys) -> None:
    doc = tmp_path / "README.md"
    doc.write_text(f"# x\n\nbefore\n{ref.START}\nstale\n{ref.END}\nafter\n", encoding="utf-8")
    assert ref.main(["--check", str(doc)]) == 1
    assert ref.COMMAND in capsys.readouterr().out
    assert ref.main(["--write", str(doc)]) == 0
    assert ref.main(["--check", str(doc)]) == 0
    text = doc.read_text(encoding="utf-8")
    assert text.startswith("# x\n\nbefore\n") and text.endswith(f"{ref.END}\nafter\n")
    assert "stale" not in text


def test_missing_markers_are_an_error() -> None:
    with pytest.raises(ValueError, match="markers"):
        ref.splice("no markers here", "x")


def test_readme_names_make_targets_that_exist_and_links_that_resolve() -> None:
    text = README.read_text(encoding="utf-8")
    targets = set(re.findall(r"^([a-z]+):", (ROOT / "Makefile").read_text(), re.M))
    for target in re.findall(r"`make (\w+)`|^make (\w+)", text, re.M):
        assert (target[0] or target[1]) in targets
    assert {"search", "test"} <= targets
    for link in re.findall(r"\]\(([^)#:]+)\)", text):
        assert (ROOT / link).exists(), f"README links to {link}, which does not exist"


def test_unresolvable_annotations_fall_back_to_their_text() -> None:
    top, inner = ref.sections(_Unresolved)
    assert [(f.key, f.type, f.doc) for f in top.fields] == [
        ("table", "_OnlyForTypeCheckers | None", "A table.")
    ]
    assert inner.name == "inner" and inner.fields[0].key == "inner.count"
