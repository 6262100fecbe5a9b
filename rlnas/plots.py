"""Figures and tables of a search: the reward plot and the top-k table, written to files.

Plain files only (no MLflow here): the tracker logs them as artifacts. The plot uses
matplotlib's Agg canvas directly, so it never touches pyplot's global backend or needs a
display.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from rlnas.trial import Trial, TrialState


def reward_curve(trials: Sequence[Trial]) -> tuple[list[int], list[float], list[float]]:
    """Completed children in order: (numbers, rewards, best reward so far)."""
    numbers, rewards, best = [], [], []
    for t in sorted(trials, key=lambda t: t.number):
        if t.state is not TrialState.COMPLETE or t.reward is None:
            continue
        numbers.append(t.number)
        rewards.append(float(t.reward))
        best.append(max(best[-1], t.reward) if best else float(t.reward))
    return numbers, rewards, best


def load_backend() -> None:
    """Import matplotlib's Agg canvas now. The tracker calls this as the search starts, so
    that the import (native modules among it) is never under way when a Ctrl-C arrives at
    the search's end: an interrupted native module initialisation can abort the process as
    it exits, instead of its clean ``interrupted`` and exit status 130."""
    # lazy on purpose: imported here, when the search starts, not at import time
    import matplotlib.backends.backend_agg  # noqa: F401
    import matplotlib.figure  # noqa: F401


def plot_rewards(trials: Sequence[Trial], path: str | Path, title: str = "") -> Path:
    """PNG of each child's reward and the best reward so far, over the children."""
    # lazy: matplotlib is slow to import and only a search's end draws (see load_backend)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    numbers, rewards, best = reward_curve(trials)
    failed = [t.number for t in trials if t.state is TrialState.FAILED]
    fig = Figure(figsize=(7, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.scatter(numbers, rewards, s=14, label="child reward", color="tab:blue", alpha=0.7)
    ax.step(numbers, best, where="post", label="best so far", color="tab:orange")
    if failed:
        low = min(rewards) if rewards else 0.0
        ax.scatter(failed, [low] * len(failed), marker="x", color="tab:red", label="failed")
    ax.set_xlabel("child")
    ax.set_ylabel("reward")
    ax.set_title(title or "rewards over the search")
    ax.grid(alpha=0.3)
    if numbers or failed:
        ax.legend(loc="lower right")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def top_k(trials: Sequence[Trial], k: int = 10) -> list[Trial]:
    """The ``k`` best completed, freshly trained children (cached re-uses left out)."""
    done = [
        t
        for t in trials
        if t.state is TrialState.COMPLETE and t.reward is not None and t.cached_from is None
    ]
    return sorted(done, key=lambda t: (-t.reward, t.number))[:k]


def top_k_rows(
    trials: Sequence[Trial], run_ids: Mapping[int, str] | None = None, k: int = 10
) -> list[dict[str, object]]:
    """One row per top child: rank, child, reward, cost, hash, run id, then its decisions."""
    rows = []
    for rank, t in enumerate(top_k(trials, k), start=1):
        row: dict[str, object] = {
            "rank": rank,
            "child": t.number,
            "reward": round(float(t.reward), 6),
            "train_seconds": round(t.cost, 3),
            "architecture_hash": t.architecture.hash,
            "run_id": (run_ids or {}).get(t.number, ""),
        }
        row.update({k: _cell(v) for k, v in t.architecture.items()})
        rows.append(row)
    return rows


def write_csv(rows: Sequence[Mapping[str, object]], path: str | Path) -> Path:
    """Rows as CSV; columns are the union of the rows' keys, in first-seen order."""
    columns = _columns(rows)
    path = Path(path)
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(rows)
    return path


def markdown_table(rows: Sequence[Mapping[str, object]]) -> str:
    """Rows as a GitHub-flavoured Markdown table (empty string for no rows)."""
    if not rows:
        return ""
    columns = _columns(rows)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = [str(row.get(c, "")).replace("|", "\\|") for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _columns(rows: Sequence[Mapping[str, object]]) -> list[str]:
    columns: list[str] = []
    for row in rows:
        columns.extend(c for c in row if c not in columns)
    return columns


def _cell(value: object) -> object:
    return value if isinstance(value, (str, int, float)) else json.dumps(value)
