"""Fusion: many normalised scores in, one decision and one sentence an operator can read out.

Every component score arrives in units of its own training limit (1.0 = at the limit), so the
fused score is simply the largest; the reason names the component that crossed furthest and the
sensors that drove it ("T² high, mostly FIC-201 and TI-205").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass
class Evidence:
    """One component: its normalised score per row and how to explain a given row in words."""

    name: str
    score: np.ndarray  # (n_rows,), 1.0 = at this component's limit
    explain: Callable[[int], str]


def fuse(evidence: Sequence[Evidence]) -> tuple[np.ndarray, np.ndarray]:
    """Fused score (max over components) and the index of the component that set it, per row."""
    stack = np.vstack([np.nan_to_num(e.score, nan=0.0) for e in evidence])
    top = np.argmax(stack, axis=0)
    return stack[top, np.arange(stack.shape[1])], top


def reasons(evidence: Sequence[Evidence], rows: np.ndarray, limit: float = 1.0, most: int = 2) -> list[str]:
    """For each row: the components over ``limit``, strongest first, at most ``most``, joined by '; '."""
    stack = np.vstack([np.nan_to_num(e.score, nan=0.0) for e in evidence])
    out = []
    for r in rows:  # only alarm rows are explained; this is not the hot path
        order = np.argsort(-stack[:, r])
        parts = [evidence[i].explain(int(r)) for i in order[:most] if stack[i, r] > limit]
        out.append("; ".join(parts))
    return out


def top_sensors(contrib: np.ndarray, names: Sequence[str], most: int = 2) -> str:
    """'FIC-201 and TI-205' from one row of per-sensor contributions."""
    order = np.argsort(-contrib)[:most]
    picked = [names[i] for i in order if contrib[i] > 0]
    return " and ".join(picked) if picked else "no single sensor"
