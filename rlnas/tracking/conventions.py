"""How rlnas names and describes its MLflow runs, so that the MLflow UI reads well.

* run names a user can tell apart: ``search-<space>-<task>-<strategy>[-warm|-cold]-<id4>``
  for a search (``id4``: the first four characters of its run id) and
  ``<id4>-child-NNNN`` for its children, unique across searches;
* ``mlflow.user`` as MLflow itself sets it (``MLFLOW_TRACKING_USERNAME``, else the login);
* every decision of the space on every child, ``inactive`` where it does not apply, so the
  compare and parallel-coordinates views have no holes;
* the search's settings as tags on every child (``rlnas.search_settings``);
* the top-k table as the parent run's description (``mlflow.note.content``), with links to
  the child runs;
* one timestamp per epoch, each at the epoch's end (:func:`epoch_times`).
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Mapping, Sequence
from typing import Any

INACTIVE = "inactive"
"""The param value of a decision that does not apply to a child (e.g. the settings of a
layer beyond the chosen depth)."""
NOTE = "mlflow.note.content"
"""The tag MLflow's UI shows as a run's description (Markdown)."""


def user() -> str:
    """The ``mlflow.user`` of the runs rlnas creates: what MLflow's fluent API would set
    (``MLFLOW_TRACKING_USERNAME``, else the login name)."""
    name = os.environ.get("MLFLOW_TRACKING_USERNAME", "").strip()
    if name:
        return name
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name in this environment (some containers)
        return "unknown"


def short_id(run_id: str) -> str:
    """The four characters of a run id its runs' names carry."""
    return run_id[:4]


def search_name(*, space: str, task: str, strategy: str, warm: bool | None, run_id: str) -> str:
    """``search-layers-mnist1d-reinforce-warm-3f2a``; ``warm`` is ``None`` for a strategy
    with nothing to warm-start (then neither word appears)."""
    parts = ["search", space, task, strategy]
    if warm is not None:
        parts.append("warm" if warm else "cold")
    return "-".join([*parts, short_id(run_id)])


def child_name(parent_run_id: str, number: int) -> str:
    """``3f2a-child-0007``: child 7 of the search whose run id starts with ``3f2a``."""
    return f"{short_id(parent_run_id)}-child-{number:04d}"


def decision_params(
    names: Sequence[str], architecture: Mapping[str, Any], text: Any
) -> dict[str, str]:
    """Every decision of the space (``names``, in order) as a param: ``text(value)`` when
    the child made it, else :data:`INACTIVE`; decisions the space no longer declares
    (a space changed on resume) are kept as the child made them."""
    params = {
        name: text(architecture[name]) if name in architecture else INACTIVE for name in names
    }
    params.update({k: text(v) for k, v in architecture.items() if k not in params})
    return params


def settings_tags(config: Any, *, strategy: str, task: str, space: str) -> dict[str, str]:
    """The search's key settings, tagged on every child so a flat table still says where a
    child came from: strategy, task, space and the controller it started from."""
    start = getattr(getattr(config, "controller", None), "from_", None) if config else None
    return {
        "rlnas.strategy": strategy,
        "rlnas.task": task,
        "rlnas.space": space,
        "rlnas.controller_from": start or "",
    }


def is_warm(config: Any, strategy: str) -> bool | None:
    """Whether a reinforce search started from a saved controller (``None`` for others)."""
    if strategy != "reinforce":
        return None
    controller = getattr(config, "controller", None) if config is not None else None
    return bool(getattr(controller, "from_", None))


def note(
    rows: Sequence[Mapping[str, object]],
    *,
    experiment_id: str,
    title: str,
    columns: int = 4,
) -> str:
    """A short Markdown description of a search: ``title``, then its top children (rank,
    reward, a link to the child run, and the first ``columns`` decisions that differ
    between them)."""
    lines = [f"**{title}**", ""]
    if not rows:
        return "\n".join([*lines, "No completed child yet."])
    fixed = ("rank", "child", "reward", "train_seconds", "architecture_hash", "run_id")
    decisions = [k for k in rows[0] if k not in fixed]
    differ = [k for k in decisions if len({str(r.get(k, "")) for r in rows}) > 1][:columns]
    lines.append("| rank | child | reward | " + " | ".join(differ) + " |")
    lines.append("|---" * (3 + len(differ)) + "|")
    for r in rows:
        run = str(r.get("run_id") or "")
        link = f"[{r['child']}](#/experiments/{experiment_id}/runs/{run})" if run else r["child"]
        cells = [str(r.get(k, "")).replace("|", "\\|") for k in differ]
        lines.append(f"| {r['rank']} | {link} | {r['reward']} | " + " | ".join(cells) + " |")
    lines += ["", "All columns: `top_k.md`; the best child: `best_architecture.json`."]
    return "\n".join(lines)


def epoch_times(
    start: float, end: float, epochs: int, measured: Sequence[float] = ()
) -> list[float]:
    """The end time of each of ``epochs`` epochs of a child that ran from ``start`` to
    ``end`` (seconds): the ``measured`` ends where the evaluator recorded one per epoch
    (kept strictly increasing at MLflow's millisecond resolution), else the training time
    split evenly, the last epoch ending at ``end``."""
    if epochs <= 0:
        return []
    if len(measured) == epochs:
        ms: list[int] = []
        for t in measured:
            ms.append(max(round(t * 1000), ms[-1] + 1) if ms else round(t * 1000))
        return [m / 1000 for m in ms]
    span = max(0.0, end - start)
    return [start + span * (e + 1) / epochs for e in range(epochs)]
