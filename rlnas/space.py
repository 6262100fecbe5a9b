"""Search spaces: named categorical decisions, declared once and replayed.

A space is a class with one method, :meth:`Space.declare`, that asks a *decider* for every
decision by a stable name and returns a framework-free *blueprint* of the child (a plain
dataclass that a Keras builder turns into a model, or a key for a table look-up)::

    class Tiny(Space):
        name = "tiny"

        def declare(self, d):
            width = d.choice("width", [16, 32, 64])
            act = d.choice("act", ["relu", "gelu"])
            # later decisions may depend on earlier ones: a mask narrows the choices,
            # `active=False` says the decision does not apply to this child.
            drop = d.choice("dropout", [0.0, 0.5], active=width > 16)
            return {"width": width, "act": act, "dropout": drop or 0.0}

The same ``declare`` runs when a strategy samples (the decider asks the strategy) and when a
child is rebuilt from its record (:meth:`Space.replay`: the decider returns the recorded
values and checks them). There is no second decoder.

Rules that make a space usable by every strategy: every run declares the same decisions in
the same order with the same choices (its *signature*); what may vary with earlier values is
the mask and whether a decision is active.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, Union

from rlnas.errors import FieldError, SpaceError, did_you_mean

Value = Union[str, int, float, bool, None]  # noqa: UP007 (a runtime alias)


@dataclass(frozen=True)
class Decision:
    """One named categorical decision of a space's signature."""

    name: str
    choices: tuple[Value, ...]
    step: int

    def index_of(self, value: Value) -> int:
        """Position of ``value`` among the choices (``True`` never matches ``1``)."""
        for i, choice in enumerate(self.choices):
            if type(choice) is type(value) and choice == value:
                return i
            if _is_number(choice) and _is_number(value) and choice == value:
                return i
        raise SpaceError(
            f"decision `{self.name}`: value {value!r} is not one of its choices "
            f"{list(self.choices)}."
        )


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


class Architecture(Mapping[str, Value]):
    """An immutable record of a child: decision name -> chosen value (active decisions only).

    ``canonical_json()`` is the stable text form (sorted keys, no spaces) and ``hash`` a short
    digest of it, equal for equal records on every machine.
    """

    __slots__ = ("_values", "_json", "_hash")

    def __init__(self, values: Mapping[str, Value]) -> None:
        self._values = dict(values)
        self._json = json.dumps(self._values, sort_keys=True, separators=(",", ":"))
        self._hash = hashlib.sha256(self._json.encode()).hexdigest()[:16]

    def __getitem__(self, key: str) -> Value:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Architecture):
            return self._json == other._json
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._json)

    def __repr__(self) -> str:
        return f"Architecture({self._json})"

    @property
    def hash(self) -> str:
        return self._hash

    def canonical_json(self) -> str:
        return self._json

    @classmethod
    def from_json(cls, text: str) -> Architecture:
        return cls(json.loads(text))


