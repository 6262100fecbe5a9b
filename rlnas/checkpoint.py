"""A search's state on disk, saved atomically after every finished child.

Where: one folder per search, named by its MLflow parent run id, beside the tracking store:

* ``sqlite:///path/mlflow.db`` -> ``path/state/<run_id>/`` (the default store
  ``runs/mlflow.db`` keeps its states in ``runs/state/``);
* ``file:///path/mlruns`` -> ``path/../state/<run_id>/`` (a file store treats every folder
  inside it as an experiment);
* any other store (an ``http://`` tracking server, a database) -> ``runs/state/<host>/<run_id>/``
  in the current folder: resume from the folder the search was started in.

What: ``search.npz``, one file written to a temporary name, flushed to disk (``fsync``)
and renamed over the previous one (``os.replace``), so a crash at any moment leaves
either the old state or the new one, never half of one. Inside, a JSON document (the
header: run id, tracking store, experiment, resolved config; and :meth:`Search.state_dict`)
and the NumPy arrays of the strategy (controller weights, optimizer moments), which the
JSON refers to by index. The file can hold the tracking URI with its password, so it is
readable by its owner only.

While a search runs, it holds a lock on ``lock`` in its folder (released by the system
even on ``kill -9``), so that ``rlnas resume`` refuses a search that is still running.
The folder is removed once the search has finished and MLflow holds all of it.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import numpy as np

from rlnas.errors import ConfigError

if TYPE_CHECKING:
    from rlnas.search import Search, SearchResult

log = logging.getLogger("rlnas.checkpoint")

FILE = "search.npz"
LOCK = "lock"
FORMAT = 1
_RUN_ID = re.compile(r"[0-9A-Za-z][0-9A-Za-z_-]{0,63}")


def state_root(tracking_uri: str) -> Path:
    """The folder that holds the states of the searches tracked in ``tracking_uri``."""
    if tracking_uri.startswith("sqlite:///") and ":memory:" not in tracking_uri:
        return Path(tracking_uri[len("sqlite:///") :]).resolve().parent / "state"
    if tracking_uri.startswith("file:"):
        return Path(urlparse(tracking_uri).path).resolve().parent / "state"
    if "://" not in tracking_uri:  # a plain folder is a file store
        return Path(tracking_uri).resolve().parent / "state"
    netloc = urlparse(tracking_uri).netloc.rpartition("@")[2] or "local"
    return Path("runs", "state", re.sub(r"[^0-9A-Za-z_.-]", "_", netloc)).resolve()


def state_dir(tracking_uri: str, run_id: str) -> Path:
    """The state folder of search ``run_id``; a ConfigError for what cannot be a run id."""
    if not _RUN_ID.fullmatch(run_id):
        raise ConfigError(
            f"RUN_ID: expected an MLflow run id (letters and digits), got {run_id!r}."
        )
    return state_root(tracking_uri) / run_id


class Checkpoint:
    """Saves a search's state into ``root/<run id>/`` (the :class:`~rlnas.search.Saver` of
    a search). ``header()`` gives the run id and what ``rlnas resume`` needs to rebuild the
    search; nothing is saved while it has no run id."""

    def __init__(
        self, root: Path, header: Callable[[], Mapping[str, Any]], file: str = FILE
    ) -> None:
        self.root = Path(root)
        self.header = header
        self.file = file
        """The state's file name in the folder (a weight-sharing search's retraining saves
        ``retrain.npz`` beside ``search.npz``)."""
        self.folder: Path | None = None
        self.saves = 0
        self._lock: int | None = None

    def save(self, search: Search, result: SearchResult | None = None) -> None:
        head = dict(self.header())
        if not head.get("run_id"):
            return
        self.folder = self.root / str(head["run_id"])
        if self._lock is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._lock = os.open(self.folder / LOCK, os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        head["format"] = FORMAT
        write(self.folder / self.file, {"header": head, "search": search.state_dict()})
        self.saves += 1

    def remove(self) -> None:
        """Delete the saved state (the search finished and is fully recorded)."""
        self.release()
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)

    def release(self) -> None:
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None


def running(folder: Path) -> bool:
    """Whether a live process holds the lock of the search saved in ``folder``."""
    try:
        fd = os.open(folder / LOCK, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


# -- the file ------------------------------------------------------------------------------
def write(path: Path, state: Mapping[str, Any]) -> None:
    """Write ``state`` (JSON-ready data and NumPy arrays) to ``path`` atomically."""
    arrays: list[np.ndarray] = []
    text = json.dumps(state, separators=(",", ":"), default=lambda obj: _encode(obj, arrays))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    payload = {f"a{i}": a for i, a in enumerate(arrays)}
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as f:
        np.savez(f, state=np.frombuffer(text.encode(), np.uint8), **payload)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:  # the rename itself must reach the disk too
        os.fsync(directory)
    finally:
        os.close(directory)


def read(path: Path) -> dict[str, Any]:
    """The state saved at ``path`` (a ConfigError that says why if it cannot be read)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = [data[f"a{i}"] for i in range(len(data.files) - 1)]
            state = json.loads(data["state"].tobytes().decode())
    except FileNotFoundError:
        raise ConfigError(f"no saved search state at {str(path)!r}.") from None
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(f"the search state {str(path)!r} cannot be read: {exc}") from None
    if state.get("header", {}).get("format") != FORMAT:
        raise ConfigError(f"the search state {str(path)!r} has an unknown format.")
    return _decode(state, arrays)


def _encode(obj: Any, arrays: list[np.ndarray]) -> Any:
    """JSON for what ``json`` cannot write itself (its ``default`` hook): an array becomes a
    reference to its place in ``arrays``."""
    if isinstance(obj, np.ndarray):
        arrays.append(obj)
        return {"__array__": len(arrays) - 1}
    if isinstance(obj, Mapping):
        return dict(obj)
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"a search state cannot hold {type(obj).__name__} values")


def _decode(obj: Any, arrays: list[np.ndarray]) -> Any:
    if isinstance(obj, dict):
        if set(obj) == {"__array__"}:
            return arrays[obj["__array__"]]
        return {k: _decode(v, arrays) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_decode(v, arrays) for v in obj]
    return obj
