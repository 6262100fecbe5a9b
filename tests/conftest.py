"""Shared test set-up: an isolated default tracking store, a toy space and a toy evaluator.

The toys let the search loop, the strategies and the tracker run in milliseconds with no
Keras: the reward is a formula over the decisions (as NNI tests its strategies).
"""

from __future__ import annotations

import os

import pytest

from rlnas.errors import ChildFailure
from rlnas.space import Architecture, Space
from rlnas.trial import Outcome

# quiet the frameworks in this process and in the CLI subprocesses the tests start
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")


@pytest.fixture(autouse=True)
def _isolated_default_store(tmp_path_factory, monkeypatch):
    """No test may write into the repository's runs/: the default store is a temp file."""
    root = tmp_path_factory.getbasetemp() / "default-store"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root}/mlflow.db")


class ToySpace(Space):
    """84 architectures; ``dropout`` only applies to deeper children."""

    name = "toy"

    def declare(self, d):
        width = d.choice("width", [8, 16, 32, 64])
        act = d.choice("act", ["relu", "tanh", "gelu"])
        depth = d.choice("depth", [1, 2, 3])
        dropout = d.choice("dropout", [0.0, 0.25, 0.5], active=depth > 1)
        return {"width": width, "act": act, "depth": depth, "dropout": dropout or 0.0}


def toy_reward(arch: Architecture) -> float:
    """Best child: width 64, gelu, depth 3, dropout 0.25 (reward 0.95)."""
    r = 0.2 + 0.3 * [8, 16, 32, 64].index(arch["width"]) / 3
    r += {"relu": 0.1, "tanh": 0.0, "gelu": 0.2}[arch["act"]]
    r += 0.05 * (arch["depth"] - 1)
    r += {None: 0.0, 0.0: 0.0, 0.25: 0.15, 0.5: 0.05}[arch.get("dropout")]
    return round(r, 6)


class ToyEvaluator:
    """Reward from :func:`toy_reward` with a two-epoch history, a summary text and a cost.

    ``fail`` (a predicate on the architecture or child number) raises a ChildFailure;
    ``interrupt_at`` raises KeyboardInterrupt (a Ctrl-C) when that child starts.
    """

    def __init__(self, fail=None, interrupt_at: int | None = None, epochs: int = 2) -> None:
        self.fail = fail
        self.interrupt_at = interrupt_at
        self.epochs = epochs
        self.calls: list[int] = []

    def fingerprint(self) -> str:
        return f"toy-{self.epochs}"

    def evaluate(self, architecture: Architecture, *, seed: int, number: int) -> Outcome:
        self.calls.append(number)
        if self.interrupt_at is not None and number == self.interrupt_at:
            raise KeyboardInterrupt
        if self.fail is not None and self.fail(architecture, number):
            raise ChildFailure("nan_loss", f"toy child {number} diverged (loss is NaN)")
        reward = toy_reward(architecture)
        curve = [round(reward * (e + 1) / self.epochs, 6) for e in range(self.epochs)]
        return Outcome(
            reward=reward,
            metrics={"val_accuracy": reward, "params": float(architecture["width"] * 10)},
            history={"val_accuracy": curve, "loss": [1.0 - v for v in curve]},
            cost=0.5,
            texts={"model_summary.txt": f"toy model of width {architecture['width']}"},
        )


@pytest.fixture
def toy_space() -> ToySpace:
    return ToySpace()


@pytest.fixture
def toy_evaluator():
    """The ToyEvaluator class (call it with the options a test needs)."""
    return ToyEvaluator
