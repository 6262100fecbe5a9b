"""The user's image folder, read defensively: the layout, then every image decoded once.

Layout: one sub-folder per class directly under ``task.path`` (``root/cat/1.png``,
``root/dog/x/2.jpg``: deeper folders belong to their class folder), with the suffixes of
:data:`IMAGE_SUFFIXES`. Hidden folders (``.name``) are skipped. Refused, with one line naming
the folder or the image: images at the top level (outside any class folder), a class folder
without images, a single class, an image that cannot be decoded (corrupt, truncated, not an
image) and an image smaller than :data:`MIN_IMAGE_SIDE` pixels on a side (a thumbnail or a
placeholder, blown up to ``image_size`` it holds nothing to learn).

Every image is decoded as RGB and resized (bilinear) to ``task.image_size``, as Keras's
``image_dataset_from_directory`` does, in the same order (class folders sorted, then the
files of each sorted by folder and name), so the splits are those Keras's reader gave. With
``image_size: null`` the images keep their own size when they all share it, else they are
resized to :data:`DEFAULT_SIZE`. When every image is grey (red, green and blue equal in
every pixel), one channel is kept. Mirroring is not assumed to keep the class
(``task.mirror`` says so where it does).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from rlnas.errors import DataError
from rlnas.raw_data import RawData
from rlnas.task_config import TaskConfig

IMAGE_SUFFIXES = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
MIN_IMAGE_SIDE = 8
"""Smallest height and width of an image as stored (before resizing)."""
DEFAULT_SIZE = (64, 64)
"""Height and width of images of different sizes when ``task.image_size`` is null."""
LAYOUT = "expected one sub-folder of images per class (root/cat/1.png, root/dog/2.png)"


def read_image_folder(cfg: TaskConfig) -> RawData:
    """Check the layout of ``cfg.path``, then decode and resize every image (RGB or grey,
    [0, 1])."""
    root = Path(cfg.path or "")
    files, labels, class_names = index_folder(root)
    if cfg.image_size is not None:
        size, how = tuple(cfg.image_size), "resized to"
    else:
        sizes = {_stored_size(f) for f in files}
        if len(sizes) == 1 and None not in sizes:
            size, how = sizes.pop(), "at their own size"
        else:
            size, how = DEFAULT_SIZE, "of different sizes, resized to"
    x = decode_images(files, size)
    grey = bool(np.array_equal(x[..., 0], x[..., 1]) and np.array_equal(x[..., 0], x[..., 2]))
    if grey:
        x = np.ascontiguousarray(x[..., :1])
    notes: tuple[str, ...] = ()
    if cfg.image_size is not None and not grey:
        source = f"image folder {root} resized to {size[0]}x{size[1]}"
    else:
        channels = "1 channel (grey)" if grey else "3 channels"
        source = f"image folder {root}, {how} {size[0]}x{size[1]}, {channels}"
        notes = (f"task.path: {source}",)
    labels_ = np.asarray(labels, dtype=np.int32)
    return RawData(x, labels_, None, None, class_names, source, notes=notes)


def _stored_size(path: Path) -> tuple[int, int] | None:
    """``(height, width)`` of an image from its header (Pillow), or None if unreadable."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            return int(img.height), int(img.width)
    except Exception:  # decode_images names a broken file with a better message
        return None


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_SUFFIXES)


def index_folder(root: Path) -> tuple[list[Path], list[int], list[str]]:
    """The image files under ``root``, their class indices and the class names."""
    if not root.is_dir():
        raise DataError(f"task.path: folder {str(root)!r} does not exist; {LAYOUT}.")
    entries = sorted(os.listdir(root))
    classes = [e for e in entries if (root / e).is_dir() and not e.startswith(".")]
    loose = [e for e in entries if (root / e).is_file() and _is_image(e)]
    per_class = {c: _class_files(root / c) for c in classes}
    if not loose and not any(per_class.values()):
        raise DataError(
            f"task.path: image folder {str(root)!r} holds no images "
            f"({', '.join(IMAGE_SUFFIXES)}); {LAYOUT}."
        )
    if loose:
        raise DataError(
            f"task.path: image folder {str(root)!r} has {len(loose)} images at its top level "
            f"(e.g. {loose[0]!r}), outside any class folder; {LAYOUT}."
        )
    for c, found in per_class.items():
        if not found:
            raise DataError(
                f"task.path: class folder {str(root / c)!r} holds no images; expected images "
                "in every class folder (or remove the folder)."
            )
    if len(classes) < 2:
        raise DataError(
            f"task.path: image folder {str(root)!r} has a single class folder "
            f"({classes[0]!r}); expected at least 2 classes, one sub-folder each."
        )
    files, labels = [], []
    for i, c in enumerate(classes):
        files += per_class[c]
        labels += [i] * len(per_class[c])
    return files, labels, classes


def _class_files(folder: Path) -> list[Path]:
    """Images under ``folder``, sorted by folder then name (Keras's order)."""
    walk = sorted(os.walk(folder), key=lambda entry: entry[0])
    return [Path(top) / f for top, _, names in walk for f in sorted(names) if _is_image(f)]


def decode_images(files: list[Path], size: tuple[int, int]) -> np.ndarray:
    """Decode every image once (RGB) in a parallel pipeline, check its size and resize it.

    When the pipeline meets a file it cannot read or decode, the files are decoded again one
    at a time to name the culprit.
    """
    import tensorflow as tf

    def load(path):
        img = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
        return tf.image.resize(img, size, method="bilinear"), tf.shape(img)[:2]

    ds = tf.data.Dataset.from_tensor_slices([str(f) for f in files])
    ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE).batch(256)  # keeps the order
    out = np.empty((len(files), size[0], size[1], 3), dtype=np.float32)
    shapes = np.empty((len(files), 2), dtype=np.int64)
    i = 0
    try:
        for xb, sb in ds:
            out[i : i + len(xb)], shapes[i : i + len(xb)] = xb.numpy(), sb.numpy()
            i += len(xb)
    except (tf.errors.OpError, ValueError):
        for path in files:
            _decode_one(path)
        raise  # no single file failed on its own: a bug worth its traceback
    small = np.flatnonzero(shapes.min(axis=1) < MIN_IMAGE_SIDE)
    if len(small):
        height, width = shapes[small[0]]
        raise DataError(
            f"task.path: image {str(files[small[0]])!r} is {width}x{height} pixels; expected "
            f"at least {MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE}."
        )
    out /= np.float32(255)
    return out


def _decode_one(path: Path) -> None:
    """Raise :class:`DataError` naming ``path`` if it cannot be read or decoded."""
    import tensorflow as tf

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(
            f"task.path: image {str(path)!r} cannot be read ({exc.strerror}); expected a "
            "readable file."
        ) from None
    try:
        tf.io.decode_image(data, channels=3, expand_animations=False)
    except (tf.errors.OpError, ValueError) as exc:
        detail = re.sub(r"\{\{.*?\}\}", "", str(getattr(exc, "message", exc)))
        detail = " ".join(detail.split())[:120]
        raise DataError(
            f"task.path: image {str(path)!r} cannot be decoded ({detail}); expected a "
            "complete BMP, GIF, JPEG or PNG file (re-save it or remove it)."
        ) from None
