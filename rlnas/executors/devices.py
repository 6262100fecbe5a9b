"""Which GPU each local worker process sees, decided without importing TensorFlow.

TensorFlow takes every visible GPU's memory in the first process that touches it, so several
workers on one machine would all land on the same card. Each worker is therefore started with
``CUDA_VISIBLE_DEVICES`` naming its own device(s), round-robin over the GPUs this process
sees, and with ``TF_FORCE_GPU_ALLOW_GROWTH`` so that it takes memory as it needs it::

    >>> assign(0, ["0", "1"], 0)
    {'CUDA_VISIBLE_DEVICES': '0', 'TF_FORCE_GPU_ALLOW_GROWTH': 'true'}
    >>> assign(3, ["0", "1"], 0)["CUDA_VISIBLE_DEVICES"]
    '1'
    >>> assign(1, ["0", "1", "2", "3"], 2)["CUDA_VISIBLE_DEVICES"]
    '2,3'
    >>> assign(0, [], 0)
    {}
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from rlnas.errors import ConfigError


def assign(worker_index: int, visible: Sequence[str], per_worker: int) -> dict[str, str]:
    """Environment that gives worker ``worker_index`` its own GPU(s) out of ``visible``.

    ``per_worker`` 0 (the default) still gives each worker one GPU when there are any;
    ``n`` gives it ``n`` consecutive ones (wrapping round when workers outnumber them, so that
    two workers then share a card). No GPU visible: an empty environment (CPU only).
    """
    if not visible:
        return {}
    count = len(visible)
    take = min(max(1, per_worker), count)
    first = worker_index * take
    ids = [visible[(first + k) % count] for k in range(take)]
    return {"CUDA_VISIBLE_DEVICES": ",".join(ids), "TF_FORCE_GPU_ALLOW_GROWTH": "true"}


def visible_gpus(environ: Mapping[str, str] | None = None) -> list[str]:
    """The GPU ids this process may use: ``CUDA_VISIBLE_DEVICES`` when it is set, else the
    NVIDIA driver's devices (``/proc/driver/nvidia/gpus``, else ``nvidia-smi -L``)."""
    env = os.environ if environ is None else environ
    listed = env.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        ids = [part.strip() for part in listed.split(",") if part.strip()]
        # CUDA stops at the first invalid id ("-1" is the usual way to hide every GPU)
        valid = []
        for part in ids:
            if part.startswith("-"):
                break
            valid.append(part)
        return valid
    driver = Path("/proc/driver/nvidia/gpus")
    if driver.is_dir():
        return [str(i) for i in range(len(list(driver.iterdir())))]
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(
                ["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10, check=True
            ).stdout
        except (OSError, subprocess.SubprocessError):
            return []
        return [str(i) for i, line in enumerate(out.splitlines()) if line.startswith("GPU ")]
    return []


def require_gpus(per_worker: int, visible: Sequence[str]) -> None:
    """A one-line ConfigError when ``executor.gpus_per_worker`` asks for GPUs there are not."""
    if per_worker > 0 and not visible:
        raise ConfigError(
            f"`executor.gpus_per_worker`: expected 0 where no GPU is visible (neither "
            f"CUDA_VISIBLE_DEVICES nor the NVIDIA driver lists one), got {per_worker}."
        )
