"""A live progress bar for a search (an observer), written to stderr.

On a terminal it redraws one line about once a second: children done/total, failures,
best reward, elapsed time and the estimated time left. Elsewhere (a log file, CI) it writes
one plain line per finished child instead, so that logs stay readable.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TYPE_CHECKING, TextIO

from rlnas.trial import Trial, TrialState

if TYPE_CHECKING:
    from rlnas.search import Search, SearchResult


def clock(seconds: float) -> str:
    """``75.2`` -> ``"1:15"``, ``3725`` -> ``"1:02:05"``."""
    s = int(round(max(seconds, 0.0)))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class ProgressBar:
    """Shows how far a search is. ``total`` is the children budget (``None``: unknown)."""

    def __init__(
        self,
        total: int | None,
        stream: TextIO | None = None,
        *,
        live: bool | None = None,
        width: int = 24,
        wall_seconds: float | None = None,
    ) -> None:
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self.width = width
        self.wall_seconds = wall_seconds
        self.done = 0
        self.failed = 0
        self.best: float | None = None
        self._started: float | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    # -- observer events -------------------------------------------------------------------
    def search_started(self, search: Search) -> None:
        self._started = time.time()
        if self.live:
            self._draw()
            self._ticker = threading.Thread(target=self._tick, name="rlnas-progress", daemon=True)
            self._ticker.start()

    def trial_finished(self, search: Search, trial: Trial) -> None:
        if trial.cached_from is None and trial.state in (TrialState.COMPLETE, TrialState.FAILED):
            self.done += 1
        if trial.state is TrialState.FAILED:
            self.failed += 1
        if trial.state is TrialState.COMPLETE and trial.reward is not None:
            self.best = trial.reward if self.best is None else max(self.best, trial.reward)
        if self.live:
            self._draw()
        else:
            self._write(self._plain(trial) + "\n")

    def search_finished(self, search: Search, result: SearchResult) -> None:
        self.close()

    def close(self) -> None:
        """Stop redrawing and end the line (safe to call twice)."""
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout=2)
            self._ticker = None
            self._draw()
            self._write("\n")

    # -- text ------------------------------------------------------------------------------
    def line(self) -> str:
        """The status line: bar, children done/total, failures, best, elapsed, ETA."""
        elapsed = time.time() - (self._started or time.time())
        if self.total:
            filled = int(self.width * min(self.done / self.total, 1.0))
            bar = "[" + "#" * filled + "." * (self.width - filled) + "] "
            count = f"{self.done}/{self.total} children"
        else:
            bar, count = "", f"{self.done} children"
        best = f"best {self.best:.4f}" if self.best is not None else "best -"
        parts = [bar + count, best, f"elapsed {clock(elapsed)}"]
        if self.failed:
            parts.insert(1, f"{self.failed} failed")
        eta = self.eta(elapsed)
        if eta is not None:
            parts.append(f"ETA {clock(eta)}")
        return "  ".join(parts)

    def eta(self, elapsed: float) -> float | None:
        """Seconds left: the mean time per child so far times the children left, capped by
        the wall-clock budget."""
        left = []
        if self.total and self.done:
            left.append(elapsed / self.done * max(self.total - self.done, 0))
        if self.wall_seconds is not None:
            left.append(max(self.wall_seconds - elapsed, 0.0))
        return min(left) if left else None

    def _plain(self, trial: Trial) -> str:
        if trial.state is TrialState.COMPLETE:
            what = f"reward {trial.reward:.4f}"
            if trial.cached_from is not None:
                what += f" (cached from child {trial.cached_from})"
        else:
            what = f"{trial.state.value.lower()}"
            if trial.failure_reason:
                what += f" ({trial.failure_reason})"
        return f"child {trial.number}: {what}  |  {self.line()}"

    def _draw(self) -> None:
        self._write("\r\x1b[2K" + self.line())

    def _write(self, text: str) -> None:
        with self._lock:
            self.stream.write(text)
            self.stream.flush()

    def _tick(self) -> None:
        while not self._stop.wait(1.0):
            self._draw()
