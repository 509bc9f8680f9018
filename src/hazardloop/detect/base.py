"""The detector protocol and the small array helpers every detector shares."""

from __future__ import annotations

from typing import Protocol, Self

import numpy as np


class DetectInputError(ValueError):
    """Input the detectors cannot use; the message names the row and/or column to fix."""


class Detector(Protocol):
    """One API for every detector (ARCHITECTURE.md §4): learn normal, then score, higher = worse."""

    def fit(self, history: np.ndarray) -> Self: ...  # (n_samples, n_features)

    def score(self, batch: np.ndarray) -> np.ndarray: ...  # one score per row (or row x sensor)


def as_2d(x: np.ndarray) -> np.ndarray:
    """Return a float64 (n_rows, n_features) view; a 1-D series is one feature."""
    a = np.asarray(x, dtype=float)
    return a[:, None] if a.ndim == 1 else a


def trailing_mean(x: np.ndarray, window: int) -> np.ndarray:
    """Mean over the last ``window`` rows including the current one (causal; shorter at the start).

    Averaging a score over a short trailing window trades a few rows of delay for a large gain
    on persistent faults: noise averages out, a sustained shift does not.
    """
    if window <= 1:
        return x
    a = np.asarray(x, dtype=float)
    c = np.cumsum(np.concatenate([np.zeros((1,) + a.shape[1:]), a]), axis=0)
    idx = np.arange(len(a))
    lo = np.maximum(idx + 1 - window, 0)
    count = (idx + 1 - lo).reshape((-1,) + (1,) * (a.ndim - 1))
    return (c[idx + 1] - c[lo]) / count


def lagged(x: np.ndarray, lags: int) -> np.ndarray:
    """Stack ``[x_t, x_{t-1}, ..., x_{t-lags}]`` column-wise; the first row stands in before the start.

    This is the dynamic-PCA trick (Ku, Storer & Georgakis 1995): autocorrelation and the lag
    structure of control loops become cross-correlation a static model can learn.
    """
    a = as_2d(x)
    if lags <= 0:
        return a
    n = len(a)
    blocks = [a]
    for lag in range(1, lags + 1):
        shifted = np.empty_like(a)
        shifted[:lag] = a[:1]
        shifted[lag:] = a[: n - lag]
        blocks.append(shifted)
    return np.hstack(blocks)


def run_length(cond: np.ndarray, carried: np.ndarray | None = None) -> np.ndarray:
    """Consecutive rows (including this one) for which ``cond`` has held, per column.

    Vectorised with a running maximum of the last index where the condition was false, so there
    is no Python loop over rows. ``carried`` is the run length at the end of the previous batch.
    """
    c = np.asarray(cond, dtype=bool)
    squeeze = c.ndim == 1
    if squeeze:
        c = c[:, None]
    n = len(c)
    idx = np.arange(n, dtype=np.int64)[:, None]
    last_false = np.maximum.accumulate(np.where(c, -1, idx), axis=0)
    runs = idx - last_false
    if carried is not None:
        never_false = last_false < 0
        runs = np.where(never_false, runs + np.asarray(carried, dtype=np.int64), runs)
    return runs[:, 0] if squeeze else runs


def latch(set_: np.ndarray, reset: np.ndarray, initial: np.ndarray | bool = False) -> np.ndarray:
    """Set/reset latch per column: on where ``set_``, off where ``reset``, else keeps its state.

    This is alarm hysteresis without a loop: the state at row t is the last event before t.
    ``set_`` wins when both are true on the same row.
    """
    s = np.asarray(set_, dtype=bool)
    r = np.asarray(reset, dtype=bool)
    squeeze = s.ndim == 1
    if squeeze:
        s, r = s[:, None], r[:, None]
    n = len(s)
    idx = np.arange(n, dtype=np.int64)[:, None]
    event = s | r
    last = np.maximum.accumulate(np.where(event, idx, -1), axis=0)
    state = np.take_along_axis(s, np.maximum(last, 0), axis=0)
    init = np.broadcast_to(np.asarray(initial, dtype=bool), s.shape[1:])
    out = np.where(last >= 0, state, init[None, :])
    return out[:, 0] if squeeze else out
