from datetime import datetime
from pathlib import Path

import pytest

from hazardloop.text.errors import DatasetError
from hazardloop.text.feedback import Label, accuracy_over_time, labels_path, read_labels, record_label


def verdict(text: str, suggested: str, confirmed: str, month: int, version: str = "v1") -> Label:
    return Label(
        text=text, suggested=suggested, confirmed=confirmed, model_version=version, at=datetime(2024, month, 3, 8, 30)
    )


def test_labels_are_appended_and_read_back(tmp_path: Path):
    record_label(tmp_path, verdict("配电箱未接地", "fire", "electrical", 1))
    record_label(tmp_path, verdict("灭火器过期", "fire", "fire", 1))
    got = read_labels(tmp_path)
    assert [(g.text, g.confirmed, g.accepted) for g in got] == [
        ("配电箱未接地", "electrical", False),
        ("灭火器过期", "fire", True),
    ]
    assert got[0].at == datetime(2024, 1, 3, 8, 30)
    assert labels_path(tmp_path).read_text(encoding="utf-8").count("\n") == 2


def test_accuracy_over_time_per_month_and_model(tmp_path: Path):
    labels = [
        verdict("a", "x", "x", 1),
        verdict("b", "x", "y", 1),
        verdict("c", "x", "x", 2),
        verdict("d", "y", "y", 2, "v2"),
        verdict("e", "y", "y", 2, "v2"),
    ]
    points = accuracy_over_time(labels)
    assert [(p.period, p.model_version, p.n, p.accuracy) for p in points] == [
        ("2024-01", "v1", 2, 0.5),
        ("2024-02", "v1", 1, 1.0),
        ("2024-02", "v2", 2, 1.0),
    ]
    (q1,) = accuracy_over_time(labels, period="quarter", by_model=False)
    assert (q1.period, q1.n, q1.accepted) == ("2024-Q1", 5, 4)


def test_empty_confirmation_is_refused(tmp_path: Path):
    with pytest.raises(ValueError, match="confirmed value is empty"):
        record_label(tmp_path, verdict("配电箱", "fire", " ", 1))
    assert not labels_path(tmp_path).exists()


def test_a_corrupt_line_is_named(tmp_path: Path):
    record_label(tmp_path, verdict("配电箱", "fire", "electrical", 1))
    with labels_path(tmp_path).open("a", encoding="utf-8") as fh:
        fh.write("{not json\n")
    with pytest.raises(DatasetError, match="line 2: not a label record"):
        read_labels(tmp_path)


def test_unknown_period_is_refused():
    with pytest.raises(ValueError, match="period must be one of"):
        accuracy_over_time([], period="fortnight")
