"""A data set as a reader returns it, before checks and splits (shared by the readers)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class RawData:
    """A data set as read, before checks and splits (``x_test`` is None: none of its own)."""

    x: np.ndarray
    y: np.ndarray
    x_test: np.ndarray | None
    y_test: np.ndarray | None
    class_names: list[str] | None
    source: str
    """One line of provenance."""
    flip: bool = False
    """Horizontal flips keep the label (photos, clothes), see ``TaskSpec.flip``."""
    notes: tuple[str, ...] = ()
    """How the user's own data was read (sizes, channels): see ``TaskData.notes``."""
