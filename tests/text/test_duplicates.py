from datetime import UTC, datetime, timedelta

import pytest

from hazardloop.text.duplicates import duplicate_guard, exact_duplicate_groups, near_duplicates
from hazardloop.text.errors import TextInputError
from hazardloop.text.records import HazardText

T0 = datetime(2024, 3, 1, 9, 0)


def h(id_: str, text: str, area: str = "A1", days: float = 0) -> HazardText:
    return HazardText(id=id_, area_id=area, text=text, reported_at=T0 + timedelta(days=days))


def test_retyped_text_is_an_exact_duplicate_in_the_same_area_only():
    recs = [h("1", "消防通道堵塞！"), h("2", "消防通道 堵塞"), h("3", "消防通道堵塞", area="B"), h("4", "配电箱未接地")]
    assert exact_duplicate_groups(recs) == [["1", "2"]]
    assert exact_duplicate_groups(recs, same_area=False) == [["1", "2", "3"]]


def test_small_edits_are_near_duplicates():
    recs = [h("1", "仓库消防通道被货物堵塞"), h("2", "仓库消防通道被货物堵塞了", days=2), h("3", "配电箱未接地")]
    (m,) = near_duplicates(recs)
    assert (m.id, m.other_id, m.kind) == ("1", "2", "near")
    assert 0.5 <= m.similarity < 1.0


def test_near_duplicates_respect_area_and_time_window():
    recs = [
        h("1", "仓库消防通道被货物堵塞"),
        h("2", "仓库消防通道被货物堵塞了", area="B"),
        h("3", "仓库消防通道被货物堵塞了", days=45),
    ]
    assert near_duplicates(recs) == []
    assert [m.other_id for m in near_duplicates(recs, window=timedelta(days=60))] == ["3"]


def test_guard_lists_what_a_new_report_repeats():
    existing = [
        h("H1", "二号车间配电箱未接地", days=-3),
        h("H2", "灭火器过期", days=-3),
        h("H3", "二号车间配电箱未接地", area="B", days=-1),
    ]
    new = h("NEW", "二号车间配电箱没有接地")
    matches = duplicate_guard(new, existing)
    assert [(m.id, m.other_id) for m in matches] == [("NEW", "H1")]


def test_guard_flags_an_identical_report_as_exact():
    (m,) = duplicate_guard(h("NEW", "灭火器过期。"), [h("H2", "灭火器过期", days=-1)])
    assert (m.kind, m.similarity) == ("exact", 1.0)


def test_a_different_box_is_not_a_duplicate():
    assert near_duplicates([h("1", "配电箱未接地"), h("2", "配电柜未接地")]) == []


def test_english_retypes_are_near_duplicates():
    (m,) = near_duplicates(
        [
            h("1", "Fire exit blocked by pallets in warehouse"),
            h("2", "fire exit blocked by pallets in the warehouse"),
            h("3", "Exposed live wire at panel 3"),
        ]
    )
    assert (m.id, m.other_id) == ("1", "2")


def test_empty_text_record_is_named():
    with pytest.raises(TextInputError, match="hazard 9: text is empty"):
        near_duplicates([h("1", "a"), h("9", "  ")])


def test_bad_threshold_is_refused():
    with pytest.raises(ValueError, match="threshold"):
        near_duplicates([h("1", "a")], threshold=0)


def test_guard_compares_naive_and_aware_times():
    aware = HazardText("H1", "A1", "灭火器过期", datetime(2024, 3, 1, 8, 0, tzinfo=UTC))
    (m,) = duplicate_guard(h("NEW", "灭火器过期"), [aware])
    assert m.other_id == "H1"


def test_guard_ignores_reports_outside_the_window():
    assert duplicate_guard(h("NEW", "灭火器过期"), [h("OLD", "灭火器过期", days=-90)]) == []
