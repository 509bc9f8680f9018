import numpy as np

from hazardloop.detect.health import Fault, PeerModel, SensorHealth, describe


def test_stuck_sensor_is_flagged_after_twice_its_longest_healthy_run(rng):
    train = np.round(rng.standard_normal((500, 2)), 1)  # quantised: short repeats are normal
    health = SensorHealth().fit(train)
    test = rng.standard_normal((200, 2))
    test[50:, 0] = 1.234  # stuck
    bits = health.score(test)
    stuck = (bits[:, 0] & Fault.STUCK) > 0
    assert not stuck[:50].any() and stuck[50 + health.stuck_rows_[0] :].all()
    assert not (bits[:, 1] & Fault.STUCK).any()


def test_missing_spike_and_physical_range_are_separate_flags(rng):
    train = rng.standard_normal((500, 1))
    health = SensorHealth(physical_min=np.array([-10.0]), physical_max=np.array([25.0])).fit(train)
    test = rng.standard_normal((20, 1))
    test[5, 0] = np.nan
    test[10, 0] = 20.0  # a jump of ~20 sigma inside the range
    test[15, 0] = 30.0
    labels = [describe(int(b)) for b in health.score(test)[:, 0]]
    assert labels[5] == "missing" and "spike" in labels[10] and "range" in labels[15]
    assert labels[0] == ""


def test_drift_against_peers_blames_the_drifting_sensor_only(correlated):
    train, test = correlated(2000), correlated(600)
    peers = PeerModel().fit(train)
    test[200:, 1] += np.linspace(0, 4, 400)  # slow drift of sensor 1 only
    drift = peers.drift(test) > 1
    assert drift[500:, 1].mean() > 0.9
    assert drift[:, [0, 2, 3]].mean() < 0.02 and drift[:200].mean() < 0.02


def test_impute_replaces_a_faulty_reading_with_what_the_peers_say(correlated):
    train, test = correlated(2000), correlated(50)
    peers = PeerModel().fit(train)
    bad = test.copy()
    bad[:, 2] = 0.0
    fixed = peers.impute(bad, np.tile([False, False, True, False], (50, 1)))
    assert np.abs(fixed[:, 2] - test[:, 2]).mean() < 0.3 * np.abs(bad[:, 2] - test[:, 2]).mean()
