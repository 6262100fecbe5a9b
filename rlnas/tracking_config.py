"""Settings of MLflow tracking (a light module: it imports no MLflow).

It sits beside the :mod:`rlnas.tracking` package rather than in it, because that package
imports its tracker, which imports :mod:`rlnas.config`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Annotated

from rlnas.rules import NonEmpty, Range, check_fields


@dataclass(frozen=True)
class TrackingConfig:
    """Where MLflow records the search."""

    uri: str | None = None
    """MLflow tracking URI; ``None``: ``$MLFLOW_TRACKING_URI``, else ``sqlite:///runs/mlflow.db``."""
    experiment: Annotated[str, NonEmpty("name")] = "rlnas"
    """MLflow experiment the search's run goes into."""
    retry_seconds: Annotated[float, Range(ge=0, unit="seconds")] = 300.0
    """How long a store that stops answering mid-search is retried (the search goes on, its
    results kept) before the search stops with its state saved for ``rlnas resume``."""

    def __post_init__(self) -> None:
        check_fields(self)

    def resolved_uri(self) -> str:
        if self.uri:
            return self.uri
        return os.environ.get("MLFLOW_TRACKING_URI") or "sqlite:///runs/mlflow.db"
