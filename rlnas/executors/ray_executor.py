"""Children on Ray: a local Ray started for the search, or an existing cluster.

Each of ``executor.workers`` slots is a Ray *actor* that builds the evaluator once and then
trains one child at a time. Actors rather than plain tasks because building a Keras
evaluator (importing TensorFlow, loading and checking the task's data) takes seconds, which a
task would pay for every child; an actor pays it once per ``executor.recycle_after`` children
and, like a process worker, is simply killed and replaced when a child hangs or crashes it.

* ``executor.ray_address`` null: ``ray.init()`` here with ``num_cpus = workers``, no
  dashboard and worker output kept out of the terminal; ``close()`` shuts it down again.
* An address: the cluster is checked to be reachable within a few seconds before any work
  (Ray itself would retry for minutes), then joined; ``close()`` disconnects and leaves the
  cluster running. The nodes need rlnas installed. If Ray was already initialised in this
  process, that session is used and left alone.
* A child running past ``executor.child_timeout_seconds`` has its actor killed (reason
  ``timeout``); an actor that dies (segfault, out-of-memory kill) fails its child with reason
  ``worker_died``. A fresh actor takes the slot and the search goes on.
* Thread limits reach the actor's process before TensorFlow (or NumPy's BLAS) is loaded
  there: a local Ray started here inherits them from the environment it starts in (so the
  actors can take the workers Ray starts at once), a cluster gets them through Ray's
  ``runtime_env``.
"""

from __future__ import annotations

import logging
import os
import pickle
import socket
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rlnas.config import ExecutorConfig
from rlnas.errors import ChildFailure, ConfigError, SearchAborted
from rlnas.executors import Evaluator, Job, run_job, thread_env, worker_threads
from rlnas.trial import Outcome

log = logging.getLogger("rlnas.executors.ray")

Result = tuple[int, "Outcome | ChildFailure"]

_CONNECT_SECONDS = 5.0
"""How long the reachability check of ``executor.ray_address`` may take."""
_STARTUP_DEATHS = 3
"""Actors dying in a row before they are ready abort the search (it would loop forever)."""


class EvaluatorActor:
    """Body of a Ray actor: the evaluator, built once in the actor's process."""

    def __init__(self, factory: bytes, paths: list[str]) -> None:
        for path in paths:  # the driver's import path, for factories defined beside it
            if path not in sys.path:
                sys.path.append(path)
        self.failure: str | None = None
        try:
            self.evaluator: Evaluator | None = pickle.loads(factory)()
        except Exception as exc:  # reported through ready(); the driver stops the search
            self.evaluator = None
            self.failure = f"{type(exc).__name__}: {exc}"

    def ready(self) -> tuple[int, str | None, str | None]:
        fingerprint = self.evaluator.fingerprint() if self.evaluator is not None else None
        return os.getpid(), self.failure, fingerprint

    def evaluate(self, job: Job) -> Outcome | ChildFailure:
        assert self.evaluator is not None
        return run_job(self.evaluator, job)


@dataclass(eq=False)
class _Slot:
    actor: Any
    ready_ref: Any  # ObjectRef of actor.ready(), None once the actor is ready
    pid: int | None = None
    job: Job | None = None
    job_ref: Any = None
    started: float = 0.0
    children: int = 0


def import_ray():
    """The ``ray`` module, or a ConfigError that says how to install it."""
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "`executor.kind`: 'ray' needs the Ray package, which is not installed; "
            "install it with `pip install rlnas[ray]`."
        ) from None
    return ray


def check_reachable(address: str, timeout: float = _CONNECT_SECONDS) -> None:
    """Raise a one-line ConfigError unless something listens at ``address`` (host:port)."""
    if address in ("auto", "local"):
        return  # ray.init resolves these itself, quickly
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(
            f"`executor.ray_address`: expected host:port, ray://host:port or auto, got {address!r}."
        )
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(
            f"`executor.ray_address`: cannot reach a Ray cluster at {address!r} ({reason}); "
            "expected the address of a running cluster (`ray start --head` prints it), or "
            "null to start Ray locally."
        ) from None


