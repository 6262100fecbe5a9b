"""A pool of local worker processes that train children side by side, with fault isolation.

Each worker is a process started with ``spawn`` (TensorFlow is not fork-safe) that caps its
thread pools before TensorFlow is imported, builds its evaluator once from a picklable
factory, then evaluates one job at a time with :func:`~rlnas.executors.run_job`. The driver
keeps its own :class:`~multiprocessing.Process` objects and pipes (``multiprocessing.Pool``
cannot say which job a dead worker was running), so that:

* a child that runs past ``executor.child_timeout_seconds`` has its worker killed and fails
  with reason ``timeout``;
* a worker that dies (segfault, out-of-memory kill, ``os._exit``) fails its child with reason
  ``worker_died`` and the exit code or signal;
* a worker is replaced by a fresh process after ``executor.recycle_after`` children, which
  returns the memory that Keras and TensorFlow leak over many models.

The pool keeps going in every case. Workers only evaluate: they never touch the tracker or a
trial. ``close()``, interpreter exit and Ctrl-C (which workers ignore; the driver handles it)
leave no process behind, and a worker whose driver was killed exits by itself.

Example::

    executor = ProcessExecutor(evaluator_factory(cfg), cfg.executor)
    executor.submit(Job(0, {"layer_0/op": "conv"}, seed=1))
    [(0, outcome)] = executor.wait()
    executor.close()
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import pickle
import signal
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.connection import wait as wait_any
from multiprocessing.process import BaseProcess

from rlnas.errors import ChildFailure
from rlnas.executors import Evaluator, Job, devices, run_job, thread_env, worker_threads
from rlnas.executors.config import ExecutorConfig
from rlnas.executors.pooled import PooledExecutor, Slot, pickled_factory
from rlnas.quiet import quiet_if_asked

log = logging.getLogger("rlnas.executors.process")

_GRACE_SECONDS = 5.0
"""How long ``close()`` lets an idle worker exit by itself before killing it."""

_SIGNAL_HINTS = {
    signal.SIGSEGV: "a crash in native code",
    signal.SIGBUS: "a crash in native code",
    signal.SIGABRT: "aborted by native code",
    signal.SIGKILL: "often the out-of-memory killer",
}


def describe_exit(exitcode: int | None) -> str:
    """``exit code 3`` or ``killed by signal SIGKILL (often the out-of-memory killer)``."""
    if exitcode is None:
        return "still running"
    if exitcode >= 0:
        return f"exit code {exitcode}"
    try:
        sig = signal.Signals(-exitcode)
    except ValueError:
        return f"killed by signal {-exitcode}"
    hint = _SIGNAL_HINTS.get(sig)
    return f"killed by signal {sig.name}" + (f" ({hint})" if hint else "")


# -- the worker process --------------------------------------------------------------------
def _worker_main(conn: Connection, factory: bytes, env: dict[str, str]) -> None:
    """Body of a worker: build the evaluator, then answer jobs until told to stop."""
    os.environ.update(env)  # before the factory can import TensorFlow
    quiet_if_asked()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle
    _exit_with_parent()
    try:
        evaluator: Evaluator = pickle.loads(factory)()
    except BaseException as exc:  # reported to the driver, which stops the search
        conn.send(("fatal", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", os.getpid(), evaluator.fingerprint()))
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):  # the driver is gone
            return
        if job is None:
            return
        result = run_job(evaluator, job)
        try:
            conn.send(("result", job.number, result))
        except (BrokenPipeError, ConnectionResetError):
            return
        except Exception as exc:  # the outcome could not be pickled; nothing was written
            failure = ChildFailure("exception", f"the child's result cannot be sent back: {exc}")
            conn.send(("result", job.number, failure))


def _exit_with_parent() -> None:
    """End this worker as soon as the driver dies (even by SIGKILL), mid-child or not."""
    parent = mp.parent_process()
    if parent is None:
        return

    def watch() -> None:
        wait_any([parent.sentinel])
        os._exit(1)

    threading.Thread(target=watch, name="rlnas-watch-driver", daemon=True).start()


# -- the driver side -----------------------------------------------------------------------
@dataclass(eq=False, kw_only=True)
class _Worker(Slot):
    process: BaseProcess
    conn: Connection


_ENV_LOCK = threading.Lock()


@contextmanager
def _environ(overrides: dict[str, str]) -> Iterator[None]:
    """Set environment variables while a process is spawned (it inherits them at exec, so the
    limits hold even if the user's main module imports TensorFlow in the worker)."""
    with _ENV_LOCK:
        saved = {k: os.environ.get(k) for k in overrides}
        os.environ.update(overrides)
        try:
            yield
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def _stop(workers: list[_Worker], retiring: list[_Worker]) -> None:
    """Stop every worker: idle ones are asked to exit, busy ones killed; then reap them all."""
    everyone = workers + retiring
    for w in everyone:
        if w.job is None and w.ready and w.process.is_alive():
            with suppress(OSError):
                w.conn.send(None)
        else:
            w.process.kill()
    deadline = time.monotonic() + _GRACE_SECONDS
    for w in everyone:
        w.process.join(max(0.0, deadline - time.monotonic()))
        if w.process.is_alive():
            w.process.kill()
            w.process.join()
        w.conn.close()
    workers.clear()
    retiring.clear()


class ProcessExecutor(PooledExecutor[_Worker]):
    """Evaluates up to ``cfg.workers`` children at once in local worker processes.

    With GPUs visible, worker ``i`` sees only its own (see :func:`devices.assign`); a config
    that asks for ``gpus_per_worker`` on a machine without a GPU is refused here.
    """

    log = log

    def __init__(self, evaluator_factory: Callable[[], Evaluator], cfg: ExecutorConfig) -> None:
        super().__init__(cfg)
        self._factory = pickled_factory(evaluator_factory, "process workers")
        gpus = devices.visible_gpus()
        devices.require_gpus(cfg.gpus_per_worker, gpus)
        self._gpus = gpus
        self._env = thread_env(worker_threads(cfg.threads_per_worker, cfg.workers))
        self._ctx = mp.get_context("spawn")
        self._workers = self._slots  # the pool's slots, by their name here
        self._retiring: list[_Worker] = []  # recycled, exiting by themselves
        self._finalizer = weakref.finalize(self, _stop, self._workers, self._retiring)
        for index in range(cfg.workers):
            self._workers.append(self._spawn(index))

    @property
    def pids(self) -> list[int | None]:
        """Process ids of the current workers (for tests and diagnostics)."""
        return [w.process.pid for w in self._workers]

    def close(self) -> None:
        """Stop every worker (children in flight are abandoned) and reap the processes."""
        self._closed = True
        self._pending.clear()
        self._finalizer()

    # -- the pool's hooks ------------------------------------------------------------------
    def _poll(self, timeout: float | None) -> None:
        handles = [w.conn for w in self._workers] + [w.process.sentinel for w in self._workers]
        ready = set(wait_any(handles, timeout))
        for w in list(self._workers):
            if w.conn in ready or w.process.sentinel in ready:
                self._collect(w)

    def _send(self, slot: _Worker, job: Job) -> bool:
        try:
            slot.conn.send(job)
        except OSError:  # died while idle
            return False
        return True

    def _pid(self, slot: _Worker) -> int | None:
        return slot.process.pid

    def _timed_out(self, slot: _Worker) -> None:
        slot.process.kill()
        slot.process.join()
        self._replace(slot)

    def _recycle(self, slot: _Worker) -> None:
        """Let the worker exit after its last child and start a fresh process in its place."""
        with suppress(OSError):
            slot.conn.send(None)
        self._retiring.append(slot)
        index = self._workers.index(slot)
        self._workers[index] = self._spawn(index)

    def _tidy(self) -> None:
        for w in list(self._retiring):
            if not w.process.is_alive():
                w.process.join()
                w.conn.close()
                self._retiring.remove(w)

    # -- internals -------------------------------------------------------------------------
    def _spawn(self, index: int) -> _Worker:
        parent_end, child_end = self._ctx.Pipe(duplex=True)
        env = {**self._env, **devices.assign(index, self._gpus, self.cfg.gpus_per_worker)}
        process = self._ctx.Process(
            target=_worker_main,
            args=(child_end, self._factory, env),
            name="rlnas-worker",
            daemon=True,  # multiprocessing ends daemonic children at interpreter exit
        )
        with _environ(env):
            process.start()
        child_end.close()  # so that the worker's death reads as end-of-file here
        return _Worker(process=process, conn=parent_end)

    def _collect(self, w: _Worker) -> None:
        """Read everything ``w`` sent; if its process ended, account for it and replace it."""
        gone = False
        try:
            while w.conn.poll():
                self._handle(w, w.conn.recv())
        except (EOFError, OSError):
            gone = True  # the process is ending; its exit code says how
        if w not in self._workers or not (gone or not w.process.is_alive()):
            return
        w.process.join(_GRACE_SECONDS)
        if w.process.is_alive():  # closed its pipe yet lingers
            w.process.kill()
            w.process.join()
        self._died(w)

    def _handle(self, w: _Worker, message: tuple) -> None:
        kind = message[0]
        if kind == "ready":
            self._became_ready(w, message[2])
        elif kind == "result":
            number, result = message[1], message[2]
            if w.job is None or w.job.number != number:
                log.error("worker %s sent child %s it was not running", w.process.pid, number)
                return
            self._finished(w, number, result)
        elif kind == "fatal":
            self._fatal = f"a worker process could not build its evaluator: {message[1]}"

    def _died(self, w: _Worker) -> None:
        how = describe_exit(w.process.exitcode)
        if w.job is not None:
            number = w.job.number
            log.warning("worker %s died (%s) while training child %d", w.process.pid, how, number)
            message = f"worker process {w.process.pid} died while training child {number}: {how}"
            self._done.append((number, ChildFailure("worker_died", message)))
        elif not w.ready and self._fatal is None and self._died_starting():
            self._fatal = (
                f"{self._startup_deaths} worker processes died in a row before they were "
                f"ready (last: {how}); a script that starts a search must guard it with "
                "`if __name__ == '__main__':` (workers are spawned and import it)"
            )
        if self._fatal is not None:  # a fresh worker would fail the same way
            w.conn.close()
            self._workers.remove(w)
            return
        self._replace(w)

    def _replace(self, w: _Worker) -> None:
        w.conn.close()
        index = self._workers.index(w)
        self._workers[index] = self._spawn(index)
