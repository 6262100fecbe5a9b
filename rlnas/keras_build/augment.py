"""Data augmentation as built-in Keras preprocessing layers inside the child model.

The ``train/augment`` decision (``none``, ``light``, ``strong``) picks a family per input kind.
The layers are part of the model, so they run on every training batch and are identities at
inference (``training=False``): validation, test and saved models see the data as it is.

* **Images:** ``light`` is the classic CIFAR recipe: random shifts by whole pixels (up to 8%
  of the side; nearest-neighbour, so pixels are moved, not resampled) and horizontal flips;
  ``strong`` shifts by up to 15% with bilinear resampling and adds rotation, zoom and
  contrast. Flips only where the task says they keep the label (``TaskSpec.flip``: photos and
  clothes, not digits, whose mirror images are other glyphs or none). Gaps are filled with
  the nearest pixel, which is the background for digit-like images.
* **Sequences** ``(L, C)``: a random shift along the sequence (``RandomTranslation`` on an
  ``(L, 1, C)`` view, nearest-neighbour so that values are moved, not blurred) and Gaussian
  noise relative to the features' spread (``TaskSpec.feature_std``).
* **Flat vectors:** Gaussian noise relative to the features' spread; ``strong`` also drops
  10% of the input features.

Only built-in layers are used (no ``Lambda``), so a saved ``.keras`` file loads in safe mode.
"""

from __future__ import annotations

import keras

from rlnas.tasks import TaskSpec

# level -> (translation, rotation, zoom, contrast) for images, as fractions
IMAGE = {"light": (0.08, 0.0, 0.0, 0.0), "strong": (0.15, 0.06, 0.1, 0.2)}
# level -> (shift as a fraction of the length, noise in units of feature_std)
SEQUENCE = {"light": (0.05, 0.05), "strong": (0.1, 0.1)}
# level -> (noise in units of feature_std, input dropout)
FLAT = {"light": (0.05, 0.0), "strong": (0.1, 0.1)}


def augment_inputs(x, level: str, spec: TaskSpec):
    """Apply the augmentation family of ``spec.input_kind`` at strength ``level`` to ``x``."""
    if level == "none":
        return x
    if level not in IMAGE:
        raise ValueError(f"train/augment: expected none, light or strong, got {level!r}")
    if spec.input_kind == "image":
        return _image(x, level, spec)
    if spec.input_kind == "sequence":
        return _sequence(x, level, spec)
    return _flat(x, level, spec)


def _image(x, level: str, spec: TaskSpec):
    shift, rotation, zoom, contrast = IMAGE[level]
    if spec.flip:
        x = keras.layers.RandomFlip("horizontal", name="augment_flip")(x)
    # whole-pixel shifts for ``light`` (nothing to resample); bilinear once it rotates
    resample = "bilinear" if rotation else "nearest"
    x = keras.layers.RandomTranslation(
        shift, shift, fill_mode="nearest", interpolation=resample, name="augment_shift"
    )(x)
    if rotation:
        x = keras.layers.RandomRotation(rotation, fill_mode="nearest", name="augment_rotate")(x)
    if zoom:
        x = keras.layers.RandomZoom(zoom, fill_mode="nearest", name="augment_zoom")(x)
    if contrast:
        x = keras.layers.RandomContrast(
            contrast, value_range=spec.value_range, name="augment_contrast"
        )(x)
    return x


def _sequence(x, level: str, spec: TaskSpec):
    shift, noise = SEQUENCE[level]
    length, channels = spec.input_shape
    x = keras.layers.Reshape((length, 1, channels), name="augment_as_image")(x)
    x = keras.layers.RandomTranslation(
        shift, 0.0, fill_mode="nearest", interpolation="nearest", name="augment_shift"
    )(x)
    x = keras.layers.Reshape((length, channels), name="augment_as_sequence")(x)
    return keras.layers.GaussianNoise(noise * spec.feature_std, name="augment_noise")(x)


def _flat(x, level: str, spec: TaskSpec):
    noise, drop = FLAT[level]
    x = keras.layers.GaussianNoise(noise * spec.feature_std, name="augment_noise")(x)
    if drop:
        x = keras.layers.Dropout(drop, name="augment_dropout")(x)
    return x
