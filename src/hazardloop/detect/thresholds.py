"""Threshold objects: turn scores into alarms, fitted on training scores only.

Detectors say how unusual a row is; a threshold says how unusual is too unusual. Keeping them
apart means one detector can be run at different alarm rates, and every limit can be traced to
the training data it came from.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Self, TypeVar

import numpy as np
from scipy import stats

from hazardloop.detect.base import as_2d, latch, run_length

Scores = TypeVar("Scores")  # one score array, or a dict of named score arrays


@dataclass
class QuantileThreshold:
    """Limit = the ``q`` quantile of training scores, times ``margin``.

    Distribution-free: it holds whatever the score's shape, which matters for smoothed or
    fused scores where no textbook distribution applies. Fed with *out-of-sample* training scores
    (see ``out_of_sample_scores``), it estimates the false-alarm rate on new normal data rather than
    the optimistic in-sample one.
    """

    q: float = 0.99
    margin: float = 1.0
    limit_: np.ndarray | None = None

    def fit(self, scores: np.ndarray) -> Self:
        s = np.asarray(scores, dtype=float)
        finite = np.where(np.isfinite(s), s, np.nan)
        lim = np.nanquantile(finite, self.q, axis=0) * self.margin
        self.limit_ = np.where(np.isfinite(lim) & (lim > 0), lim, np.finfo(float).tiny)
        return self

    def normalise(self, scores: np.ndarray) -> np.ndarray:
        """Scores in units of the limit: 1.0 is exactly at the limit."""
        assert self.limit_ is not None, "fit the threshold first"
        return np.asarray(scores, dtype=float) / self.limit_

    def exceeded(self, scores: np.ndarray) -> np.ndarray:
        return self.normalise(scores) > 1.0


@dataclass
class ChiSquareThreshold:
    """Hotelling T² limit under normality: F-distribution limit for ``n`` samples, ``k`` components.

    The textbook PCA limit (Jackson 1991): T²_lim = k (n-1)(n+1) / (n (n-k)) F_{k, n-k}(alpha).
    Kept for comparison with published PCA figures; the pipeline uses out-of-sample quantiles
    because real sensors are autocorrelated and rarely Gaussian.
    """

    alpha: float = 0.99
    limit_: float | None = None

    def fit_params(self, n_samples: int, n_components: int) -> Self:
        n, k = n_samples, n_components
        self.limit_ = float(k * (n - 1) * (n + 1) / (n * (n - k)) * stats.f.ppf(self.alpha, k, n - k))
        return self

    def exceeded(self, scores: np.ndarray) -> np.ndarray:
        assert self.limit_ is not None, "fit the threshold first"
        return np.asarray(scores) > self.limit_


def spe_limit(residual_eigenvalues: np.ndarray, alpha: float = 0.99) -> float:
    """Jackson–Mudholkar (1979) Q/SPE limit from the eigenvalues the PCA model left out."""
    lam = np.asarray(residual_eigenvalues, dtype=float)
    t1, t2, t3 = (float(np.sum(lam**i)) for i in (1, 2, 3))
    if t1 <= 0 or t2 <= 0:
        return 0.0
    h0 = 1 - 2 * t1 * t3 / (3 * t2**2)
    z = stats.norm.ppf(alpha)
    return t1 * (z * np.sqrt(2 * t2 * h0**2) / t1 + 1 + t2 * h0 * (h0 - 1) / t1**2) ** (1 / h0)


def kde_limit(scores: np.ndarray, alpha: float = 0.99) -> float:
    """The ``alpha`` quantile of a Gaussian kernel density fitted to training scores.

    Monitoring statistics of dynamic models are neither chi-square nor F distributed when the data
    are autocorrelated or non-Gaussian; a kernel density follows their actual shape and, unlike the
    empirical quantile, extrapolates smoothly a little past the largest training score (Odiowei &
    Cao 2010, Martin & Morris 1996). Bandwidth by Scott's rule.
    """
    s = np.asarray(scores, dtype=float)
    s = s[np.isfinite(s)]
    if len(s) < 2 or np.ptp(s) == 0:
        return float(s.max()) if len(s) else 0.0
    kde = stats.gaussian_kde(s)
    lo, hi = float(s.min()), float(s.max()) + 10 * float(s.std())
    for _ in range(60):  # bisection on the smooth CDF: monotone, no tuning needed
        mid = (lo + hi) / 2
        if kde.integrate_box_1d(-np.inf, mid) < alpha:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def out_of_sample_scores(
    history: np.ndarray, make_scorer: Callable[[np.ndarray], Callable[[np.ndarray], Scores]], folds: int = 5
) -> list[Scores]:
    """Score each of ``folds`` contiguous training blocks with a model fitted on the other blocks.

    In-sample scores of a fitted model are too small (the model has seen those rows), so limits
    set on them alarm too often on new data. Contiguous blocks keep autocorrelation inside a block
    honest. Returns what the scorer returns (an array, or a dict of named score arrays) per block, in
    time order.
    """
    x = as_2d(history)
    blocks = np.array_split(np.arange(len(x)), folds)
    out = []
    for block in blocks:
        rest = np.delete(x, block, axis=0)
        out.append(make_scorer(rest)(x[block]))
    return out


@dataclass
class Hysteresis:
    """Alarm on after ``on_rows`` consecutive rows over the limit, off after ``off_rows`` below it.

    ISA-18.2 on/off delays, counted in rows so they work at any sampling interval. The on-delay
    drops one-row blips; the off-delay stops one alarm from chattering into many.
    """

    on_rows: int = 1
    off_rows: int = 1

    def apply(self, over: np.ndarray) -> np.ndarray:
        o = np.asarray(over, dtype=bool)
        on_run = run_length(o)
        off_run = run_length(~o)
        return latch(on_run >= self.on_rows, off_run >= self.off_rows)
