"""Synthetic plants with known answers, shared by the detect tests."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(42)


@pytest.fixture
def correlated(rng: np.random.Generator):
    """Four sensors driven by two latent process variables, with AR(1) dynamics and noise."""

    def make(n: int) -> np.ndarray:
        latent = np.zeros((n, 2))
        for t in range(1, n):
            latent[t] = 0.8 * latent[t - 1] + rng.standard_normal(2)
        mix = np.array([[1.0, 0.5, 0.0, 1.0], [0.0, 1.0, 1.0, -0.5]])
        return 50 + latent @ mix + 0.1 * rng.standard_normal((n, 4))

    return make
