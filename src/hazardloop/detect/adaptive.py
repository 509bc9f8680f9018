"""A normal reference level that follows slow drift, learning only from rows judged normal.

Real plants drift while they are healthy (water warms, bearings bed in, a pump's duty point moves),
so levels learned from the first training rows stop describing later normal rows and every limit
turns into a false alarm. Moving-window and recursive monitoring (Li, Yue, Valle-Cervantes & Qin
2000, "Recursive PCA for adaptive process monitoring") update the reference with new data, with one
rule that matters: a fault must not be learned as the new normal. Here that is three guards:

* only rows the detector judged normal update the level (every process score under its limit);
* the level moves in whole blocks of rows, and a block only counts once it has ended *and* the block
  after it was judged normal too (a hold-off: the quiet first rows of a fault that is building up,
  still under the limits, are not learned; a fault starting inside a block never shifts the level
  used to judge that block);
* the level forgets slowly: ``rate`` per normal row, so a steady ramp leaves a growing gap between
  the reading and the level (a lag of ``slope / rate``) and is still found.

The level is kept as an *offset* from the training mean per sensor, so the fitted models and limits
stay as they are and only see readings moved back by the offset.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Self

import numpy as np


@dataclass
class ReferenceLevel:
    """Per-sensor offset of the normal level from its training mean, updated block by block.

    ``fit`` takes the training rows; ``update`` takes one finished block and which of its rows were
    judged normal, and returns the offset for the next block. With no normal row the offset stays.
    """

    rate: float = 0.0025  # weight of one normal row: 1 / rate rows of memory
    mean_: np.ndarray | None = None
    offset_: np.ndarray | None = None

    def fit(self, history: np.ndarray) -> Self:
        self.mean_ = np.nanmean(np.asarray(history, dtype=float), axis=0)
        self.offset_ = np.zeros_like(self.mean_)
        return self

    def reset(self) -> None:
        assert self.mean_ is not None, "fit the reference first"
        self.offset_ = np.zeros_like(self.mean_)

    def update(self, block: np.ndarray, normal: np.ndarray) -> np.ndarray:
        """Move the level towards the mean of the block's normal rows; ``block``: (rows, sensors) raw."""
        assert self.mean_ is not None and self.offset_ is not None, "fit the reference first"
        rows = np.asarray(block, dtype=float)[np.asarray(normal, dtype=bool)]
        if len(rows) == 0 or self.rate <= 0:
            return self.offset_
        level = np.nanmean(rows, axis=0) - self.mean_
        weight = 1.0 - (1.0 - self.rate) ** len(rows)  # as if each normal row were one EWMA step
        self.offset_ = np.where(np.isfinite(level), self.offset_ + weight * (level - self.offset_), self.offset_)
        return self.offset_

