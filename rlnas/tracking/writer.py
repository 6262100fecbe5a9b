"""The background writer of a search's records: the outbox drained while the next child trains.

The tracker puts every record into an :class:`~rlnas.tracking.outbox.Outbox`; a
:class:`Writer` drains it in a thread of its own, so that the search loop never waits for the
store. A write the store refused there is raised in the search loop at the next event; a
store silent for longer than the outbox's patience stops the search (its state is saved,
``rlnas resume`` records the rest). One writer at a time: the thread and a drain in the
search loop's own thread (when the search ends) share a lock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from rlnas.errors import SearchAborted
from rlnas.tracking.outbox import Outbox


class Writer:
    """Drains ``outbox`` with ``record(event)``; ``gone()`` says why the store is given up."""

    def __init__(
        self, outbox: Outbox, record: Callable[[tuple], None], gone: Callable[[], str]
    ) -> None:
        self.outbox = outbox
        self._record = record
        self._gone = gone
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()
        self._stopping = False
        self._lock = threading.Lock()
        self._error: BaseException | None = None

    def drain(self, until: float | None = None) -> None:
        """Record the waiting events now, in this thread; with no ``until`` (a
        ``time.monotonic()`` deadline), a store silent for longer than the patience stops
        the search."""
        with self._lock:
            self.outbox.drain(self._record, until)
            if self.outbox and until is None and self.outbox.backoff.exhausted:
                raise SearchAborted(self._gone())

    def kick(self) -> None:
        """Have the background thread record the waiting events. A write the store refused
        there is raised here; a store silent for longer than the patience stops the search.
        The search never waits here for a write in progress (a slow or silent store): the
        patience is read from the outbox's backoff, which only the writer changes."""
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        if self.outbox and self.outbox.backoff.exhausted:
            raise SearchAborted(self._gone())
        if self._thread is None:
            self._stopping = False
            self._thread = threading.Thread(target=self._loop, name="rlnas-tracking", daemon=True)
            self._thread.start()
        self._wake.set()

    def _loop(self) -> None:
        while not self._stopping:
            self._wake.wait(timeout=max(0.05, min(self.outbox.backoff.wait(), 1.0)))
            self._wake.clear()
            try:
                with self._lock:
                    self.outbox.drain(self._record)
            except BaseException as exc:  # refused by the store: the search loop raises it
                self._error = exc
                return

    def stop(self) -> None:
        """Wait for the background thread to finish the write in hand and stop; raise the
        error it met, if any."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stopping = True
            self._wake.set()
            thread.join()
        if self._error is not None:
            error, self._error = self._error, None
            raise error
