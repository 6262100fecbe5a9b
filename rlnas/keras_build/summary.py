"""A child's layers as a plain-text table: the ``model_summary.txt`` artifact of every child.

``model.summary()`` renders its table through ``rich``, which takes far longer than
formatting the same facts (layer, type, output shape, parameters, the layers it reads) as
plain columns, as this module does::

    print(summary_text(model))

The layers a layer reads come from Keras's private ``Layer._inbound_nodes`` (each node's
``parent_nodes`` and their ``operation``); ``tests/test_private_api.py`` fails when it moves.
"""

from __future__ import annotations

import math


def summary_text(model) -> str:
    """Layer, type, output shape, parameters and inputs of every layer of a functional
    Keras ``model``, then the total, trainable and non-trainable parameter counts."""
    rows = [("layer", "type", "output shape", "params", "inputs")]
    for layer in model.layers:
        nodes = getattr(layer, "_inbound_nodes", None) or []
        inputs = [p.operation.name for p in nodes[0].parent_nodes] if nodes else []
        shape = "(" + ", ".join("None" if d is None else str(d) for d in layer.output.shape) + ")"
        params = f"{layer.count_params():,}" if layer.built else "0"
        rows.append((layer.name, type(layer).__name__, shape, params, ", ".join(inputs) or "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [f'Model: "{model.name}"']
    for i, row in enumerate(rows):
        cells = [row[0].ljust(widths[0]), row[1].ljust(widths[1]), row[2].ljust(widths[2])]
        cells += [row[3].rjust(widths[3]), row[4]]
        lines.append("  ".join(cells))
        if i == 0:
            lines.append("-" * (sum(widths) + 8 + max(len(r[4]) for r in rows)))
    trainable = sum(math.prod(w.shape) for w in model.trainable_weights)
    frozen = sum(math.prod(w.shape) for w in model.non_trainable_weights)
    lines += [
        "",
        f"Total params: {trainable + frozen:,}",
        f"Trainable params: {trainable:,}",
        f"Non-trainable params: {frozen:,}",
    ]
    return "\n".join(lines)
