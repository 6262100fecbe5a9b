"""Warm starts across spaces: which of a saved controller's decisions fit a new space.

A saved controller's card describes its space (decision names and choices, in order). When a
new search's space differs, :func:`plan_transfer` pairs the decisions both have by name and,
within each, the choices both have; :func:`copy_shared` copies the LSTM and those rows and
columns of the embeddings and head into a fresh policy. :func:`space_differences` says in
words what differs (the error when nothing is shared).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rlnas.space import Space
from rlnas.strategies.policy import LSTMPolicy


def space_differences(saved: Mapping[str, Any], space: Space) -> list[str]:
    """What differs between a card's space description and ``space`` (empty: identical)."""
    here = json.loads(json.dumps(space.describe()))
    out = []
    if saved.get("space") != here["space"]:
        out.append(f"space {saved.get('space')!r} saved, {here['space']!r} here")
    old = {d["name"]: d["choices"] for d in saved.get("decisions", [])}
    new = {d["name"]: d["choices"] for d in here["decisions"]}
    only_old = [n for n in old if n not in new]
    only_new = [n for n in new if n not in old]
    if only_old:
        out.append("decisions only in the saved controller: " + _few(only_old))
    if only_new:
        out.append("decisions only in this space: " + _few(only_new))
    for name in (n for n in old if n in new and old[n] != new[n]):
        out.append(f"choices of `{name}`: {old[name]} saved, {new[name]} here")
    if not out and list(old) != list(new):
        out.append("the decisions are declared in another order")
    return out


@dataclass(frozen=True)
class Transfer:
    """What a warm start takes from a saved controller whose space is not this one."""

    shared: dict[str, list[tuple[int, int]]]
    """Per shared decision name: (saved index, index here) of each choice both have."""
    not_transferred: list[str]
    """Human-readable: decisions (or choices) here that start untrained."""

    def note(self, source: str) -> str:
        if not self.not_transferred:
            return f"controller.from: {source!r}: every decision transferred."
        return (
            f"controller.from: {source!r}: transferred {len(self.shared)} shared decision(s); "
            "not transferred: "
            + "; ".join(self.not_transferred[:6])
            + (f" (+{len(self.not_transferred) - 6} more)" if len(self.not_transferred) > 6 else "")
            + "."
        )


def plan_transfer(saved: Mapping[str, Any], space: Space) -> Transfer | None:
    """How the saved space's decisions map onto ``space``'s; ``None`` if identical."""
    here = json.loads(json.dumps(space.describe()))
    if not space_differences(saved, space):
        return None
    old = {d["name"]: d["choices"] for d in saved.get("decisions", [])}
    shared: dict[str, list[tuple[int, int]]] = {}
    missing: list[str] = []
    for d in here["decisions"]:
        name, choices = d["name"], d["choices"]
        if name not in old:
            missing.append(f"`{name}` (new decision)")
            continue
        pairs = [(old[name].index(c), i) for i, c in enumerate(choices) if c in old[name]]
        if pairs:
            shared[name] = pairs
        if len(pairs) < len(choices):
            new = [c for c in choices if c not in old[name]]
            missing.append(f"`{name}` choices {new}")
    return Transfer(shared, missing)


def copy_shared(saved: LSTMPolicy, policy: LSTMPolicy, transfer: Transfer) -> None:
    """Copy the LSTM and, per shared decision, the rows and columns of its shared choices:
    the embedding of each choice (and of the decision's "inactive" token) and its head
    column. Everything else keeps the fresh initialisation."""
    emb, kernel, recurrent, bias, head_w, head_b = (w.copy() for w in policy.weights)
    old_emb, old_kernel, old_recurrent, old_bias, old_w, old_b = saved.weights
    kernel, recurrent, bias = old_kernel, old_recurrent, old_bias
    emb[0] = old_emb[0]  # the start token
    old_step = {d.name: d.step for d in saved.signature}
    for t, decision in enumerate(policy.signature):
        pairs = transfer.shared.get(decision.name)
        if not pairs:
            continue
        u = old_step[decision.name]
        emb[policy.base[t] + policy.sizes[t]] = old_emb[saved.base[u] + saved.sizes[u]]
        for j, i in pairs:
            emb[policy.base[t] + i] = old_emb[saved.base[u] + j]
            head_w[:, policy.offset[t] + i] = old_w[:, saved.offset[u] + j]
            head_b[policy.offset[t] + i] = old_b[saved.offset[u] + j]
    policy.weights = [emb, kernel.copy(), recurrent.copy(), bias.copy(), head_w, head_b]


def _few(names: list[str], n: int = 3) -> str:
    shown = ", ".join(f"`{x}`" for x in names[:n])
    return shown + (f" (+{len(names) - n} more)" if len(names) > n else "")
