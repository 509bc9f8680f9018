"""Multivariate process monitoring: PCA with Hotelling T² and SPE (Q), static or dynamic (lagged).

A process fault often moves no single sensor out of its range but breaks how sensors move
together: T² measures distance inside the normal correlation structure, SPE the part of a row the
structure cannot explain. Dynamic PCA adds lagged copies of each variable so slow,
control-compensated faults that only change the dynamics are seen too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Self

import numpy as np

from hazardloop.detect.base import as_2d, lagged
from hazardloop.detect.thresholds import ChiSquareThreshold, spe_limit


@dataclass
class PCAMonitor:
    """PCA on standardised (optionally lagged) data; ``score`` returns columns [T², SPE].

    ``n_components`` fixed, or chosen as the fewest components explaining ``explained`` of the
    variance (Jolliffe's cumulative-variance rule), capped below the training rank.
    """

    lags: int = 0
    explained: float = 0.95
    n_components: int | None = None
    mean_: np.ndarray | None = None
    scale_: np.ndarray | None = None
    centre_: np.ndarray | None = None
    loadings_: np.ndarray | None = None
    eigenvalues_: np.ndarray | None = None
    residual_eigenvalues_: np.ndarray | None = None

    def fit(self, history: np.ndarray) -> Self:
        x = as_2d(history)
        self.mean_ = x.mean(axis=0)
        s = x.std(axis=0)
        self.scale_ = np.where(s > 1e-12, s, 1.0)
        z = lagged((x - self.mean_) / self.scale_, self.lags)[self.lags :]
        self.centre_ = z.mean(axis=0)
        z = z - self.centre_
        _, sv, vt = np.linalg.svd(z, full_matrices=False)
        lam = sv**2 / max(len(z) - 1, 1)
        rank = int(np.sum(lam > lam[0] * 1e-10)) if lam.size and lam[0] > 0 else 1
        if self.n_components is not None:
            k = self.n_components
        else:
            share = np.cumsum(lam) / max(lam.sum(), 1e-300)
            k = int(np.searchsorted(share, self.explained) + 1)
        k = max(1, min(k, rank, len(z) - 2) if rank > 1 else 1)
        self.loadings_ = vt[:k].T
        self.eigenvalues_ = np.maximum(lam[:k], 1e-12)
        self.residual_eigenvalues_ = lam[k:rank]
        return self

    def _standardise(self, batch: np.ndarray) -> np.ndarray:
        return lagged((as_2d(batch) - self.mean_) / self.scale_, self.lags) - self.centre_

    def score(self, batch: np.ndarray) -> np.ndarray:
        z = self._standardise(batch)
        t = z @ self.loadings_
        t2 = np.sum(t**2 / self.eigenvalues_, axis=1)
        resid = z - t @ self.loadings_.T
        spe = np.sum(resid**2, axis=1)
        return np.column_stack([t2, spe])

    def contributions(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-variable share of T² and of SPE, lags folded back onto their sensor.

        T² contributions follow Westerhuis et al. (2000): z_j times the j-th element of the
        whitened-score back-projection; SPE contributions are squared residuals.
        """
        z = self._standardise(batch)
        t = z @ self.loadings_
        t2c = z * ((t / self.eigenvalues_) @ self.loadings_.T)
        spec = (z - t @ self.loadings_.T) ** 2
        p = as_2d(batch).shape[1]
        fold = lambda c: c.reshape(len(c), self.lags + 1, p).sum(axis=1)  # noqa: E731
        return np.maximum(fold(t2c), 0.0), fold(spec)

    def textbook_limits(self, n_samples: int, alpha: float = 0.99) -> tuple[float, float]:
        """F-based T² and Jackson–Mudholkar SPE limits, for comparison with published PCA figures."""
        t2 = ChiSquareThreshold(alpha).fit_params(n_samples, len(self.eigenvalues_)).limit_
        return float(t2), spe_limit(self.residual_eigenvalues_, alpha)
