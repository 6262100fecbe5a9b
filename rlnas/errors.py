"""The error hierarchy of rlnas: the class of an error decides what happens next.

* :class:`ConfigError` and :class:`DataError` stop a command before any work starts.
* :class:`ChildFailure` fails one child only; the search goes on.
* :class:`SearchAborted` stops a search cleanly, with its state saved.

The CLI turns every :class:`RlnasError` into one line on stderr and exit status 2.
Messages state the rule, show the value and, where possible, suggest the fix.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class RlnasError(Exception):
    """Base class of every error rlnas raises on purpose (never for its own bugs)."""

    exit_code = 2


class ConfigError(RlnasError, ValueError):
    """A config value, CLI flag or file breaks a rule. Raised before any work starts."""


class DataError(RlnasError, ValueError):
    """A data set cannot be used as given (shapes, NaNs, a single class, no files)."""


class SpaceError(RlnasError, ValueError):
    """A search space or an architecture breaks the space's rules."""


class ControllerError(RlnasError):
    """A saved controller cannot be loaded (missing or corrupt file, mismatching space)."""


class TrackingError(RlnasError):
    """The tracking store cannot be reached or does not hold what was asked for."""


class SearchAborted(RlnasError):
    """The search stopped on purpose (too many failures, interrupted); its state is saved."""


class ChildFailure(Exception):
    """One child failed (unbuildable, NaN loss, exception, timeout). Only that child ends.

    ``reason`` is a short machine-friendly word (``unbuildable``, ``nan_loss``, ``exception``,
    ``timeout``, ``worker_died``) and the message says what happened.
    """

    def __init__(self, reason: str, message: str, texts: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.texts = dict(texts or {})
        """Text artifacts of the failed child (``traceback.txt`` of an error in user code)."""

    def __reduce__(self):  # picklable across worker processes
        return (ChildFailure, (self.reason, self.message, self.texts))


def did_you_mean(value: str, valid: Iterable[str]) -> str:
    """Return ``" Did you mean `x`?"`` for the closest valid string, or ``""``."""
    close = difflib.get_close_matches(str(value), list(valid), n=1, cutoff=0.5)
    return f" Did you mean `{close[0]}`?" if close else ""


def unknown_name(field: str, value: object, valid: Iterable[str]) -> ConfigError:
    """A ConfigError for a name that is not one of ``valid``, with a suggestion."""
    valid = sorted(valid)
    return ConfigError(
        f"{field}: unknown value {value!r}; expected one of {', '.join(valid)}."
        + did_you_mean(str(value), valid)
    )


class FieldError(ConfigError):
    """A config field breaks a rule; the loader adds the section to ``field``."""

    def __init__(self, field: str, value: object, expected: str, hint: str = "") -> None:
        self.field = field
        self.value = value
        self.expected = expected
        self.hint = hint
        super().__init__(f"`{field}`: expected {expected}, got {value!r}.{hint}")

    def within(self, section: str) -> FieldError:
        name = f"{section}.{self.field}" if section else self.field
        return FieldError(name, self.value, self.expected, self.hint)


def require(ok: bool, field: str, value: object, expected: str, hint: str = "") -> None:
    """Raise :class:`FieldError` unless ``ok`` (used by the config dataclasses' checks)."""
    if not ok:
        raise FieldError(field, value, expected, hint)


MAY_BE_EMPTY = "may_be_empty"
"""Metadata key of a config field whose list may be empty (``dataclasses.field(metadata=
{MAY_BE_EMPTY: True})``); every other list in a config is a choice list and may not."""


def require_one_of(field: str, value: object, valid: Iterable[str]) -> None:
    """Raise :class:`FieldError` unless ``value`` is one of ``valid`` (with a suggestion)."""
    valid = list(valid)
    if value not in valid:
        raise FieldError(
            field, value, "one of " + ", ".join(valid), did_you_mean(str(value), valid)
        )
