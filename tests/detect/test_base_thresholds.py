import numpy as np

from hazardloop.detect.base import lagged, latch, run_length, trailing_mean
from hazardloop.detect.thresholds import (
    ChiSquareThreshold,
    Hysteresis,
    QuantileThreshold,
    out_of_sample_scores,
    spe_limit,
)


def test_run_length_counts_consecutive_rows_and_continues_a_carried_run():
    cond = np.array([1, 1, 0, 1, 1, 1], dtype=bool)
    assert run_length(cond).tolist() == [1, 2, 0, 1, 2, 3]
    assert run_length(cond[:, None], carried=np.array([5]))[:, 0].tolist() == [6, 7, 0, 1, 2, 3]


def test_latch_holds_state_between_set_and_reset():
    s = np.array([0, 1, 0, 0, 0, 0], dtype=bool)
    r = np.array([0, 0, 0, 1, 0, 0], dtype=bool)
    assert latch(s, r).astype(int).tolist() == [0, 1, 1, 0, 0, 0]
    assert latch(np.zeros(3, bool), np.zeros(3, bool), initial=True).all()


def test_trailing_mean_uses_only_past_rows():
    x = np.array([0.0, 0, 0, 9, 0])
    assert trailing_mean(x, 3).tolist() == [0, 0, 0, 3, 3]


def test_lagged_stacks_past_values_without_looking_ahead():
    x = np.arange(4.0)[:, None]
    assert lagged(x, 1).tolist() == [[0, 0], [1, 0], [2, 1], [3, 2]]


def test_quantile_threshold_sets_the_training_false_alarm_rate(rng):
    train = rng.standard_normal(10_000)
    th = QuantileThreshold(q=0.99).fit(train)
    fresh = rng.standard_normal(10_000)
    assert 0.005 < th.exceeded(fresh).mean() < 0.02
    assert th.normalise(th.limit_) == 1.0


def test_out_of_sample_scores_are_larger_than_in_sample_for_an_overfitting_model(rng):
    x = rng.standard_normal((200, 1))

    def make(rest):
        return lambda block: np.min(np.abs(block - rest.T), axis=1)  # nearest neighbour distance

    oos = np.concatenate(out_of_sample_scores(x, make, folds=4))
    in_sample = make(x)(x)
    assert oos.mean() > 0 and in_sample.max() == 0


def test_textbook_limits_match_known_values():
    # F-based T² limit tends to the chi-square quantile (33.41 for 17 components) for many samples
    assert np.isclose(ChiSquareThreshold(0.99).fit_params(1_000_000, 17).limit_, 33.41, atol=0.02)
    assert ChiSquareThreshold(0.99).fit_params(500, 17).limit_ > 33.41
    assert spe_limit(np.ones(10), 0.99) > 10


def test_hysteresis_drops_blips_and_holds_through_short_dips():
    over = np.array([1, 0, 0, 1, 1, 0, 1, 1, 0, 0, 0, 0], dtype=bool)
    out = Hysteresis(on_rows=2, off_rows=3).apply(over)
    assert out.astype(int).tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 0, 0]
