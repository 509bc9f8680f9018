import numpy as np

from hazardloop.detect.table import DetectConfig, TableDetector

NAMES = ["FIC-201", "TI-205", "PI-300", "LI-400"]


def fitted(correlated, n_train=600):
    train = correlated(n_train)
    return TableDetector(NAMES).fit(train, np.arange(n_train, dtype=float)), train


def run(det, train, test):
    x = np.vstack([train, test])
    return det.detect(x, np.arange(len(x), dtype=float)), len(train)


def test_normal_data_raises_few_alarms(correlated):
    det, train = fitted(correlated)
    res, k = run(det, train, correlated(2000))
    assert res.is_anomaly[k:].mean() < 0.05


def test_broken_correlation_is_found_and_explained(correlated):
    det, train = fitted(correlated)
    test = correlated(400)
    test[200:, 1] = 50 + (test[200:, 1] - 50) * -1.0
    res, k = run(det, train, test)
    assert res.is_anomaly[k + 210 :].mean() > 0.8 and res.is_anomaly[k : k + 200].mean() < 0.1
    assert any("TI-205" in r for r in res.reason[k + 210 :])


def test_slow_ramp_is_found_before_it_is_far_out(correlated):
    det, train = fitted(correlated)
    test = correlated(600)
    test[100:, 2] += np.linspace(0, 3, 500)  # reaches one training sigma of PI-300 around row 400
    res, k = run(det, train, test)
    first = int(np.argmax(res.is_anomaly[k + 100 :]))
    assert res.is_anomaly[k + 100 :].any() and first < 350


def test_stuck_sensor_is_a_sensor_fault_and_does_not_poison_the_process_score(correlated):
    det, train = fitted(correlated)
    test = correlated(400)
    test[100:, 3] = test[100, 3]
    res, k = run(det, train, test)
    labels = res.fault_labels(3)
    assert all("stuck" in lab for lab in labels[k + 120 :]) and not any(labels[k : k + 100])
    assert res.components["spe"][k + 130 :].mean() < 1.0  # the process looks normal without LI-400
    assert "LI-400 stuck" in res.reason[k + 150]


def test_spike_is_flagged_on_the_row_it_happens(correlated):
    det, train = fitted(correlated)
    test = correlated(100)
    test[50, 0] += 40
    res, k = run(det, train, test)
    assert "spike" in res.fault_labels(0)[k + 50] and res.is_anomaly[k + 50]


def test_result_for_a_row_does_not_depend_on_later_rows(correlated):
    det, train = fitted(correlated)
    test = correlated(300)
    test[150:, 0] += 3
    full, k = run(det, train, test)
    cut, _ = run(det, train, test[:200])
    assert np.allclose(full.score[: k + 200], cut.score)
    assert np.array_equal(full.is_anomaly[: k + 200], cut.is_anomaly)


def warming(correlated, n, start=0.0, rate=0.01, seed=1):
    """The four correlated sensors plus a fifth that only warms up slowly (a water temperature)."""
    noise = np.random.default_rng(seed).standard_normal(n) * 0.02
    return np.column_stack([correlated(n), 25 + start + rate * np.arange(n) + noise])


def test_a_sensor_that_only_trends_in_training_is_watched_by_its_changes_not_its_level(correlated):
    train = warming(correlated, 600)
    det = TableDetector([*NAMES, "TT-500"]).fit(train, np.arange(600, dtype=float))
    assert det.slow_.tolist() == [False] * 4 + [True]
    assert det.feature_names()[-1] == "TT-500 (rate)"
    test = warming(correlated, 3000, start=6.0)  # keeps warming far beyond anything seen in training
    test[2000:, 4] += 3.0  # a sudden jump: a change no slow warm-up makes
    res, k = run(det, train, test)
    assert res.is_anomaly[k : k + 2000].mean() < 0.05
    assert res.is_anomaly[k + 2000] and "TT-500" in res.reason[k + 2000]


def test_stationary_sensors_are_not_slow_and_limits_cover_every_training_block(correlated):
    det, _ = fitted(correlated)
    assert not det.slow_.any()
    assert all(np.all(lim.limit_ > 0) for lim in det.limits.values())


def test_limits_also_cover_the_last_training_rows_scored_by_a_model_of_the_earlier_ones():
    """A sensor that gets noisier through training: the forward-scored block widens its limit."""
    rng = np.random.default_rng(7)
    latent = np.zeros((1600, 2))
    for t in range(1, 1600):
        latent[t] = 0.8 * latent[t - 1] + rng.standard_normal(2)
    x = 50 + latent @ np.array([[1.0, 0.5, 0.0, 1.0], [0.0, 1.0, 1.0, -0.5]]) + 0.1 * rng.standard_normal((1600, 4))
    x[:, 3] += 0.6 * np.clip((np.arange(1600) - 300) / 300, 0, 1) * rng.standard_normal(1600)
    without = TableDetector(NAMES, DetectConfig(forward_share=0.0)).fit(x[:600])
    forward = TableDetector(NAMES, DetectConfig(forward_share=0.3)).fit(x[:600])
    assert all(np.all(forward.limits[k].limit_ >= without.limits[k].limit_) for k in without.limits)
    assert forward.limits["spe"].limit_ > without.limits["spe"].limit_
    ts = np.arange(1600, dtype=float)
    assert forward.detect(x, ts).is_anomaly[600:].mean() < without.detect(x, ts).is_anomaly[600:].mean()


def test_canonical_variate_components_can_be_switched_on_and_name_their_sensors(correlated):
    cfg = DetectConfig(components=("ewma", "t2", "spe", "cva_t2", "cva_q"))
    train = correlated(600)
    det = TableDetector(NAMES, cfg).fit(train, np.arange(600, dtype=float))
    test = correlated(400)
    test[200:, 1] = 50 + (test[200:, 1] - 50) * -1.0
    res, k = run(det, train, test)
    assert {"cva_t2", "cva_q"} <= set(res.components)
    assert res.is_anomaly[k + 210 :].mean() > 0.8 and res.is_anomaly[k : k + 200].mean() < 0.1
    assert any("CVA" in r and "TI-205" in r for r in res.reason[k + 210 :])
