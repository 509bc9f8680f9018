import numpy as np
import pytest

from hazardloop.detect.base import DetectInputError
from hazardloop.detect.limits import AlarmLimits, LimitBank


def bank(**kw) -> LimitBank:
    return LimitBank([AlarmLimits.from_config({"tag": "H2S-101", "H": 10, "HH": 20, "L": 2, "LL": 1, **kw})])


def test_second_level_and_deadband_keep_alarm_until_reading_is_clearly_back():
    b = bank(deadband=1.0)
    x = np.array([5, 11, 21, 19.5, 18.9, 9.5, 8.9, 1.5, 0.5])[:, None]
    level, alarm = b.update(np.arange(9.0), x)
    assert level[:, 0].tolist() == [0, 1, 2, 2, 1, 1, 0, -1, -2]
    assert alarm[:, 0].tolist() == [False] + [True] * 5 + [False, True, True]


def test_on_delay_ignores_short_excursions_and_off_delay_holds_the_alarm():
    b = bank(on_delay_s=3, off_delay_s=2)
    x = np.array([5, 12, 5, 12, 12, 12, 12, 5, 5, 5])[:, None]
    _, alarm = b.update(np.arange(10.0), x)
    assert alarm[:, 0].astype(int).tolist() == [0, 0, 0, 0, 0, 0, 1, 1, 1, 0]


def test_state_carried_between_batches_gives_the_same_answer_as_one_batch(rng):
    x = 10 + 3 * rng.standard_normal((400, 1))
    ts = np.arange(400.0)
    one_level, one_alarm = bank(deadband=0.5, on_delay_s=2, off_delay_s=3).update(ts, x)
    b = bank(deadband=0.5, on_delay_s=2, off_delay_s=3)
    parts = [b.update(ts[i : i + 37], x[i : i + 37]) for i in range(0, 400, 37)]
    assert np.array_equal(np.vstack([p[0] for p in parts]), one_level)
    assert np.array_equal(np.vstack([p[1] for p in parts]), one_alarm)


def test_operator_text_names_tag_level_and_duration():
    assert bank().describe(0, 2, 30) == "H2S-101 above HH for 30 s"


def test_limits_in_the_wrong_order_are_refused():
    with pytest.raises(DetectInputError, match="LL <= L <= H <= HH"):
        AlarmLimits(tag="X", hi=10, hi_hi=5)
