"""Writes to the tracking store that survive the store going away for a while.

The tracker puts every record of a search (a finished child, a controller update, the
results, the end) into an :class:`Outbox` and drains it in order. A write that fails
because the store does not answer (:func:`transient`) stays first in line and is tried
again with backoff (:class:`Backoff`) at the next event, or, when the search ends, until
the patience runs out; a write the store refuses (a conflict, a bug) raises at once. The
writes themselves are idempotent (see :mod:`rlnas.tracking.tracker`), so trying one again
after an answer was lost does no harm.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterator

from rlnas.tracking.store import first_line

log = logging.getLogger("rlnas.tracking")


def transient(exc: BaseException) -> bool:
    """Whether a failed store call may work later (the store is down, restarting or busy),
    rather than a request the store refuses (a conflict or a bug), which retrying cannot fix."""
    if isinstance(exc, OSError):  # refused or reset connections, time-outs (requests' too)
        return True
    status = getattr(exc, "get_http_status_code", None)  # MlflowException and RestException
    if not callable(status):
        return False
    try:
        return int(status()) >= 500
    except (TypeError, ValueError):
        return True


class Backoff:
    """When to try again a store that stopped answering: 1, 2, 4 ... at most 60 s apart.

    ``patience`` is how long the store may stay silent before the search stops (its state
    is saved; ``rlnas resume`` records what is missing).
    """

    def __init__(self, patience: float, first: float = 1.0, longest: float = 60.0) -> None:
        self.patience = patience
        self.first = first
        self.longest = longest
        self.down_since: float | None = None
        self.error = ""
        self._delay = first
        self._next = 0.0

    @property
    def down_for(self) -> float:
        return 0.0 if self.down_since is None else time.monotonic() - self.down_since

    @property
    def exhausted(self) -> bool:
        return self.down_since is not None and self.down_for >= self.patience

    def wait(self) -> float:
        """Seconds until the next try is due."""
        return max(0.0, self._next - time.monotonic())

    def failed(self, exc: BaseException) -> None:
        now = time.monotonic()
        self.error = first_line(exc)
        if self.down_since is None:
            self.down_since = now
            log.warning(
                "the tracking store does not answer (%s); the search goes on, its results "
                "are kept and recorded when the store is back",
                self.error,
            )
        self._next = now + self._delay
        self._delay = min(self._delay * 2, self.longest)

    def succeeded(self) -> None:
        if self.down_since is not None:
            log.warning("the tracking store answers again after %.0f s", self.down_for)
        self.down_since = None
        self._delay = self.first
        self._next = 0.0


class Outbox:
    """Events waiting for the store, in order, and when to try it again."""

    def __init__(self, patience: float) -> None:
        self.events: deque[tuple] = deque()
        self.backoff = Backoff(patience)

    def __len__(self) -> int:
        return len(self.events)

    def __iter__(self) -> Iterator[tuple]:
        return iter(self.events)

    def put(self, *event) -> None:
        self.events.append(event)

    def drain(self, write: Callable[[tuple], None], until: float | None = None) -> None:
        """``write`` the events in order while the store answers; with ``until`` (a
        ``time.monotonic()`` deadline), wait for it with backoff until then."""
        while self.events:
            wait = self.backoff.wait()
            if wait > 0:
                left = (until - time.monotonic()) if until is not None else 0.0
                if left <= 0:
                    return
                time.sleep(min(wait, left))
                continue
            try:
                write(self.events[0])
            except Exception as exc:
                if not transient(exc):
                    raise
                self.backoff.failed(exc)
                continue
            self.events.popleft()
            self.backoff.succeeded()
