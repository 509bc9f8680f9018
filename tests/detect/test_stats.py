import numpy as np

from hazardloop.detect.stats import CUSUM, EWMA, RateOfChange, RobustZ


def test_robust_z_flags_a_spike_and_ignores_training_outliers(rng):
    train = rng.standard_normal((1000, 3))
    train[10, 0] = 1e6  # a glitch in the training window barely moves median/MAD
    z = RobustZ().fit(train).score(np.array([[0.0, 0.0, 8.0]]))
    assert z[0, 2] > 6 and z[0, 0] < 1


def test_ewma_sees_a_small_persistent_shift_a_z_score_misses(rng):
    train = rng.standard_normal((2000, 1))
    test = rng.standard_normal((300, 1)) + 1.0  # one sigma
    ewma = EWMA(lam=0.1).fit(train)
    limit = np.quantile(ewma.score(train), 0.999)
    assert (ewma.score(test)[100:] > limit).mean() > 0.8
    assert (RobustZ().fit(train).score(test) > 4).mean() < 0.05


def test_cusum_detects_a_slow_ramp(rng):
    train = rng.standard_normal((1000, 1))
    ramp = rng.standard_normal((400, 1)) + np.linspace(0, 2, 400)[:, None]
    c = CUSUM(k=0.5)
    train_max = c.fit(train).score(train).max()
    score = c.score(ramp)
    first = int(np.argmax(score[:, 0] > train_max))
    assert score[:, 0].max() > train_max and first < 300


def test_rate_of_change_flags_a_fast_move(rng):
    train = np.cumsum(rng.standard_normal((500, 1)) * 0.1, axis=0)
    test = np.vstack([train[-5:], train[-1:] + 5.0])
    roc = RateOfChange().fit(train)
    assert roc.score(test)[-1, 0] > 20 and roc.score(test)[1:-1].max() < 6
