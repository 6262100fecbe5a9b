"""Children on Ray: a local Ray started for the search, or an existing cluster.

Each of ``executor.workers`` slots is a Ray *actor* that builds the evaluator once and then
trains one child at a time. Actors rather than plain tasks because building a Keras
evaluator (importing TensorFlow, loading and checking the task's data) takes seconds, which a
task would pay for every child; an actor pays it once per ``executor.recycle_after`` children
and, like a process worker, is simply killed and replaced when a child hangs or crashes it.

* The cluster: ``executor.ray_address``, else ``$RAY_ADDRESS`` (which ``ray job submit``
  sets). Neither: a fresh local Ray here (``ray.init(address="local")``) with CPUs for every
  actor, no dashboard and worker output kept out of the terminal; ``close()`` shuts it down.
* An address: the cluster is checked to be reachable within a few seconds before any work
  (Ray itself would retry for minutes), then joined with ``ray.init(address=...)`` and no
  resource arguments (the cluster has its own); ``close()`` disconnects and leaves it
  running. If Ray was already initialised in this process, that session is used and left
  alone.
* Each actor asks for ``threads_per_worker`` CPUs (1 when it is null) and
  ``gpus_per_worker`` GPUs (Ray then sets the actor's ``CUDA_VISIBLE_DEVICES``); asking for
  more GPUs than the cluster has is refused before any child.
* On a cluster we join, the code reaches the actors through the job's ``runtime_env``:
  ``py_modules`` ships the rlnas package and the user's own modules that the evaluator
  factory refers to, ``env_vars`` the thread limits. In a Ray session the user started
  before, the actors get the thread limits and the session's own ``runtime_env``. A local
  Ray started here inherits both from the environment it starts in instead, so that actors
  can take the workers Ray starts at once (a ``runtime_env`` would cost each actor a fresh
  process).
* A child running past ``executor.child_timeout_seconds`` has its actor killed (reason
  ``timeout``); an actor that dies (segfault, out-of-memory kill) fails its child with reason
  ``worker_died``. A fresh actor takes the slot and the search goes on.
"""

from __future__ import annotations

import logging
import os
import pickle
import socket
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rlnas
from rlnas.config import ExecutorConfig
from rlnas.errors import ChildFailure, ConfigError
from rlnas.executors import Evaluator, Job, run_job, thread_env, worker_threads
from rlnas.executors.pooled import PooledExecutor, Slot, pickled_factory
from rlnas.trial import Outcome

log = logging.getLogger("rlnas.executors.ray")

_CONNECT_SECONDS = 5.0
"""How long the reachability check of the cluster's address may take."""


class EvaluatorActor:
    """Body of a Ray actor: the evaluator, built once in the actor's process."""

    def __init__(self, factory: bytes) -> None:
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


@dataclass(eq=False, kw_only=True)
class _Slot(Slot):
    actor: Any
    ready_ref: Any  # ObjectRef of actor.ready(), None once the actor is ready
    pid: int | None = None
    job_ref: Any = None


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


def cluster_address(cfg: ExecutorConfig) -> tuple[str | None, str]:
    """The address of the cluster to join (``None``: start Ray here) and where it came from
    (the config field or the environment variable, for error messages)."""
    if cfg.ray_address:
        return cfg.ray_address, "executor.ray_address"
    env = os.environ.get("RAY_ADDRESS", "").strip()
    if env and env != "local":
        return env, "RAY_ADDRESS"
    return None, "executor.ray_address"


def check_reachable(
    address: str, timeout: float = _CONNECT_SECONDS, field: str = "executor.ray_address"
) -> None:
    """Raise a one-line ConfigError unless something listens at ``address`` (host:port);
    ``field`` names the setting the address came from."""
    if address in ("auto", "local"):
        return  # ray.init resolves these itself, quickly
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(
            f"`{field}`: expected host:port, ray://host:port or auto, got {address!r}."
        )
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        fix = "null" if field.startswith("executor.") else "unset"
        raise ConfigError(
            f"`{field}`: cannot reach a Ray cluster at {address!r} ({reason}); "
            "expected the address of a running cluster (`ray start --head` prints it), or "
            f"{fix} to start Ray locally."
        ) from None


class _ModuleRecorder(pickle.Pickler):
    """A pickler that notes the module of every class and function it stores by name."""

    def __init__(self, file) -> None:
        super().__init__(file)
        self.modules: set[str] = set()

    def reducer_override(self, obj):
        if isinstance(obj, (type, types.FunctionType)):
            self.modules.add(obj.__module__)
        return NotImplemented


