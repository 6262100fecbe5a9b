"""Your own search space: a ``build(d, spec) -> keras.Model`` function, define-by-run.

The function declares its decisions with the decider ``d`` as it builds the model, exactly
as the built-in spaces do (:mod:`rlnas.space`)::

    def build(d, spec):
        inputs = keras.Input(spec.input_shape)
        x = keras.layers.Flatten()(inputs)
        for i in range(d.int("depth", 1, 3)):
            x = keras.layers.Dense(d.choice(f"units_{i}", [32, 64]), activation="relu")(x)
        if d.bool("dropout"):
            x = keras.layers.Dropout(d.float("rate", [0.2, 0.5], active=True))(x)
        outputs = keras.layers.Dense(spec.num_classes, activation="softmax")(x)
        return keras.Model(inputs, outputs)

Every call must declare the same decisions in the same order with the same choices (a
decision that does not apply is declared with ``active=False``); a call that declares others
is refused with a message naming the decision. Above, ``units_1`` and ``units_2`` would break
that rule: declare them on every call with ``active=i < depth``.

Sampling is cheap: once the signature is known (from one full dry build), a sample or replay
stops the function right after its last decision (:class:`_Enough`), so the Keras layers it
would build after that are never made. The child's model is made by running the whole
function with the recorded values (:meth:`UserBlueprint.build`, in the evaluator). An error
in the function while sampling fills the remaining decisions as the strategy chooses, so the
child fails in the evaluator, where its traceback is kept (``traceback.txt``).

The child is compiled by rlnas as the built-in spaces' children are: decisions named
``train/learning_rate``, ``train/batch_size``, ``train/optimizer`` and ``train/weight_decay``
set those (:func:`rlnas.spaces.training.declare_training` declares them all), else the
defaults of :class:`~rlnas.spaces.training.TrainingSpec`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from rlnas.errors import FieldError, RlnasError
from rlnas.space import GridChoices, Space, Value, _Run
from rlnas.spaces.training import TrainingSpec

if TYPE_CHECKING:
    from rlnas.tasks import TaskSpec

Build = Callable[[Any, "TaskSpec"], Any]


class _Enough(BaseException):
    """Raised in the user's function after its last decision (a BaseException, so that an
    ``except Exception`` in the user's code does not swallow it)."""


class _StopAfter(GridChoices):
    """A decider that passes every decision on and stops the function after ``count``."""

    def __init__(self, run: _Run, count: int) -> None:
        self.run = run
        self.count = count

    def choice(
        self,
        name: str,
        choices: Sequence[Value],
        *,
        mask: Sequence[bool] | None = None,
        active: bool = True,
    ) -> Value:
        value = self.run.choice(name, choices, mask=mask, active=active)
        if len(self.run.actions) >= self.count:
            raise _Enough
        return value


@dataclass(frozen=True)
class UserBlueprint:
    """A child of a user's space: its decisions and training, and how to build its model."""

    decisions: Mapping[str, Value]
    training: TrainingSpec
    space: UserSpace = field(compare=False, repr=False)

    def build(self) -> Any:
        """The child's Keras model: the user's function run with the recorded values; a
        result that is no Keras model, or whose output does not fit the task, raises."""
        run = _Run(self.space, self.space.signature, None, replay=dict(self.decisions))
        model = self.space.build_fn(run, self.space.spec)
        self.space.check_model(model)
        return model


@dataclass(frozen=True)
class UserSpaceSettings:
    """What identifies a user's space in an evaluator's fingerprint: its import path and a
    digest of its function's source (an edited function earns no cached rewards)."""

    build: str
    source: str


class UserSpace(Space):
    """A space made of a user's ``build(d, spec)`` function (see the module's docstring)."""

    def __init__(self, build: Build, spec: TaskSpec, name: str | None = None) -> None:
        self.build_fn = build
        self.spec = spec
        self.name = name or f"{build.__module__}:{getattr(build, '__qualname__', 'build')}"
        self.cfg = UserSpaceSettings(self.name, _source_digest(build))

    def declare(self, d: Any) -> UserBlueprint:
        signature = self.__dict__.get("_signature")
        if signature is None:  # the dry run that finds the signature: the whole function
            self.__dict__["_dry_model"] = self.build_fn(d, self.spec)
        else:
            try:
                self.build_fn(_StopAfter(d, len(signature)), self.spec)
            except _Enough:
                pass
            except RlnasError:
                raise
            except Exception:  # the evaluator fails this child, keeping the traceback
                _fill(d, signature)
        return UserBlueprint(dict(d.values), training_of(d.values), self)

    def check(self) -> None:
        """Run the function once (every decision at its first choice): it must declare
        decisions and return a Keras model, else one FieldError naming ``space``."""
        try:
            self.signature  # noqa: B018  (the dry run)
        except RlnasError:
            raise
        except Exception as exc:
            raise FieldError(
                "space",
                self.name,
                "a build(d, spec) function that builds a model with every decision at its "
                f"first choice; it raised {type(exc).__name__}: {_first_line(exc)}",
            ) from None
        model = self.__dict__.pop("_dry_model", None)
        if not _is_keras_model(model):
            raise FieldError(
                "space",
                self.name,
                f"a build(d, spec) function that returns a keras.Model; it returned "
                f"{type(model).__name__}",
            )

    def check_model(self, model: Any) -> None:
        """Raise ValueError unless ``model`` is a Keras model with one output per class (or,
        for a regression, per target)."""
        if not _is_keras_model(model):
            raise ValueError(f"build returned {type(model).__name__}, not a keras.Model")
        shape = tuple(model.outputs[0].shape) if getattr(model, "outputs", None) else ()
        if shape[-1:] != (self.spec.outputs,):
            unit = "class" if self.spec.task == "classification" else "target"
            raise ValueError(
                f"the model's output has shape {shape}; expected (None, "
                f"{self.spec.outputs}): one unit per {unit} of the task"
            )


def training_of(values: Mapping[str, Value]) -> TrainingSpec:
    """The child's training from its ``train/*`` decisions (defaults for the rest)."""
    known = {f.name for f in fields(TrainingSpec)}
    chosen = {k[6:]: v for k, v in values.items() if k.startswith("train/") and k[6:] in known}
    return TrainingSpec(**chosen)  # type: ignore[arg-type]


def _fill(run: _Run, signature: Sequence[Any]) -> None:
    """Declare the decisions a failed function did not reach: chosen by the strategy when
    sampling, the recorded values on replay (absent ones inactive)."""
    for decision in signature[len(run.actions) :]:
        active = run.replay is None or decision.name in run.replay
        run.choice(decision.name, decision.choices, active=active)


def _source_digest(fn: Any) -> str:
    """A short digest of ``fn``'s source code ("" when Python cannot show it)."""
    import hashlib
    import inspect

    try:
        text = inspect.getsource(fn)
    except (OSError, TypeError):
        return ""
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _is_keras_model(obj: Any) -> bool:
    import keras  # lazy: only a user's Keras function needs it, and it has imported Keras

    return isinstance(obj, keras.Model)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


__all__ = ["UserBlueprint", "UserSpace", "training_of"]
