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