@dataclass(frozen=True)
class Sample:
    """What a strategy proposes: the architecture plus how it was drawn.

    ``actions[t]`` is the chosen index of decision ``t`` of the signature (``-1`` when the
    decision was inactive) and ``masks[t]`` the choices that were allowed at that step.
    Learning strategies need both to recompute the probability of what they sampled.
    """

    architecture: Architecture
    actions: tuple[int, ...]
    masks: tuple[tuple[bool, ...], ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "architecture": dict(self.architecture),
            "actions": list(self.actions),
            "masks": [[bool(x) for x in m] for m in self.masks],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Sample:
        return cls(
            Architecture(d["architecture"]),
            tuple(int(a) for a in d["actions"]),
            tuple(tuple(bool(x) for x in m) for m in d["masks"]),
        )


class Decider(Protocol):
    """What ``Space.declare`` receives: one call per decision, returning the chosen value.

    The decider of a run also has the conveniences of :class:`GridChoices` (``int``,
    ``float``, ``bool``), each one categorical decision over a grid.
    """

    def choice(
        self,
        name: str,
        choices: Sequence[Value],
        *,
        mask: Sequence[bool] | None = None,
        active: bool = True,
    ) -> Value: ...


class GridChoices:
    """Decisions over a grid, each one :meth:`choice` (so every strategy handles them).

    ``d.int("depth", 1, 4)`` is one of 1, 2, 3, 4; ``d.float("lr", [1e-3, 3e-3])`` one of
    the values given; ``d.float("dropout", low=0.0, high=0.5, step=0.25)`` one of 0.0, 0.25,
    0.5; ``d.bool("skip")`` False or True. Each takes ``active=`` (``None`` when inactive).
    """

    def choice(
        self,
        name: str,
        choices: Sequence[Value],
        *,
        mask: Sequence[bool] | None = None,
        active: bool = True,
    ) -> Value:
        raise NotImplementedError

    def int(self, name: str, low: int, high: int, step: int = 1, *, active: bool = True):
        """One of ``low, low + step, ..., high`` (``high`` included when on the grid)."""
        if isinstance(step, bool) or not isinstance(step, int) or step < 1 or high < low:
            raise SpaceError(
                f"decision `{name}`: expected integers low <= high and step >= 1, got "
                f"(low={low!r}, high={high!r}, step={step!r})."
            )
        return self.choice(name, list(range(low, high + 1, step)), active=active)

    def float(
        self,
        name: str,
        values: Sequence[float] | None = None,
        *,
        low: float | None = None,
        high: float | None = None,
        step: float | None = None,
        active: bool = True,
    ):
        """One of ``values``, or of the grid ``low, low + step, ..., high``."""
        if values is None:
            if low is None or high is None or step is None or step <= 0 or high < low:
                raise SpaceError(
                    f"decision `{name}`: expected values, or low <= high and step > 0, got "
                    f"(low={low!r}, high={high!r}, step={step!r})."
                )
            count = int(round((high - low) / step))
            values = [round(low + i * step, 12) for i in range(count + 1)]
        return self.choice(name, [float(v) for v in values], active=active)

    def bool(self, name: str, *, active: bool = True):
        """``False`` or ``True``."""
        return self.choice(name, [False, True], active=active)


# chooser(decision, allowed_mask) -> chosen index; called for active decisions only
Chooser = Callable[[Decision, tuple[bool, ...]], int]


class Space(ABC):
    """Base class of every search space. Subclasses set ``name`` and implement ``declare``."""

    name: str = "space"

    @abstractmethod
    def declare(self, d: Decider) -> Any:
        """Ask ``d`` for every decision in a fixed order and return the child's blueprint."""

    # -- derived from declare -------------------------------------------------------------
    @property
    def signature(self) -> tuple[Decision, ...]:
        """Every decision of the space, in declaration order (found by one dry run)."""
        sig = self.__dict__.get("_signature")
        if sig is None:
            run = _Run(self, None, None)
            self.declare(run)
            sig = tuple(run.decisions)
            if not sig:
                raise SpaceError(f"space `{self.name}` declares no decisions.")
            self.__dict__["_signature"] = sig
        return sig

    def describe(self) -> dict[str, Any]:
        """JSON-ready description: the space name and each decision with its choices."""
        return {
            "space": self.name,
            "decisions": [{"name": d.name, "choices": list(d.choices)} for d in self.signature],
        }

    def sample(self, choose: Chooser) -> tuple[Sample, Any]:
        """Run ``declare`` with ``choose`` picking each active decision (sample, blueprint)."""
        run = _Run(self, self.signature, choose)
        blueprint = self.declare(run)
        return run.finish(), blueprint

    def replay(self, values: Mapping[str, Value]) -> tuple[Sample, Any]:
        """Rebuild a child from its record: check every value and return sample, blueprint."""
        signature = self.signature
        names = {d.name for d in signature}
        for key in values:
            if key not in names:
                raise SpaceError(
                    f"architecture has decision `{key}`, which space `{self.name}` does not "
                    "declare." + did_you_mean(key, names)
                )
        run = _Run(self, signature, None, replay=values)
        blueprint = self.declare(run)
        sample = run.finish()
        missing = [k for k in sample.architecture if k not in values]
        if missing:
            raise SpaceError(f"architecture lacks decision `{missing[0]}` of space `{self.name}`.")
        extra = [k for k in values if k not in sample.architecture]
        if extra:
            raise SpaceError(
                f"architecture sets `{extra[0]}`, which is inactive for this child in space "
                f"`{self.name}`."
            )
        return sample, blueprint

    def blueprint(self, values: Mapping[str, Value]) -> Any:
        """The blueprint of a recorded architecture (``replay`` without the sample)."""
        return self.replay(values)[1]

    def widen(self, blueprint: Any, factor: float) -> Any:
        """``blueprint`` with ``factor`` times the filters of every layer, for a final model
        trained wider than the searched child (``final.width_multiplier``). Spaces whose
        blueprints carry widths override this; the rest accept 1 only."""
        self.check_width(factor)
        return blueprint

    def check_width(self, factor: float) -> None:
        """Refuse a ``final.width_multiplier`` this space cannot apply (said when a search
        starts, not when ``rlnas final`` runs): any but 1 unless the space overrides
        :meth:`widen`."""
        if factor != 1 and type(self).widen is Space.widen:
            raise FieldError(
                "final.width_multiplier",
                factor,
                f"1 for space `{self.name}` (its blueprints have no widths rlnas can scale)",
            )


class _Run(GridChoices):
    """A decider for one pass of ``declare``: dry run, sampling or replay."""

    def __init__(
        self,
        space: Space,
        signature: tuple[Decision, ...] | None,
        choose: Chooser | None,
        replay: Mapping[str, Value] | None = None,
    ) -> None:
        self.space = space
        self.signature = signature
        self.choose = choose
        self.replay = replay
        self.decisions: list[Decision] = []
        self.values: dict[str, Value] = {}
        self.actions: list[int] = []
        self.masks: list[tuple[bool, ...]] = []

    def choice(
        self,
        name: str,
        choices: Sequence[Value],
        *,
        mask: Sequence[bool] | None = None,
        active: bool = True,
    ) -> Value:
        step = len(self.actions)
        decision = self._decision(step, name, tuple(choices))
        allowed = self._mask(decision, mask)
        if not active:
            self.actions.append(-1)
            self.masks.append(allowed)
            return None
        if self.replay is not None:
            if name not in self.replay:
                raise SpaceError(
                    f"architecture lacks decision `{name}` of space `{self.space.name}`."
                )
            index = decision.index_of(self.replay[name])
            if not allowed[index]:
                raise SpaceError(
                    f"decision `{name}`: value {self.replay[name]!r} is not allowed after the "
                    f"earlier decisions of this architecture; allowed: "
                    f"{[c for c, ok in zip(decision.choices, allowed) if ok]}."
                )
        elif self.choose is not None:
            index = int(self.choose(decision, allowed))
            if not 0 <= index < len(choices) or not allowed[index]:
                raise SpaceError(f"decision `{name}`: chooser returned a masked index {index}.")
        else:  # dry run for the signature
            index = allowed.index(True)
        self.actions.append(index)
        self.masks.append(allowed)
        self.values[name] = decision.choices[index]
        return decision.choices[index]

    def _decision(self, step: int, name: str, choices: tuple[Value, ...]) -> Decision:
        if not choices:
            raise SpaceError(f"space `{self.space.name}`: decision `{name}` has no choices.")
        if self.signature is None:
            if any(d.name == name for d in self.decisions):
                raise SpaceError(f"space `{self.space.name}` declares `{name}` twice.")
            for c in choices:
                if not isinstance(c, (str, int, float, bool)) and c is not None:
                    raise SpaceError(
                        f"decision `{name}`: choice {c!r} must be a str, int, float, bool or None."
                    )
            decision = Decision(name, choices, step)
            self.decisions.append(decision)
            return decision
        if step >= len(self.signature) or self.signature[step].name != name:
            expected = self.signature[step].name if step < len(self.signature) else "nothing"
            raise SpaceError(
                f"space `{self.space.name}` declared `{name}` at step {step} where its signature "
                f"has `{expected}`: the sequence of decisions must not depend on earlier values "
                "(declare every decision and pass active=False instead)."
            )
        decision = self.signature[step]
        if decision.choices != choices:
            raise SpaceError(
                f"space `{self.space.name}`: decision `{name}` changed its choices from "
                f"{list(decision.choices)} to {list(choices)}; use a mask instead."
            )
        return decision

    def _mask(self, decision: Decision, mask: Sequence[bool] | None) -> tuple[bool, ...]:
        if mask is None:
            return (True,) * len(decision.choices)
        allowed = tuple(bool(m) for m in mask)
        if len(allowed) != len(decision.choices):
            raise SpaceError(
                f"decision `{decision.name}`: mask has {len(allowed)} entries for "
                f"{len(decision.choices)} choices."
            )
        if not any(allowed):
            raise SpaceError(f"decision `{decision.name}`: the mask leaves no choice open.")
        return allowed

    def finish(self) -> Sample:
        if self.signature is not None and len(self.actions) != len(self.signature):
            short = len(self.actions) < len(self.signature)
            missing = self.signature[len(self.actions)].name if short else ""
            raise SpaceError(
                f"space `{self.space.name}` declared {len(self.actions)} decisions, its "
                f"signature has {len(self.signature)}"
                + (f" (`{missing}` was not declared this time)." if missing else ".")
            )
        return Sample(Architecture(self.values), tuple(self.actions), tuple(self.masks))
