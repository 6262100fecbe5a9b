"""How one example is read: as an image, a sequence or a flat vector (``task.input_kind``).

``auto`` reads a feature array by its rank where that is unambiguous: 2-D ``(N, F)`` is flat,
4-D ``(N, H, W, C)`` an image, 3-D ``(N, L, C)`` a sequence when ``C <= MAX_CHANNELS`` (a
channel axis). A 3-D array with a longer last axis, such as ``(N, 28, 28)``, could be
grayscale images or sequences of 28 features: it is refused with one line that asks for
``task.input_kind``. Given explicitly, ``image`` adds a channel axis to ``(N, H, W)``,
``sequence`` adds one to ``(N, L)`` and ``flat`` flattens every example. How the user's own
arrays were read is logged (a warning line, so the CLI prints it).
"""

from __future__ import annotations

import logging

import numpy as np

from rlnas.errors import DataError

log = logging.getLogger(__name__)

MAX_CHANNELS = 4
"""Longest last axis a 3-D ``auto`` array may have to be read as a sequence's channels."""
KIND_OF_RANK = {2: "flat", 3: "sequence", 4: "image"}
RANK_OF_KIND = {"flat": (2,), "sequence": (2, 3), "image": (3, 4)}


def arrange(
    x: np.ndarray, x_test: np.ndarray | None, wanted: str, where: str
) -> tuple[np.ndarray, np.ndarray | None, str, str]:
    """``(x, x_test, kind, note)``: the features shaped for ``kind`` and a note on how the
    kind was decided (for the provenance line)."""
    shape = "x".join(str(s) for s in x.shape[1:])
    if wanted == "auto":
        kind = KIND_OF_RANK.get(x.ndim)
        if kind is None:
            raise DataError(
                f"{where}: features of shape {x.shape} have no input kind; expected 2-D (N, F), "
                "3-D (N, L, C) or 4-D (N, H, W, C) arrays."
            )
        if x.ndim == 3 and x.shape[2] > MAX_CHANNELS:
            raise DataError(
                f"{where}: features of shape {x.shape} are ambiguous (images of "
                f"{x.shape[1]}x{x.shape[2]} pixels, or sequences of {x.shape[1]} steps with "
                f"{x.shape[2]} features?); set task.input_kind: image or sequence."
            )
        note = f"input_kind auto: {shape} read as {kind}"
        log.debug("%s: %s", where, note)
        return x, x_test, kind, note
    if wanted == "flat":
        flat = (lambda a: a.reshape(len(a), -1)) if x.ndim > 2 else (lambda a: a)
        x, x_test = flat(x), None if x_test is None else flat(x_test)
    elif x.ndim not in RANK_OF_KIND[wanted]:
        raise DataError(
            f"{where}: features of shape {x.shape} cannot be read as {wanted} inputs "
            f"(task.input_kind: {wanted}); expected "
            + " or ".join(f"{r}-D" for r in RANK_OF_KIND[wanted])
            + " arrays."
        )
    elif x.ndim == RANK_OF_KIND[wanted][0]:  # add the channel axis
        x, x_test = x[..., None], None if x_test is None else x_test[..., None]
    note = f"input_kind {wanted}: {shape} read as {'x'.join(map(str, x.shape[1:]))}"
    log.info("%s: %s", where, note)
    return x, x_test, wanted, note
