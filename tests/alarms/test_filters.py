"""Listing alarms by verdict, type family and raise window through service.AlarmFilter — the filters the
报警台 and the cockpit's drill-downs rely on, applied in the database and within the reader's areas."""

from __future__ import annotations

import datetime as dt

import pytest
from alarm_clock import T0

from hazardloop.alarms import service
from hazardloop.alarms.models import Verdict
from hazardloop.auth.roles import Role
from hazardloop.errors import InvalidInput

MIN = dt.timedelta(minutes=1)
HOUR = dt.timedelta(hours=1)


class Board:
    """Alarms of every family on both sensors, raised an hour apart from T0, some of them judged."""

    def __init__(self, db, world, gt101, gt201) -> None:  # noqa: ANN001
        self.db, self.world = db, world
        self.ids: dict[str, int] = {}
        for hours, name, sensor, kind in (
            (0, "hh_a", gt101, "limit_hh"),
            (1, "l_b", gt201, "limit_l"),
            (2, "stat_a", gt101, "statistical"),
            (3, "stuck_a", gt101, "sensor_fault:stuck"),
            (4, "silent_b", gt201, "silent"),
            (5, "h_a", gt101, "limit_h"),
        ):
            alarm, _ = service.raise_or_update(db, sensor=sensor, alarm_type=kind, at=T0 + hours * HOUR, value=1.0,
                                               reason=name)
            self.ids[name] = alarm.id
        judge = world.users[Role.SAFETY_MANAGER]
        judge.all_areas = True  # the world's people are granted area A only
        db.commit()
        for name, verdict in (("hh_a", Verdict.TRUE_ALARM), ("l_b", Verdict.FALSE_ALARM),
                              ("stuck_a", Verdict.SENSOR_FAULT), ("h_a", Verdict.FALSE_ALARM)):
            service.give_verdict(db, actor=judge, alarm_id=self.ids[name], verdict=verdict, now=T0 + 6 * HOUR)

    def listed(self, role: Role | None = None, **filters: object) -> set[str]:
        actor = self.world.admin if role is None else self.world.users[role]
        rows, total = service.list_for_user(self.db, actor=actor, filters=service.AlarmFilter(**filters), limit=None,
                                            now=T0 + 7 * HOUR)
        assert total == len(rows)
        names = {v: k for k, v in self.ids.items()}
        return {names[a.id] for a in rows}


@pytest.fixture
def board(db, world, gt101, gt201) -> Board:  # noqa: ANN001
    return Board(db, world, gt101, gt201)


def test_a_verdict_lists_the_alarms_judged_so(board: Board) -> None:
    assert board.listed(verdict="false_alarm") == {"l_b", "h_a"}
    assert board.listed(verdict="true_alarm") == {"hh_a"}
    assert board.listed(verdict="sensor_fault") == {"stuck_a"}


def test_verdict_none_lists_the_alarms_nobody_has_judged(board: Board) -> None:
    assert board.listed(verdict="none") == {"stat_a", "silent_b"}


def test_each_type_family_lists_its_types(board: Board) -> None:
    assert board.listed(type_family="limit") == {"hh_a", "l_b", "h_a"}
    assert board.listed(type_family="statistical") == {"stat_a"}


def test_a_silent_sensor_counts_as_a_sensor_fault(board: Board) -> None:
    assert board.listed(type_family="sensor_fault") == {"stuck_a", "silent_b"}


def test_the_raise_window_includes_its_start_and_excludes_its_end(board: Board) -> None:
    assert board.listed(raised_from=T0 + HOUR, raised_to=T0 + 3 * HOUR) == {"l_b", "stat_a"}
    assert board.listed(raised_from=T0 + 5 * HOUR) == {"h_a"}
    assert board.listed(raised_to=T0 + MIN) == {"hh_a"}


def test_the_window_compares_instants_whatever_their_zone(board: Board) -> None:
    beijing = dt.timezone(dt.timedelta(hours=8))
    assert board.listed(raised_from=(T0 + 4 * HOUR).astimezone(beijing)) == {"silent_b", "h_a"}


def test_new_filters_combine_with_the_old_ones_and_the_readers_areas(board: Board) -> None:
    assert board.listed(verdict="false_alarm", type_family="limit", area_id=board.world.area_a) == {"h_a"}
    assert board.listed(verdict="none", active=True, raised_to=T0 + 3 * HOUR) == {"stat_a"}
    assert board.listed(Role.OPERATOR, type_family="sensor_fault") == {"stuck_a"}  # silent_b is in area B
    assert board.listed(Role.OPERATOR, verdict="false_alarm") == {"h_a"}


@pytest.mark.parametrize(("field", "value"), [
    ("verdict", "false"), ("verdict", "None"), ("type_family", "limits"), ("type_family", "silent"),
])
def test_an_unknown_verdict_or_family_is_refused_naming_the_field(field: str, value: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        service.AlarmFilter(**{field: value})
    assert refused.value.field == field and value in refused.value.message


@pytest.mark.parametrize("field", ["raised_from", "raised_to"])
def test_a_window_bound_without_a_time_zone_is_refused(field: str) -> None:
    with pytest.raises(InvalidInput, match="time zone") as refused:
        service.AlarmFilter(**{field: dt.datetime(2026, 6, 1, 8, 0)})
    assert refused.value.field == field