def code_paths(factory: Callable[[], Evaluator]) -> list[str]:
    """The rlnas package and the user's own modules (not installed ones) that ``factory``
    refers to, as ``runtime_env`` ``py_modules`` entries: package folders or single files."""
    import io

    recorder = _ModuleRecorder(io.BytesIO())
    recorder.dump(factory)
    installed = {Path(p).resolve() for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    paths = [str(Path(rlnas.__file__).resolve().parent)]
    for top in sorted({name.split(".")[0] for name in recorder.modules} - {"rlnas"}):
        module = sys.modules.get(top)
        where = getattr(module, "__path__", None) or [getattr(module, "__file__", None)]
        if top == "__main__" or len(where) != 1 or where[0] is None:
            continue
        path = Path(where[0]).resolve()
        if any(path.is_relative_to(root) for root in installed):
            continue  # the standard library or an installed package
        paths.append(str(path))
    return paths


def _short(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class RayExecutor(PooledExecutor[_Slot]):
    """Evaluates up to ``cfg.workers`` children at once as Ray actors."""

    noun = "Ray worker"
    log = log

    def __init__(self, evaluator_factory: Callable[[], Evaluator], cfg: ExecutorConfig) -> None:
        ray = import_ray()
        super().__init__(cfg)
        self._factory = pickled_factory(evaluator_factory, "Ray workers")
        self._ray = ray
        self._owns_ray = False
        env = thread_env(worker_threads(cfg.threads_per_worker, cfg.workers))
        if cfg.gpus_per_worker:
            env["TF_FORCE_GPU_ALLOW_GROWTH"] = "true"
        modules = code_paths(evaluator_factory)
        cpus = cfg.threads_per_worker or 1
        options: dict[str, Any] = {}
        if ray.is_initialized():  # the user's session: its job carries the code, if need be
            options = {"runtime_env": {"env_vars": env}}
        else:
            address, field = cluster_address(cfg)
            if address is None:  # its workers inherit the limits and the code (see _start)
                self._start(cpus * cfg.workers, {**env, "PYTHONPATH": _pythonpath(modules)})
            else:
                self._join(address, field, {"env_vars": env, "py_modules": modules})
            self._owns_ray = True
        self._check_gpus()
        self._actor_class = ray.remote(
            num_cpus=cpus, num_gpus=cfg.gpus_per_worker, max_restarts=0, max_task_retries=0
        )(EvaluatorActor).options(**options)
        self._slots.extend(self._spawn() for _ in range(cfg.workers))

    def _start(self, cpus: int, env: dict[str, str]) -> None:
        """A fresh local Ray for this search. Its processes inherit this process's
        environment: with the limits and the import path set while it starts, the workers
        it starts at once have them too, and actors take those workers."""
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            self._ray.init(
                address="local",
                num_cpus=cpus,
                include_dashboard=False,
                log_to_driver=False,
                logging_level=logging.WARNING,
            )
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def _join(self, address: str, field: str, runtime_env: dict[str, Any]) -> None:
        """Join the running cluster at ``address``, asking it for no resources; this job's
        workers get ``runtime_env`` (Ray uploads local code only for a whole job)."""
        check_reachable(address, field=field)
        try:
            self._ray.init(
                address=address,
                runtime_env=runtime_env,
                log_to_driver=False,
                logging_level=logging.WARNING,
            )
        except Exception as exc:
            raise ConfigError(
                f"`{field}`: cannot join the Ray cluster at {address!r}: {_short(exc, 200)}"
            ) from None

    def _check_gpus(self) -> None:
        wanted = self.cfg.gpus_per_worker
        if not wanted:
            return
        have = self._ray.cluster_resources().get("GPU", 0)
        if have < wanted:
            if self._owns_ray:
                self._ray.shutdown()
            raise ConfigError(
                f"`executor.gpus_per_worker`: expected at most the {have:g} GPUs of the Ray "
                f"cluster, got {wanted}."
            )

    @property
    def pids(self) -> list[int | None]:
        """Process ids of the ready actors (``None`` while one is starting)."""
        return [s.pid for s in self._slots]

    def close(self) -> None:
        """Kill every actor (children in flight are abandoned); leave a Ray we joined, shut
        down one we started."""
        if self._closed:
            return
        self._closed = True
        for slot in self._slots:
            self._kill(slot)
        self._slots.clear()
        if self._owns_ray and self._ray.is_initialized():
            self._ray.shutdown()

    # -- the pool's hooks ------------------------------------------------------------------
    def _poll(self, timeout: float | None) -> None:
        ray = self._ray
        refs = {s.ready_ref: s for s in self._slots if s.ready_ref is not None}
        refs.update({s.job_ref: s for s in self._slots if s.job is not None})
        first, _ = ray.wait(list(refs), num_returns=1, timeout=timeout)
        if first:  # sweep up everything else that is already done
            first, _ = ray.wait(list(refs), num_returns=len(refs), timeout=0)
        for ref in first:
            slot = refs[ref]
            if ref == slot.ready_ref:
                self._started(slot)
            else:
                self._returned(slot)

    def _send(self, slot: _Slot, job: Job) -> bool:
        slot.job_ref = slot.actor.evaluate.remote(job)
        return True

    def _pid(self, slot: _Slot) -> int | None:
        return slot.pid

    def _timed_out(self, slot: _Slot) -> None:
        slot.job = slot.job_ref = None
        self._replace(slot)

    def _recycle(self, slot: _Slot) -> None:
        self._replace(slot)

    # -- internals -------------------------------------------------------------------------
    def _spawn(self) -> _Slot:
        actor = self._actor_class.remote(self._factory)
        return _Slot(actor=actor, ready_ref=actor.ready.remote())

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
            if self._died_starting():
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
        self._became_ready(slot, fingerprint)

    def _returned(self, slot: _Slot) -> None:
        ray, job = self._ray, slot.job
        assert job is not None
        slot.job_ref, ref = None, slot.job_ref
        try:
            result = ray.get(ref)
        except (
            ray.exceptions.RayActorError,
            ray.exceptions.WorkerCrashedError,
            ray.exceptions.OutOfMemoryError,
        ) as exc:
            slot.job = None
            self._died(slot, job, exc)
            return
        except ray.exceptions.RayError as exc:  # not the child's fault, but only this child's
            result = ChildFailure(
                "exception", f"Ray could not run child {job.number}: {_short(exc)}"
            )
        self._finished(slot, job.number, result)

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


def _pythonpath(paths: list[str]) -> str:
    """An import path under which every entry of ``paths`` (a package folder or a module
    file) imports by its name, before whatever ``PYTHONPATH`` already holds."""
    roots = dict.fromkeys(str(Path(p).parent) for p in paths)
    existing = os.environ.get("PYTHONPATH")
    return os.pathsep.join([*roots, *([existing] if existing else [])])
