"""Settings of the executors that run children (a light module: no Ray, no TensorFlow)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from rlnas.rules import NonEmpty, Range, check_fields

MAX_WORKERS = 256
"""Most children in flight at once. A fixed bound, not the local core count, so that a config
is valid on every machine (a Ray cluster may hold more cores than the machine submitting)."""


@dataclass(frozen=True)
class ExecutorConfig:
    """Where children run."""

    kind: Literal["inline", "process", "ray"] = "inline"
    """inline: in the main process; process: a pool of local worker processes; ray: Ray tasks."""
    workers: Annotated[int, Range(ge=1, le=MAX_WORKERS)] = 2
    """Children in flight at once (process and ray), at most 256."""
    threads_per_worker: Annotated[int | None, Range(ge=1, le=1024)] = None
    """TensorFlow threads per worker; ``None``: the machine's cores divided by ``workers``."""
    recycle_after: Annotated[int | None, Range(ge=1)] = 25
    """Replace a worker process after this many children, returning leaked memory."""
    child_timeout_seconds: Annotated[float | None, Range(gt=0, unit="seconds")] = None
    """A child running longer than this fails with reason ``timeout``."""
    ray_address: Annotated[str | None, NonEmpty("address")] = None
    """Address of an existing Ray cluster; ``None``: ``$RAY_ADDRESS`` (as ``ray job submit``
    sets it) when set, else Ray is started locally."""
    gpus_per_worker: Annotated[int, Range(ge=0, le=64)] = 0
    """GPUs each worker asks for (a Ray actor's ``num_gpus``; a process worker's own devices).
    0: none asked for, though a process worker still gets one GPU of its own if any are
    visible; more than 0 on a machine without a GPU is refused before the search starts."""

    def __post_init__(self) -> None:
        check_fields(self)
