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


def test_cockpit_on_an_exact_window_counts_what_the_aggregate_readers_count(db, world: World) -> None:  # noqa: ANN001
    from hazardloop.alarms import stats as alarm_stats
    from hazardloop.hazards import stats as hazard_stats

    window = metrics.Period(since=NOW - 20 * DAY, until=NOW - 5 * DAY)
    _hazard(db, world, HazardState.REPORTED, category="fire", found_at=NOW - 15 * DAY)  # in the window
    _hazard(db, world, HazardState.REPORTED, area="b", category="fire", found_at=NOW - 6 * DAY)  # in
    _hazard(db, world, HazardState.REPORTED, category="fire", found_at=NOW - 2 * DAY)  # after it
    _hazard(db, world, HazardState.REPORTED, category="fire", found_at=NOW - 40 * DAY)  # before it
    _closed(db, world, completed=NOW - 12 * DAY, deadline=NOW - 11 * DAY)  # closed in the window, on time
    _closed(db, world, completed=NOW - 3 * DAY, deadline=NOW - 9 * DAY)  # closed after it
    judge = world.users[Role.OPERATOR]
    for days, verdict in ((8, Verdict.FALSE_ALARM), (9, Verdict.TRUE_ALARM), (2, Verdict.FALSE_ALARM)):
        alarm_id = _alarm(db, world, at=NOW - days * DAY, kind=f"limit_{'h' if days != 9 else 'hh'}")
        alarms.give_verdict(db, actor=judge, alarm_id=alarm_id, verdict=verdict, now=NOW - days * DAY)
        alarms.clear(db, sensor_id=world.sensor_a, alarm_type=f"limit_{'h' if days != 9 else 'hh'}",
                     at=NOW - days * DAY + dt.timedelta(minutes=1))

    board = metrics.cockpit(db, actor=world.admin, now=NOW, window=window, trend_weeks=4)
    kpis = {k.key: k for k in board.kpis}
    closures = hazard_stats.closures(db, actor=world.admin, since=window.since, until=window.until)
    raised = alarm_stats.raised_between(db, actor=world.admin, since=window.since, until=window.until)
    assert (kpis["on_time_rate"].numerator, kpis["on_time_rate"].denominator) == (closures.on_time, 1)
    assert (kpis["false_alarm_rate"].numerator, kpis["false_alarm_rate"].denominator) == (raised.false_alarms, 2)
    assert kpis["false_alarm_rate"].value == 50.0
    assert (board.period_since, board.period_until, board.period_days) == (window.since, window.until, 15)
    assert len(board.weeks) == 4 and board.weeks[-1].start <= (NOW - 5 * DAY).date().isoformat()

    days = window.plant_days()
    # found inside the window's plant days only: the two above and the two closed ones (found NOW - 10 days)
    assert sum(c.count for c in board.heatmap) == 4
    for cell in board.heatmap:
        f = hazards.HazardFilter(area_id=cell.area_id, category=cell.category, found_from=days.since,
                                 found_to=days.until)
        assert hazards.list_for_user(db, actor=world.admin, filters=f)[1] == cell.count
        assert cell.drill.exact and f"found_from={metrics._day(days.since)}" in cell.drill.href
    assert sum(c.count for c in metrics.cockpit(db, actor=world.admin, now=NOW).heatmap) == 5  # last 30 days
    assert sum(c.count for c in metrics.distribution(db, actor=world.admin)) == 6  # no window: all time


def test_a_period_is_whole_seconds_and_covers_whole_plant_days() -> None:
    since = dt.datetime(2026, 5, 1, 15, 59, 59, 900_000, tzinfo=dt.UTC)  # 23:59:59.9 on 1 May in Beijing
    period = metrics.Period(since=since, until=since + 2 * DAY)
    assert period.since.microsecond == 0 and period.days == 2
    days = period.plant_days()
    assert days.since == dt.datetime(2026, 4, 30, 16, 0, tzinfo=dt.UTC)  # 1 May 00:00 Beijing
    assert days.until == dt.datetime(2026, 5, 3, 16, 0, tzinfo=dt.UTC)  # 4 May 00:00: 3 May is covered


def test_cockpit_api_takes_an_exact_window_and_names_a_bad_field(client, db, world: World) -> None:  # noqa: ANN001
    _hazard(db, world, HazardState.REPORTED, category="fire", found_at=NOW - 15 * DAY)
    _hazard(db, world, HazardState.REPORTED, category="fire", found_at=NOW - 2 * DAY)
    auth = world.auth(Role.SAFETY_MANAGER)
    window = {"since": (NOW - 20 * DAY).isoformat(), "until": (NOW - 5 * DAY).isoformat()}
    body = client.get("/api/v1/analytics/cockpit", params=window, headers=auth).json()
    assert body["period_days"] == 15 and sum(c["count"] for c in body["heatmap"]) == 1
    refused = client.get("/api/v1/analytics/cockpit", params={"since": window["until"], "until": window["since"]},
                         headers=auth)
    assert refused.status_code == 422 and refused.json()["detail"]["field"] == "until"
    naive = client.get("/api/v1/analytics/cockpit", params={"since": "2026-05-01T00:00:00"}, headers=auth)
    assert naive.status_code == 422 and naive.json()["detail"]["field"] == "since"
