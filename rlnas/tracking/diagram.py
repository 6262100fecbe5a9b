"""A child's architecture as a small SVG drawing (the ``architecture.svg`` artifact).

Drawn in the driver from the decisions alone, so it costs the child nothing (no Keras, no
graphviz): decisions are grouped by the part of their name before the first ``/``
(``layer_0/filters`` -> ``layer_0``), each group a box listing its choices, stacked from
input to output in the space's order; a group whose every decision is ``inactive`` (a layer
beyond the chosen depth) is left out, and the training settings (``train/...``) go in a side
box. MLflow's artifact viewer shows SVG files as images::

    svg(decisions, title="child 7")
"""

from __future__ import annotations

from collections.abc import Mapping
from html import escape

from rlnas.tracking.conventions import INACTIVE

_W, _LINE, _PAD, _GAP = 260, 16, 8, 22
_SIDE = ("train", "training")  # groups drawn beside the stack, not in it


def groups(decisions: Mapping[str, str]) -> dict[str, list[tuple[str, str]]]:
    """Decisions by group, in order; entirely inactive groups left out."""
    out: dict[str, list[tuple[str, str]]] = {}
    for name, value in decisions.items():
        group, _, key = name.partition("/")
        out.setdefault(group if key else "", []).append((key or name, str(value)))
    return {g: items for g, items in out.items() if any(v != INACTIVE for _, v in items)}


def svg(decisions: Mapping[str, str], *, title: str) -> str:
    """The drawing of ``decisions`` (param texts by name) as an SVG document."""
    parts = groups(decisions)
    stack = [(g, items) for g, items in parts.items() if g not in _SIDE]
    side = [(g, items) for g, items in parts.items() if g in _SIDE]
    body: list[str] = []
    y = 40
    body.append(_box(20, y, "input", [], fill="#eeeeee"))
    y += _height([]) + _GAP
    for group, items in stack:
        body.append(_arrow(20 + _W / 2, y - _GAP, y))
        body.append(_box(20, y, group or "decisions", items, fill="#e3eefb"))
        y += _height(items) + _GAP
    body.append(_arrow(20 + _W / 2, y - _GAP, y))
    body.append(_box(20, y, "output", [], fill="#eeeeee"))
    y += _height([]) + 20
    side_y = 40
    for group, items in side:
        body.append(_box(40 + _W, side_y, group, items, fill="#fdf1dc"))
        side_y += _height(items) + _GAP
    width = 60 + _W * (2 if side else 1)
    height = max(y, side_y)
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="sans-serif" font-size="12">'
        '<defs><marker id="a" markerWidth="8" markerHeight="8" refX="4" refY="4" '
        'orient="auto"><path d="M0,0 L8,4 L0,8 z" fill="#555"/></marker></defs>'
        f'<rect width="100%" height="100%" fill="white"/>'
        f'<text x="20" y="24" font-size="14" font-weight="bold">{escape(title)}</text>'
    )
    return head + "".join(body) + "</svg>\n"


def _height(items: list[tuple[str, str]]) -> float:
    return _LINE * (1 + len(items)) + 2 * _PAD


def _box(x: float, y: float, name: str, items: list[tuple[str, str]], *, fill: str) -> str:
    h = _height(items)
    out = [
        f'<rect x="{x}" y="{y}" width="{_W}" height="{h}" rx="6" fill="{fill}" stroke="#555"/>',
        f'<text x="{x + _PAD}" y="{y + _PAD + 12}" font-weight="bold">{escape(name)}</text>',
    ]
    for i, (key, value) in enumerate(items, 1):
        colour = "#999" if value == INACTIVE else "#000"
        out.append(
            f'<text x="{x + _PAD + 8}" y="{y + _PAD + 12 + i * _LINE}" fill="{colour}">'
            f"{escape(key)} = {escape(value[:28])}</text>"
        )
    return "".join(out)


def _arrow(x: float, y0: float, y1: float) -> str:
    return f'<line x1="{x}" y1="{y0}" x2="{x}" y2="{y1 - 2}" stroke="#555" marker-end="url(#a)"/>'