def _short(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class RayExecutor:
    """Evaluates up to ``cfg.workers`` children at once as Ray actors."""

    def __init__(self, evaluator_factory: Callable[[], Evaluator], cfg: ExecutorConfig) -> None:
        ray = import_ray()
        try:
            self._factory = pickle.dumps(evaluator_factory)
        except Exception as exc:
            raise ConfigError(
                f"`executor.kind`: Ray workers need a picklable evaluator factory, got "
                f"{evaluator_factory!r}: {exc}"
            ) from None
        self._ray = ray
        self.cfg = cfg
        self.capacity = cfg.workers
        self._owns_ray = False
        env = thread_env(worker_threads(cfg.threads_per_worker, cfg.workers))
        options: dict[str, Any] = {"runtime_env": {"env_vars": env}}
        if not ray.is_initialized():
            self._init_ray(cfg, env)
            self._owns_ray = True
            if cfg.ray_address is None:  # its workers inherited the limits (see _init_ray)
                options = {}
        self._actor_class = ray.remote(num_cpus=1, max_restarts=0, max_task_retries=0)(
            EvaluatorActor
        ).options(**options)
        self._paths = [p for p in sys.path if p and os.path.isdir(p)]
        self._pending: deque[Job] = deque()
        self._done: list[Result] = []
        self._startup_deaths = 0
        self._fatal: str | None = None
        self._fingerprint: str | None = None
        self._closed = False
        self._slots = [self._spawn() for _ in range(cfg.workers)]

    def _init_ray(self, cfg: ExecutorConfig, env: dict[str, str]) -> None:
        quiet = {"log_to_driver": False, "logging_level": logging.WARNING}
        if cfg.ray_address is None:
            # A local Ray's processes inherit this process's environment: with the thread
            # limits set while it starts, the workers it starts at once have them too, and
            # actors take those workers instead of starting new ones with a runtime_env
            # (which costs each actor a fresh process and Ray's import, 1-2 s).
            saved = {k: os.environ.get(k) for k in env}
            os.environ.update(env)
            try:
                self._ray.init(num_cpus=cfg.workers, include_dashboard=False, **quiet)
            finally:
                for k, v in saved.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v
            return
        check_reachable(cfg.ray_address)
        try:
            self._ray.init(address=cfg.ray_address, **quiet)
        except Exception as exc:
            raise ConfigError(
                f"`executor.ray_address`: cannot join the Ray cluster at "
                f"{cfg.ray_address!r}: {_short(exc, 200)}"
            ) from None

    @property
    def pids(self) -> list[int | None]:
        """Process ids of the ready actors (``None`` while one is starting)."""
        return [s.pid for s in self._slots]

    def fingerprint(self) -> str:
        """The evaluator's fingerprint, as the first actor to be ready reports it."""
        while self._fingerprint is None:
            if self._fatal is not None:
                raise SearchAborted(self._fatal)
            refs = {s.ready_ref: s for s in self._slots if s.ready_ref is not None}
            first, _ = self._ray.wait(list(refs), num_returns=1)
            for ref in first:
                self._started(refs[ref])
        return self._fingerprint

    def submit(self, job: Job) -> None:
        if self._closed:
            raise RuntimeError("submit() on a closed RayExecutor")
        self._pending.append(job)
        self._dispatch()

    def wait(self) -> list[Result]:
        """Block until at least one child finished (or failed); return all finished ones."""
        if self._closed:
            raise RuntimeError("wait() on a closed RayExecutor")
        ray = self._ray
        while not self._done:
            if self._fatal is not None:
                raise SearchAborted(self._fatal)
            if not self._pending and all(s.job is None for s in self._slots):
                return []
            refs = {s.ready_ref: s for s in self._slots if s.ready_ref is not None}
            refs.update({s.job_ref: s for s in self._slots if s.job is not None})
            first, _ = ray.wait(list(refs), num_returns=1, timeout=self._seconds_to_deadline())
            if first:  # sweep up everything else that is already done
                first, _ = ray.wait(list(refs), num_returns=len(refs), timeout=0)
            for ref in first:
                slot = refs[ref]
                if ref == slot.ready_ref:
                    self._started(slot)
                else:
                    self._finished(slot)
            self._enforce_timeout()
            self._dispatch()
        done, self._done = self._done, []
        return done

    def close(self) -> None:
        """Kill every actor (children in flight are abandoned); shut down a Ray we started."""
        if self._closed:
            return
        self._closed = True
        for slot in self._slots:
            self._kill(slot)
        self._slots.clear()
        if self._owns_ray and self._ray.is_initialized():
            self._ray.shutdown()

    # -- internals -------------------------------------------------------------------------
    def _spawn(self) -> _Slot:
        actor = self._actor_class.remote(self._factory, self._paths)
        return _Slot(actor, actor.ready.remote())

    def _kill(self, slot: _Slot) -> None:
        try:
            self._ray.kill(slot.actor, no_restart=True)
        except Exception as exc:  # already gone
            log.debug("ray.kill failed: %s", exc)

    def _replace(self, slot: _Slot) -> None:
        self._kill(slot)
        if self._fatal is not None:
            self._slots.remove(slot)
        else:
            self._slots[self._slots.index(slot)] = self._spawn()

    def _started(self, slot: _Slot) -> None:
        try:
            pid, failure, fingerprint = self._ray.get(slot.ready_ref)
        except self._ray.exceptions.RayError as exc:
            self._startup_deaths += 1
            if self._startup_deaths >= _STARTUP_DEATHS:
                self._fatal = (
                    f"{self._startup_deaths} Ray workers died in a row before they were "
                    f"ready: {_short(exc)}"
                )
            self._replace(slot)
            return
        if failure is not None:
            self._fatal = f"a Ray worker could not build its evaluator: {failure}"
            self._replace(slot)
            return
        slot.ready_ref, slot.pid = None, pid
        self._fingerprint = fingerprint
        self._startup_deaths = 0

    def _finished(self, slot: _Slot) -> None:
        ray, job = self._ray, slot.job
        assert job is not None
        slot.job, slot.job_ref, ref = None, None, slot.job_ref
        try:
            result = ray.get(ref)
        except (
            ray.exceptions.RayActorError,
            ray.exceptions.WorkerCrashedError,
            ray.exceptions.OutOfMemoryError,
        ) as exc:
            self._died(slot, job, exc)
            return
        except ray.exceptions.RayError as exc:  # not the child's fault, but only this child's
            result = ChildFailure(
                "exception", f"Ray could not run child {job.number}: {_short(exc)}"
            )
        self._done.append((job.number, result))
        slot.children += 1
        recycle = self.cfg.recycle_after
        if recycle is not None and slot.children >= recycle:
            log.info("recycling Ray worker %s after %d children", slot.pid, slot.children)
            self._replace(slot)

    def _died(self, slot: _Slot, job: Job, exc: BaseException) -> None:
        log.warning("Ray worker %s died while training child %d", slot.pid, job.number)
        if isinstance(exc, self._ray.exceptions.OutOfMemoryError):
            how = "killed by Ray's memory monitor (out of memory)"
        else:  # Ray does not say which signal; its long message lists the usual causes
            how = "a crash in native code, an out-of-memory kill or a lost node"
        message = (
            f"Ray worker process {slot.pid} died while training child {job.number}: {how} "
            f"({type(exc).__name__}: {_short(exc, 80)})"
        )
        self._done.append((job.number, ChildFailure("worker_died", message)))
        self._replace(slot)

    def _dispatch(self) -> None:
        for slot in self._slots:
            if not self._pending:
                return
            if slot.ready_ref is None and slot.job is None:
                slot.job = self._pending.popleft()
                slot.job_ref = slot.actor.evaluate.remote(slot.job)
                slot.started = time.monotonic()

    def _enforce_timeout(self) -> None:
        limit = self.cfg.child_timeout_seconds
        if limit is None:
            return
        now = time.monotonic()
        for slot in list(self._slots):
            if slot.job is None or now - slot.started < limit:
                continue
            number = slot.job.number
            log.warning(
                "child %d exceeded the %g s timeout; its Ray worker was killed", number, limit
            )
            message = (
                f"child {number} ran longer than executor.child_timeout_seconds={limit:g}; "
                f"its Ray worker process {slot.pid} was killed"
            )
            self._done.append((number, ChildFailure("timeout", message)))
            slot.job = slot.job_ref = None
            self._replace(slot)

    def _seconds_to_deadline(self) -> float | None:
        limit = self.cfg.child_timeout_seconds
        starts = [s.started for s in self._slots if s.job is not None]
        if limit is None or not starts:
            return None
        return max(0.0, min(starts) + limit - time.monotonic())
