"""MLflow tracking of a search: the only package of rlnas that imports MLflow (lazily).

* :mod:`rlnas.tracking.store` — tracking URIs, the reachability check, experiments,
  artifact downloads;
* :mod:`rlnas.tracking.tracker` — :class:`MLflowTracker`, the observer that records a search
  (one parent run, one nested run per child).
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
