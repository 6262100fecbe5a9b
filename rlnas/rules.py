"""Declarative rules of config fields: each field states its rule once, beside its type.

A config section annotates a field with its rule and calls :func:`check_fields` first thing in
``__post_init__``; the error message is generated from the rule, so the rule and what a user
reads cannot drift apart::

    @dataclass(frozen=True)
    class Section:
        hidden_size: Annotated[int, Range(ge=1, le=1024)] = 64
        rates: Annotated[tuple[float, ...], Range(gt=0)] = (1e-3,)

    Section(hidden_size=10**12)
    # FieldError: `hidden_size`: expected an integer in 1..1024, got 1000000000000.

A ``Literal`` type is a :class:`OneOf` rule of its own. A rule on a list applies to each of
its values; ``None`` passes every rule of an optional field. Three rules hold for every numeric
field without being written: numbers are finite (no ``.inf``, no ``.nan``) and not subnormal
(``1e-320``: no setting means a number below :data:`TINY`); integers without an upper bound of
their own fit in a signed 32-bit integer (:data:`INT_LIMIT`), the widest the frameworks
downstream take for counts and sizes; and other numbers without a bound of their own stay
within :data:`FLOAT_LIMIT` (a learning rate of ``1e300`` is a typo, not a setting). Rules
that tie two fields together stay as :func:`~rlnas.errors.require` calls in ``__post_init__``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import sys
import typing
from dataclasses import dataclass
from typing import Any

from rlnas.errors import FieldError, did_you_mean

INT_LIMIT = 2**31 - 1
"""Largest integer any config field accepts (also the smallest is ``-INT_LIMIT``)."""
FLOAT_LIMIT = 1e15
"""Largest magnitude a number field without a bound of its own accepts."""
TINY = sys.float_info.min
"""Smallest non-zero magnitude any number field accepts (the smallest normal double)."""


def _num(x: float) -> str:
    if isinstance(x, float) and abs(x) >= 1e15:
        return f"{x:g}"
    return str(int(x)) if float(x).is_integer() else repr(float(x))


@dataclass(frozen=True)
class Range:
    """Bounds of a number: ``ge``/``gt`` below, ``le``/``lt`` above (any may be left out).

    ``unit`` names what is counted ("seconds": "a positive number of seconds"); ``note`` is
    added in parentheses (a paper's value, what 0 means).
    """

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    unit: str = ""
    note: str = ""

    def ok(self, v: float) -> bool:
        return not (
            (self.ge is not None and v < self.ge)
            or (self.gt is not None and v <= self.gt)
            or (self.le is not None and v > self.le)
            or (self.lt is not None and v >= self.lt)
        )

    def describe(self, integer: bool, plural: bool = False, finite: bool = False) -> str:
        """The rule in words: "an integer in 1..1024", "numbers > 0", "a number in [0, 1)"."""
        noun = "number" if not integer else "integer number" if self.unit else "integer"
        noun = ("finite " if finite and not integer else "") + noun + ("s" if plural else "")
        noun += f" of {self.unit}" if self.unit else ""
        lo = self.ge if self.ge is not None else self.gt
        hi = self.le if self.le is not None else self.lt
        if self.unit and self.gt == 0 and hi is None:
            text, bounds = "positive " + noun, ""
        else:
            text = noun
            if lo is not None and hi is not None and integer:
                a = self.ge if self.ge is not None else self.gt + 1
                b = self.le if self.le is not None else self.lt - 1
                bounds = f"in {_num(a)}..{_num(b)}"
            elif lo is not None and hi is not None:
                left = "[" if self.ge is not None else "("
                right = "]" if self.le is not None else ")"
                bounds = f"in {left}{_num(lo)}, {_num(hi)}{right}"
            elif lo is not None:
                bounds = f"{'>=' if self.ge is not None else '>'} {_num(lo)}"
            elif hi is not None:
                bounds = f"{'<=' if self.le is not None else '<'} {_num(hi)}"
            else:
                bounds = ""
        if not plural:
            text = ("an " if text[0] in "aeiou" else "a ") + text
        out = f"{text} {bounds}".rstrip()
        return out + (f" ({self.note})" if self.note else "")


@dataclass(frozen=True)
class OneOf:
    """A name from a fixed vocabulary (a suggestion is offered for a near miss)."""

    values: tuple[Any, ...]

    def ok(self, v: Any) -> bool:
        return v in self.values

    def describe(self, integer: bool = False, plural: bool = False, finite: bool = False) -> str:
        words = ", ".join(map(str, self.values))
        return ("values among " if plural else "one of ") + words


@dataclass(frozen=True)
class NonEmpty:
    """A string with something other than white space in it."""

    what: str = "string"

    def ok(self, v: Any) -> bool:
        return bool(str(v).strip())

    def describe(self, integer: bool = False, plural: bool = False, finite: bool = False) -> str:
        return f"non-empty {self.what}s" if plural else f"a non-empty {self.what}"


@dataclass(frozen=True)
class NameOrPath:
    """A built-in name, or an import path ``package.module:attribute`` to the user's own,
    or ``path/to/file.py:attribute`` (resolved when the search is prepared,
    :mod:`rlnas.registry`)."""

    values: tuple[str, ...]
    what: str = "object"

    def ok(self, v: Any) -> bool:
        if v in self.values:
            return True
        module, sep, attr = str(v).rpartition(":")
        if module.endswith(".py"):  # a file: any path
            return bool(sep) and all(n.isidentifier() for n in attr.split("."))
        names = [*module.split("."), *attr.split(".")]
        return bool(sep) and all(n.isidentifier() for n in names)

    def describe(self, integer: bool = False, plural: bool = False, finite: bool = False) -> str:
        return (
            f"one of {', '.join(self.values)}, or an import path package.module:{self.what} "
            f"(or path/to/file.py:{self.what})"
        )


Rule = Range | OneOf | NonEmpty | NameOrPath


@dataclass(frozen=True)
class _FieldRules:
    name: str
    kind: type  # int, float, str, bool or object (the type of one value)
    plural: bool
    optional: bool
    rules: tuple[Rule, ...]


def _unpack(tp: Any) -> tuple[Any, tuple[Rule, ...], bool, bool]:
    """(value type, rules, optional, plural) of a field's annotation."""
    rules: tuple[Rule, ...] = ()
    if typing.get_origin(tp) is typing.Annotated:
        tp, *extra = typing.get_args(tp)
        rules = tuple(r for r in extra if isinstance(r, (Range, OneOf, NonEmpty, NameOrPath)))
    args = typing.get_args(tp)
    optional = type(None) in args
    if optional:
        inner = [a for a in args if a is not type(None)]
        tp = inner[0] if len(inner) == 1 else object
    plural = typing.get_origin(tp) is tuple
    if plural:
        items = [a for a in typing.get_args(tp) if a is not Ellipsis]
        tp = items[0] if items and all(a == items[0] for a in items) else object
    if typing.get_origin(tp) is typing.Literal:  # a Literal is a vocabulary of its own
        rules = (OneOf(typing.get_args(tp)), *rules)
        tp = object
    return tp, rules, optional, plural


@functools.cache
def field_rules(cls: type) -> tuple[_FieldRules, ...]:
    """The rules of every field of config dataclass ``cls`` (read once per class)."""
    hints = typing.get_type_hints(cls, include_extras=True)
    out = []
    for f in dataclasses.fields(cls):
        tp, rules, optional, plural = _unpack(hints[f.name])
        kind = tp if tp in (int, float, str, bool) else object
        out.append(_FieldRules(f.name, kind, plural, optional, rules))
    return tuple(out)


def rule_of(cls: type, name: str) -> str:
    """Field ``name``'s rule in words, as an error would state it (for generated docs)."""
    for fr in field_rules(cls):
        if fr.name == name:
            text = " and ".join(r.describe(fr.kind is int, fr.plural) for r in fr.rules)
            return text + (" or null" if fr.optional and text else "")
    raise KeyError(name)


def check_fields(obj: Any) -> None:
    """Raise :class:`FieldError` for the first field of ``obj`` that breaks its rule."""
    for fr in field_rules(type(obj)):
        value = getattr(obj, fr.name)
        if value is None:
            continue
        for v in value if fr.plural and isinstance(value, tuple) else (value,):
            _check_value(fr, v)


def _check_value(fr: _FieldRules, v: Any) -> None:
    tail = " or null" if fr.optional else ""
    integer = fr.kind is int
    if isinstance(v, float) and not math.isfinite(v):
        ranges = [r for r in fr.rules if isinstance(r, Range)]
        text = ranges[0].describe(False, fr.plural, finite=True) if ranges else None
        text = text or ("finite numbers" if fr.plural else "a finite number")
        raise FieldError(fr.name, v, text + tail)
    for rule in fr.rules:
        if not rule.ok(v):
            named = isinstance(rule, (OneOf, NameOrPath))
            hint = did_you_mean(str(v), map(str, rule.values)) if named else ""
            raise FieldError(fr.name, v, rule.describe(integer, fr.plural) + tail, hint)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or fr.kind not in (int, float):
        return
    if isinstance(v, float) and 0 < abs(v) < TINY:
        expected = f"a number of magnitude 0 or at least {TINY:.1e} (not subnormal)"
        raise FieldError(fr.name, v, expected + tail)
    ranges = [r for r in fr.rules if isinstance(r, Range)]
    limit = INT_LIMIT if integer else FLOAT_LIMIT
    below = any((r.ge, r.gt) != (None, None) for r in ranges)
    above = any((r.le, r.lt) != (None, None) for r in ranges)
    if (v > limit and not above) or (v < -limit and not below):
        widest = ranges[0] if ranges else Range()
        widest = dataclasses.replace(widest, le=limit, lt=None) if not above else widest
        widest = dataclasses.replace(widest, ge=-limit, gt=None) if not below else widest
        raise FieldError(fr.name, v, widest.describe(integer, fr.plural) + tail)
