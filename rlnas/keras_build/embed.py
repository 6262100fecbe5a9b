"""A table's embedded categorical columns as learnt vectors, inside the child model.

A table task may encode a categorical column as one feature, the category's code
(:mod:`rlnas.table_task`; ``TaskSpec.embedded``): ``1..n`` for the ``n`` training
categories, 0 for one never seen. :func:`embed_columns` is the first step of every child on
such a table: the other features pass as they are, and each code goes through two Keras
preprocessing layers, ``Discretization`` (codes to indices: 0 and below to 0, ``k`` to
``k``, above ``n`` to ``n + 1``, so no input can index out of range) and ``Embedding``
(``n + 2`` rows: unseen, the categories, out of range), and the vectors are concatenated
after the other features. The layers are part of the model, so the saved, final and
exported models take the same encoded row the search trained on. ``Discretization``
rather than ``IntegerLookup``: the latter is a hash table, which TensorFlow Lite cannot
convert; bucketing converts. Only built-in layers are used (safe-mode loading).
"""

from __future__ import annotations

import keras

from rlnas.tasks import TaskSpec


def embed_columns(inputs, spec: TaskSpec):
    """The features a child's layers read from ``inputs`` (``spec.input_shape``): ``inputs``
    itself without embedded columns, else the plain features then each code's vector."""
    if not spec.embedded:
        return inputs
    width = spec.input_shape[0]
    plain = width - len(spec.embedded)
    columns = keras.layers.Reshape((width, 1), name="table_columns")(inputs)
    parts = []
    if plain:
        kept = keras.layers.Cropping1D((0, width - plain), name="table_plain")(columns)
        parts.append(keras.layers.Reshape((plain,), name="table_plain_flat")(kept))
    for i, (categories, dim) in enumerate(spec.embedded):
        at = plain + i
        code = keras.layers.Cropping1D((at, width - at - 1), name=f"table_code_{i}")(columns)
        code = keras.layers.Reshape((1,), name=f"table_code_{i}_flat")(code)
        index = keras.layers.Discretization(
            bin_boundaries=[c + 0.5 for c in range(categories + 1)],
            output_mode="int",
            name=f"table_index_{i}",
        )(code)
        vector = keras.layers.Embedding(categories + 2, dim, name=f"table_embed_{i}")(index)
        parts.append(keras.layers.Reshape((dim,), name=f"table_vector_{i}")(vector))
    if len(parts) == 1:
        return parts[0]
    return keras.layers.Concatenate(name="table_features")(parts)


def inner_spec(spec: TaskSpec) -> TaskSpec:
    """What a child's layers see after :func:`embed_columns`: flat features of the plain
    width plus every vector's width, none embedded."""
    if not spec.embedded:
        return spec
    import dataclasses

    width = spec.input_shape[0] - len(spec.embedded) + sum(d for _, d in spec.embedded)
    return dataclasses.replace(spec, input_shape=(width,), embedded=())


def wrap(model, spec: TaskSpec):
    """``model`` (built for :func:`inner_spec`) behind :func:`embed_columns`: a model that
    takes the encoded row of ``spec``. ``model`` itself where nothing is embedded."""
    if not spec.embedded:
        return model
    inputs = keras.Input(spec.input_shape, name="table_row")
    return keras.Model(inputs, model(embed_columns(inputs, spec)), name=model.name)
