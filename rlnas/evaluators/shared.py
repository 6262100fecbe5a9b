"""Reward children with shared weights (ENAS, Pham et al. 2018), behind the Evaluator protocol.

:class:`SharedEvaluator` holds one :class:`~rlnas.keras_build.supernet.SuperNet` (or a
:class:`~rlnas.keras_build.nasnet_supernet.NasnetSuperNet` for the `nasnet` space). Evaluating a
child trains the shared weights for ``shared.train_steps`` mini-batches on the child's path,
then rewards it with its accuracy on ``shared.eval_batches`` validation mini-batches. The
search asks children from the strategy's current policy, so the shared weights train on
samples of the current policy and the rewards come from the same weights: ENAS's alternation
of shared-weight and controller training, one child at a time::

    evaluator = SharedEvaluator(space, data, SharedConfig(enabled=True))
    outcome = evaluator.evaluate(architecture, seed=0, number=0)
    outcome.reward, outcome.metrics["shared/train_loss"]

Training and validation batches are drawn in order from a shuffled stream of each split
(reshuffled every pass, seeded by ``seed``), so every child sees fresh batches. The shared
weights are saved atomically (``save``/``restore``: a temporary file, then ``os.replace``) with
the number of children they were trained on; :class:`SharedWeightsCheckpoint` saves them every
``shared.checkpoint_every`` children beside the search's state, and restores them on resume.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np

from rlnas.errors import ChildFailure, ConfigError, SpaceError
from rlnas.evaluators.shared_config import SharedConfig
from rlnas.space import Architecture, Space
from rlnas.tasks import TaskData
from rlnas.trial import Outcome

SUPERNET_VERSION = 2
"""Part of the fingerprint: raise it when the super-network changes what a reward means or
the shapes of its weights (2: layer 0 of the `layers` super-network reads the input's own
channels)."""
WEIGHTS_FILE = "shared_weights.npz"


class _Stream:
    """Mini-batches of one split in a shuffled order, reshuffled after every pass."""

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int, seed: int) -> None:
        self.x, self.y = x, y.astype(np.int32)
        self.batch_size = min(batch_size, len(y))
        self.rng = np.random.default_rng(seed)
        self.order = self.rng.permutation(len(y))
        self.cursor = 0

    def next(self) -> tuple[np.ndarray, np.ndarray]:
        if self.cursor + self.batch_size > len(self.order):
            self.order, self.cursor = self.rng.permutation(len(self.y)), 0
        pick = self.order[self.cursor : self.cursor + self.batch_size]
        self.cursor += self.batch_size
        return self.x[pick], self.y[pick]


class SharedEvaluator:
    """Evaluates architectures of a `layers` or `nasnet` space as paths through one
    super-network."""

    def __init__(self, space: Space, data: TaskData, shared: SharedConfig, *, seed: int = 0):
        # TensorFlow loads with the evaluator
        from rlnas.keras_build.nasnet_supernet import NasnetSuperNet
        from rlnas.keras_build.supernet import SuperNet

        self.space, self.data, self.shared = space, data, shared
        self.seed = seed
        net = NasnetSuperNet if space.name == "nasnet" else SuperNet
        self.net = net(space.cfg, data.spec, shared)  # type: ignore[attr-defined]
        x_train = data.x_train.astype(np.float32)
        self.train = _Stream(x_train, data.y_train, shared.batch_size, seed)
        self.val = _Stream(data.x_val.astype(np.float32), data.y_val, shared.batch_size, seed + 1)
        self.children = 0
        """Children the shared weights were trained on (saved with them)."""
        self.steps = 0
        """Shared-weight training steps so far (warm-up included)."""
        self._fingerprint: str | None = None

    def fingerprint(self) -> str:
        """Hash of the task, the space's settings and the shared settings."""
        if self._fingerprint is None:
            d = self.data
            payload = {
                "supernet": SUPERNET_VERSION,
                "space": self.space.name,
                "space_config": asdict(self.space.cfg),  # type: ignore[attr-defined]
                "task": d.name,
                "source": d.source,
                "sizes": [len(d.y_train), len(d.y_val)],
                "shared": asdict(self.shared),
                "seed": self.seed,
            }
            text = json.dumps(payload, sort_keys=True, default=str)
            self._fingerprint = hashlib.sha256(text.encode()).hexdigest()[:16]
        return self._fingerprint

    def warm_up(self, choose_path: Callable[[], Architecture] | None = None) -> None:
        """Train ``shared.warmup_steps`` steps, one on each path ``choose_path`` returns
        (default: uniform samples of the space), before the first child; nothing once the
        weights have trained (a restored search)."""
        if self.steps:
            return
        if choose_path is None:
            rng = np.random.default_rng(self.seed + 2)

            def uniform(decision, allowed) -> int:
                return int(rng.choice(np.flatnonzero(allowed)))

            choose_path = lambda: self.space.sample(uniform)[0].architecture  # noqa: E731
        for _ in range(self.shared.warmup_steps):
            path = self.net.path(self.space.blueprint(choose_path()))
            self._schedule()
            self.net.train_step(*self.train.next(), *path)
            self.steps += 1

    def evaluate(self, architecture: Architecture, *, seed: int, number: int) -> Outcome:
        """Train the shared weights on ``architecture``'s path, then reward it on validation
        mini-batches. ``seed`` is unused: the shared streams are seeded once."""
        try:
            path = self.net.path(self.space.blueprint(architecture))
        except SpaceError as exc:
            raise ChildFailure("unbuildable", str(exc)) from None
        self.warm_up()
        start = time.perf_counter()
        losses, hits = [], []
        for _ in range(self.shared.train_steps):
            self._schedule()
            loss, accuracy = self.net.train_step(*self.train.next(), *path)
            losses.append(float(loss))
            hits.append(float(accuracy))
            self.steps += 1
        if not all(math.isfinite(v) for v in losses):
            raise ChildFailure("nan_loss", f"child {number}: shared training loss {losses}.")
        correct = loss_sum = seen = 0.0
        for _ in range(self.shared.eval_batches):
            x, y = self.val.next()
            c, ls = self.net.eval_step(x, y, *path)
            correct, loss_sum, seen = correct + float(c), loss_sum + float(ls), seen + len(y)
        self.children += 1
        seconds = time.perf_counter() - start
        metrics = {
            "shared/val_accuracy": correct / seen,
            "shared/val_loss": loss_sum / seen,
            "shared/train_loss": float(np.mean(losses)),
            "shared/train_accuracy": float(np.mean(hits)),
            "shared/steps": float(self.steps),
            "shared/learning_rate": self.shared.learning_rate_at(self.steps - 1),
        }
        return Outcome(reward=correct / seen, metrics=metrics, cost=seconds)

    def _schedule(self) -> None:
        """Set the learning rate of the next shared step (a variable the traced step reads:
        nothing is traced again)."""
        if self.shared.lr_schedule != "constant":
            self.net.optimizer.learning_rate = self.shared.learning_rate_at(self.steps)

    def rescore(self, architecture: Architecture, batch_size: int = 500) -> float:
        """Accuracy of ``architecture``'s path on the whole validation split (no training)."""
        path = self.net.path(self.space.blueprint(architecture))
        x, y = self.val.x, self.val.y
        correct = 0.0
        for i in range(0, len(y), batch_size):
            correct += float(
                self.net.eval_step(x[i : i + batch_size], y[i : i + batch_size], *path)[0]
            )
        return correct / len(y)

    # -- saving the shared weights ---------------------------------------------------------
    def save(self, folder: Path) -> Path:
        """Write the shared weights, optimizer state and counters atomically into ``folder``."""
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / WEIGHTS_FILE
        arrays = {f"w{i}": np.asarray(v) for i, v in enumerate(self.net.weights)}
        arrays.update({f"o{i}": np.asarray(v) for i, v in enumerate(self.net.optimizer.variables)})
        counters = [self.children, self.steps, self.train.cursor, self.val.cursor]
        arrays["counters"] = np.asarray(counters, np.int64)
        arrays["fingerprint"] = np.asarray(self.fingerprint())
        tmp = folder / f".{WEIGHTS_FILE}.{os.getpid()}.tmp"
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        return path

    def restore(self, folder: Path) -> bool:
        """Load what :meth:`save` wrote into ``folder``; False when there is nothing to load."""
        path = folder / WEIGHTS_FILE
        if not path.is_file():
            return False
        with np.load(path) as saved:
            if str(saved["fingerprint"]) != self.fingerprint():
                raise ConfigError(
                    f"{path}: shared weights of other settings (fingerprint "
                    f"{saved['fingerprint']}, now {self.fingerprint()}); a search resumes "
                    "only with the same data, space and shared settings."
                )
            for i, v in enumerate(self.net.weights):
                v.assign(saved[f"w{i}"])
            for i, v in enumerate(self.net.optimizer.variables):
                v.assign(saved[f"o{i}"])
            self.children, self.steps, t, v_ = (int(c) for c in saved["counters"])
        self.train.cursor, self.val.cursor = t, v_
        return True


class SharedWeightsCheckpoint:
    """A search observer: restores the shared weights when the search starts (a resume), and
    saves them every ``checkpoint_every`` children into the folder ``folder()`` names."""

    def __init__(self, evaluator: SharedEvaluator, folder: Callable[[], Path | None]) -> None:
        self.evaluator = evaluator
        self.folder = folder
        self.restored = False

    def search_started(self, search) -> None:
        folder = self.folder()
        if folder is not None:
            self.restored = self.evaluator.restore(folder)

    def trial_finished(self, search, trial) -> None:
        folder = self.folder()
        every = self.evaluator.shared.checkpoint_every
        if folder is not None and self.evaluator.children % every == 0:
            self.evaluator.save(folder)

    def search_finished(self, search, result) -> None:
        folder = self.folder()
        if folder is not None:
            self.evaluator.save(folder)
