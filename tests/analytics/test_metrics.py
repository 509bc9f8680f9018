"""Each cockpit metric on a small hand-built world whose answers are known, and scoped to the viewer's areas."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "foundation"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "hazards"))

from helpers import NOW, make_hazard  # noqa: E402
from world import World, build_world  # noqa: E402

from hazardloop.alarms import service as alarms  # noqa: E402
from hazardloop.alarms.models import Verdict  # noqa: E402
from hazardloop.analytics import metrics  # noqa: E402
from hazardloop.auth.roles import Role  # noqa: E402
from hazardloop.hazards import service as hazards  # noqa: E402
from hazardloop.hazards.models import HazardState  # noqa: E402

DAY = dt.timedelta(days=1)
PERIOD = metrics.Period.last_days(30, NOW)


@pytest.fixture
def world(db) -> World:  # noqa: ANN001
    return build_world(db)


def _hazard(db, world: World, state: HazardState, *, area: str = "a", **fields):  # noqa: ANN001, ANN003, ANN202
    area_id = world.area_a if area == "a" else world.area_b
    hazard = make_hazard(db, state=state, area_id=area_id, responsible_id=None, photos=False,
                         major=fields.pop("major", False), deadline=fields.pop("deadline", None))
    for name, value in fields.items():
        setattr(hazard, name, value)
    db.commit()
    return hazard


def _closed(db, world: World, *, completed: dt.datetime, deadline: dt.datetime, area: str = "a",  # noqa: ANN001
            fast_path: bool = False, closed: dt.datetime | None = None) -> None:
    _hazard(db, world, HazardState.CLOSED, area=area, deadline=deadline, completed_at=completed,
            closed_at=closed or completed + DAY, fast_path=fast_path)


def test_open_overdue_and_major_counts_follow_the_state_and_deadline(db, world: World) -> None:  # noqa: ANN001
    _hazard(db, world, HazardState.RECTIFYING, deadline=NOW - DAY)  # overdue
    _hazard(db, world, HazardState.ASSIGNED, deadline=NOW + DAY)  # open, in time
    _hazard(db, world, HazardState.PENDING_ACCEPTANCE, deadline=NOW - DAY)  # waiting for acceptance: not overdue
    _hazard(db, world, HazardState.PLAN_PENDING, major=True)
    _closed(db, world, completed=NOW - 2 * DAY, deadline=NOW - DAY)
    _hazard(db, world, HazardState.REJECTED)
    assert metrics.open_hazards(db, actor=world.admin, now=NOW).value == 4
    assert metrics.overdue_hazards(db, actor=world.admin, now=NOW).value == 1
    assert metrics.major_open_hazards(db, actor=world.admin, now=NOW).value == 1


def test_overdue_number_equals_the_list_it_links_to(db, world: World) -> None:  # noqa: ANN001
    for days in (1, 2, -3):
        _hazard(db, world, HazardState.RECTIFYING, deadline=NOW - days * DAY)
    kpi = metrics.overdue_hazards(db, actor=world.admin, now=NOW)
    _, total = hazards.list_for_user(db, actor=world.admin, filters=hazards.HazardFilter(overdue=True), now=NOW)
    assert kpi.value == total == 2
    assert kpi.drill.href == "/hazards?overdue=true" and kpi.drill.exact


def test_on_time_rate_counts_completion_against_the_deadline_and_leaves_out_fast_path(db, world: World) -> None:  # noqa: ANN001
    _closed(db, world, completed=NOW - 5 * DAY, deadline=NOW - 4 * DAY)  # on time
    _closed(db, world, completed=NOW - 4 * DAY, deadline=NOW - 4 * DAY)  # on the deadline itself: on time
    _closed(db, world, completed=NOW - 3 * DAY, deadline=NOW - 6 * DAY)  # late
    _closed(db, world, completed=NOW - 2 * DAY, deadline=NOW - 9 * DAY, fast_path=True)  # 立查立改
    _closed(db, world, completed=NOW - 60 * DAY, deadline=NOW - 70 * DAY)  # closed before the period
    kpi = metrics.on_time_rectification_rate(db, actor=world.admin, period=PERIOD)
    assert (kpi.numerator, kpi.denominator, kpi.note) == (2, 3, 1)
    assert kpi.value == pytest.approx(66.7)


def test_on_time_rate_is_none_when_nothing_closed(db, world: World) -> None:  # noqa: ANN001
    assert metrics.on_time_rectification_rate(db, actor=world.admin, period=PERIOD).value is None


def test_mean_time_to_close_runs_from_finding_to_close(db, world: World) -> None:  # noqa: ANN001
    # make_hazard finds every hazard at NOW - 10 days
    _closed(db, world, completed=NOW - 5 * DAY, deadline=NOW, closed=NOW - 4 * DAY)  # 6 days
    _closed(db, world, completed=NOW - 3 * DAY, deadline=NOW, closed=NOW - 2 * DAY)  # 8 days
    kpi = metrics.mean_days_report_to_close(db, actor=world.admin, period=PERIOD)
    assert kpi.value == pytest.approx(7.0) and kpi.denominator == 2


def _alarm(db, world: World, *, at: dt.datetime, sensor: str = "a", kind: str = "limit_h") -> int:  # noqa: ANN001
    sensor_id, area_id = (world.sensor_a, world.area_a) if sensor == "a" else (world.sensor_b, world.area_b)
    ref = alarms.SensorRef(id=sensor_id, tag=f"T{sensor_id}", area_id=area_id, unit="%LEL")
    alarm, _ = alarms.raise_or_update(db, sensor=ref, alarm_type=kind, at=at, value=30.0, reason="test")
    return alarm.id


def test_false_alarm_rate_leaves_out_unjudged_alarms_and_sensor_faults(db, world: World) -> None:  # noqa: ANN001
    judge = world.users[Role.OPERATOR]
    verdicts = (Verdict.TRUE_ALARM, Verdict.FALSE_ALARM, Verdict.FALSE_ALARM, Verdict.SENSOR_FAULT)
    for i, (verdict, kind) in enumerate(zip(verdicts, ("limit_hh", "limit_h", "limit_l", "limit_ll"), strict=True)):
        alarm_id = _alarm(db, world, at=NOW - (i + 1) * DAY, kind=kind)
        alarms.give_verdict(db, actor=judge, alarm_id=alarm_id, verdict=verdict, now=NOW - (i + 1) * DAY)
    _alarm(db, world, at=NOW - DAY, kind="statistical")  # not judged
    kpi = metrics.false_alarm_rate(db, actor=world.admin, period=PERIOD)
    assert (kpi.numerator, kpi.denominator, kpi.note) == (2, 3, 1)
    assert kpi.value == pytest.approx(66.7)


def test_mean_time_to_acknowledge_averages_acknowledged_alarms_only(db, world: World) -> None:  # noqa: ANN001
    operator = world.users[Role.OPERATOR]
    first = _alarm(db, world, at=NOW - 2 * DAY, kind="limit_h")
    second = _alarm(db, world, at=NOW - 2 * DAY, kind="limit_hh")
    _alarm(db, world, at=NOW - 2 * DAY, kind="statistical")  # never acknowledged
    alarms.acknowledge(db, actor=operator, alarm_id=first, now=NOW - 2 * DAY + dt.timedelta(minutes=4))
    alarms.acknowledge(db, actor=operator, alarm_id=second, now=NOW - 2 * DAY + dt.timedelta(minutes=10))
    kpi = metrics.mean_minutes_to_acknowledge(db, actor=world.admin, period=PERIOD)
    assert kpi.value == pytest.approx(7.0, abs=0.1) and kpi.denominator == 2


def test_alarms_today_counts_since_midnight_on_site(db, world: World) -> None:  # noqa: ANN001
    midnight = metrics.plant_day_start(NOW)
    _alarm(db, world, at=midnight + dt.timedelta(minutes=1), kind="limit_h")
    _alarm(db, world, at=midnight - dt.timedelta(minutes=1), kind="limit_hh")  # yesterday on site
    assert metrics.alarms_today(db, actor=world.admin, now=NOW).value == 1


def test_a_scoped_user_counts_only_their_areas(db, world: World) -> None:  # noqa: ANN001
    officer = world.users[Role.SAFETY_OFFICER]  # granted area A only
    _hazard(db, world, HazardState.RECTIFYING, deadline=NOW - DAY)
    _hazard(db, world, HazardState.RECTIFYING, area="b", deadline=NOW - DAY)
    _hazard(db, world, HazardState.REPORTED, area="b")
    _closed(db, world, completed=NOW - 3 * DAY, deadline=NOW - 6 * DAY, area="b")
    _alarm(db, world, at=NOW - DAY, sensor="b")
    assert metrics.open_hazards(db, actor=officer, now=NOW).value == 1
    assert metrics.overdue_hazards(db, actor=officer, now=NOW).value == 1
    assert metrics.on_time_rectification_rate(db, actor=officer, period=PERIOD).denominator == 0
    assert metrics.alarms_today(db, actor=officer, now=NOW + DAY).value == 0
    board = metrics.cockpit(db, actor=officer, now=NOW)
    assert {a.id for a in board.areas} == {world.area_a}
    assert {c.area_id for c in board.heatmap} == {world.area_a}
    assert metrics.open_hazards(db, actor=world.admin, now=NOW).value == 3


def test_each_heatmap_cell_equals_its_filtered_list(db, world: World) -> None:  # noqa: ANN001
    _hazard(db, world, HazardState.RECTIFYING)
    _hazard(db, world, HazardState.CLOSED, category="fire")
    _hazard(db, world, HazardState.REPORTED, area="b", category="fire")
    _hazard(db, world, HazardState.REPORTED, category=None)  # not yet classified: no cell
    cells = metrics.distribution(db, actor=world.admin)
    assert sum(c.count for c in cells) == 3
    for cell in cells:
        f = hazards.HazardFilter(area_id=cell.area_id, category=cell.category)
        assert hazards.list_for_user(db, actor=world.admin, filters=f)[1] == cell.count
        assert cell.drill.exact and f"category={cell.category}" in cell.drill.href


def test_progress_per_state_adds_up_to_the_open_hazards(db, world: World) -> None:  # noqa: ANN001
    for state in (HazardState.REPORTED, HazardState.RECTIFYING, HazardState.RECTIFYING, HazardState.CLOSED):
        _hazard(db, world, state)
    progress = metrics.rectification_progress(db, actor=world.admin)
    assert sum(p.count for p in progress) == metrics.open_hazards(db, actor=world.admin, now=NOW).value == 3
    assert next(p for p in progress if p.state == "RECTIFYING").count == 2


def test_weekly_trend_buckets_found_and_closed_by_plant_week(db, world: World) -> None:  # noqa: ANN001
    _closed(db, world, completed=NOW - 3 * DAY, deadline=NOW, closed=NOW - 2 * DAY)
    weeks = metrics.weekly_trend(db, actor=world.admin, now=NOW, weeks=4)
    assert [w.start for w in weeks] == ["2026-05-11", "2026-05-18", "2026-05-25", "2026-06-01"]
    assert [w.found for w in weeks] == [0, 1, 0, 0]  # found 2026-05-22
    assert [w.closed for w in weeks] == [0, 0, 1, 0]  # closed 2026-05-30


def test_cockpit_api_answers_with_every_dataset(client, world: World) -> None:  # noqa: ANN001
    response = client.get("/api/v1/analytics/cockpit?days=7", headers=world.auth(Role.SAFETY_MANAGER))
    assert response.status_code == 200
    body = response.json()
    assert {k["key"] for k in body["kpis"]} >= {"open_hazards", "overdue_hazards", "on_time_rate", "false_alarm_rate"}
    assert len(body["weeks"]) == metrics.TREND_WEEKS and body["period_days"] == 7
