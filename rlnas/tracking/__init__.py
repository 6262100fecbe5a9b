"""MLflow tracking: the only package of rlnas that talks to MLflow (imported lazily, so
that importing it, and the CLI's parser, loads no MLflow).

* :mod:`~rlnas.tracking.store` — tracking URIs, the reachability check, experiments,
  artifact downloads;
* :mod:`~rlnas.tracking.tracker` — :class:`MLflowTracker`, the observer that records a
  search (one parent run, one nested run per child), with :mod:`~rlnas.tracking.records`
  (the writes), :mod:`~rlnas.tracking.writer` and :mod:`~rlnas.tracking.outbox` (writing
  in the background, through outages), :mod:`~rlnas.tracking.results` (the search's end)
  and :mod:`~rlnas.tracking.history` (what a store already holds);
* :mod:`~rlnas.tracking.models` reads a search back; :mod:`~rlnas.tracking.final_recorder`
  records ``rlnas final`` and ``rlnas export``.
"""

from rlnas.tracking.records import flatten
from rlnas.tracking.store import (
    DEFAULT_URI,
    connect,
    download_artifacts,
    experiment_id,
    normalize_uri,
    redact,
    sqlite_path,
)
from rlnas.tracking.tracker import MLflowTracker

__all__ = [
    "DEFAULT_URI",
    "MLflowTracker",
    "connect",
    "download_artifacts",
    "experiment_id",
    "flatten",
    "normalize_uri",
    "redact",
    "sqlite_path",
]
