"""`hazardloop demo` leaves a living plant: people in every role and hazards in every state."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from hazardloop.auth import audit
from hazardloop.auth import service as auth_service
from hazardloop.auth.roles import Role
from hazardloop.demo.build import build_demo
from hazardloop.hazards import service as hazards
from hazardloop.hazards.models import HazardState

TODAY = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


def test_demo_has_every_role_every_state_and_an_intact_audit_chain(db, tmp_path: Path) -> None:  # noqa: ANN001
    result = build_demo(db, data_dir=tmp_path, seed=3, days=1, hazards_per_day=0.4, today=TODAY)
    admin = _admin(db)
    assert {Role(u.role) for u in auth_service.list_users(db, actor=admin)} == set(Role)
    rows, total = hazards.list_for_user(db, actor=admin, limit=None)
    assert {HazardState(h.state) for h in rows} == set(HazardState)
    assert total > 100
    assert any(h.is_overdue(TODAY) for h in rows), "some open work is overdue"
    assert any(h.is_major for h in rows) and any(h.fast_path for h in rows) and any(h.reopen_count for h in rows)
    assert all(h.found_at < TODAY for h in rows)
    assert audit.verify(db).ok
    assert result.history_path.exists() and result.truth_path.read_text().count("\n") > 1


def test_scoped_demo_user_sees_only_their_areas(db, tmp_path: Path) -> None:  # noqa: ANN001
    build_demo(db, data_dir=tmp_path, seed=3, days=1, hazards_per_day=0.2, today=TODAY)
    viewer = next(u for u in auth_service.list_users(db, actor=_admin(db)) if u.username == "viewer")
    rows, _ = hazards.list_for_user(db, actor=viewer, limit=None)
    assert rows and {h.area_id for h in rows} <= viewer.area_ids


def _admin(db):  # noqa: ANN001, ANN202
    from sqlalchemy import select

    from hazardloop.auth.models import User

    return db.scalar(select(User).where(User.username == "admin"))


def test_demo_alarm_history_is_detected_acknowledged_and_judged_from_the_ground_truth(db, tmp_path: Path) -> None:  # noqa: ANN001
    from sqlalchemy import select

    from hazardloop.alarms import service as alarms
    from hazardloop.alarms.models import Alarm, AlarmEvent, DetectorState
    from hazardloop.demo.alarm_history import DETECTOR, UNHANDLED
    from hazardloop.readings.store import ReadingStore

    end = dt.datetime(2026, 11, 1, 9, 30, tzinfo=dt.UTC)
    with ReadingStore(tmp_path / "readings.duckdb") as store:
        result = build_demo(db, data_dir=tmp_path, seed=3, days=1, hazards_per_day=0, today=end, store=store,
                            alarm_days=3)
        history = result.alarms
        assert history is not None and history.readings == store.count() > 3 * 1440 * 50
    rows = list(db.scalars(select(Alarm).order_by(Alarm.first_at)))
    assert len(rows) == history.raised > 10
    assert all(end - dt.timedelta(days=3) <= a.first_at <= end for a in rows)
    assert not any(a.active for a in rows)  # the history ends, and so do its conditions
    handled = [a for a in rows if a.first_at <= end - UNHANDLED]
    assert all(a.acknowledged and a.verdict and a.acknowledged_at >= a.first_at for a in handled)
    assert {a.verdict for a in handled} >= {"true_alarm", "false_alarm"}
    assert sum(history.judged.values()) == len(handled) and history.unhandled == len(rows) - len(handled)
    kinds = {e.kind for e in db.scalars(select(AlarmEvent).where(AlarmEvent.alarm_id == handled[0].id))}
    assert {"raised", "acknowledged", "verdict"} <= kinds  # the ordinary timeline, written by the services
    assert alarms.pending_alarm_notifications(db) == []  # handed over, so no channel gets old alarms later
    assert db.get(DetectorState, DETECTOR) is None and db.get(DetectorState, "live") is None  # live starts fresh
    assert audit.verify(db).ok
