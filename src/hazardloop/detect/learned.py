"""Learned detectors: Isolation Forest over short windows of standardised readings.

Isolation Forest (Liu, Ting & Zhou 2008) makes no assumption of linear correlation, which helps
where the normal operating region is curved or multi-modal (pumps switching, batch phases).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Self

import numpy as np
from sklearn.ensemble import IsolationForest

from hazardloop.detect.base import as_2d, lagged


@dataclass
class IsolationForestDetector:
    """Isolation Forest on standardised readings plus ``lags`` lagged copies; score = -score_samples."""

    lags: int = 1
    n_estimators: int = 200
    random_state: int = 0
    mean_: np.ndarray | None = None
    scale_: np.ndarray | None = None
    model_: IsolationForest | None = field(default=None, repr=False)

    def fit(self, history: np.ndarray) -> Self:
        x = as_2d(history)
        self.mean_ = x.mean(axis=0)
        s = x.std(axis=0)
        self.scale_ = np.where(s > 1e-12, s, 1.0)
        z = lagged((x - self.mean_) / self.scale_, self.lags)[self.lags :]
        self.model_ = IsolationForest(n_estimators=self.n_estimators, random_state=self.random_state)
        self.model_.fit(z)
        return self

    def score(self, batch: np.ndarray) -> np.ndarray:
        z = lagged((as_2d(batch) - self.mean_) / self.scale_, self.lags)
        return -self.model_.score_samples(z)
