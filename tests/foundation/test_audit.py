"""The audit chain notices any edited or deleted row, including rows cut off the end."""

from __future__ import annotations

from sqlalchemy import text
from typer.testing import CliRunner
from world import World

from hazardloop.auth import audit


def test_untouched_chain_verifies(db, world: World) -> None:  # noqa: ANN001
    report = audit.verify(db)
    assert report.ok and report.checked > 10


def test_edited_row_is_named(db, world: World) -> None:  # noqa: ANN001
    db.execute(text("UPDATE audit_events SET note = 'nothing happened' WHERE seq = 5"))
    db.commit()
    report = audit.verify(db)
    assert not report.ok
    assert any("event 5" in p and "edited" in p for p in report.problems)


def test_edited_before_after_values_are_caught(db, world: World) -> None:  # noqa: ANN001
    db.execute(text("UPDATE audit_events SET actor_name = 'someone_else' WHERE seq = 3"))
    db.commit()
    assert any("event 3" in p for p in audit.verify(db).problems)


def test_deleted_row_in_the_middle_is_found(db, world: World) -> None:  # noqa: ANN001
    db.execute(text("DELETE FROM audit_events WHERE seq = 4"))
    db.commit()
    problems = audit.verify(db).problems
    assert any("missing" in p and "4" in p for p in problems)


def test_rows_cut_off_the_end_are_found(db, world: World) -> None:  # noqa: ANN001
    last = db.execute(text("SELECT max(seq) FROM audit_events")).scalar()
    db.execute(text("DELETE FROM audit_events WHERE seq >= :s"), {"s": last - 1})
    db.commit()
    assert any("cut off the end" in p for p in audit.verify(db).problems)


def test_every_write_records_who_and_before_after(client, world: World) -> None:
    admin = {"Authorization": f"Bearer {world.tokens[world.admin.role_enum]}"}
    client.patch(f"/api/v1/plant/sensors/{world.sensor_a}", json={"hh": 60}, headers=admin)
    event = client.get("/api/v1/audit?limit=1", headers=admin).json()[0]
    assert event["action"] == "sensors.update" and event["actor_name"] == "admin"
    assert event["before"]["hh"] == 50 and event["after"]["hh"] == 60


def test_passwords_never_reach_the_audit_log(db, world: World) -> None:  # noqa: ANN001
    rows = db.execute(text("SELECT after FROM audit_events WHERE action = 'user.create'")).scalars().all()
    assert rows and all("argon2" not in str(r) for r in rows)


def test_cli_verify_exits_nonzero_on_tampering(db, world: World, settings, monkeypatch) -> None:  # noqa: ANN001
    from hazardloop import config
    from hazardloop.cli import app

    monkeypatch.setenv("HAZARDLOOP_DATABASE_URL", settings.database_url)
    config.get_settings.cache_clear()
    runner = CliRunner()
    assert runner.invoke(app, ["audit", "verify"]).exit_code == 0
    db.execute(text("UPDATE audit_events SET action = 'x' WHERE seq = 2"))
    db.commit()
    result = runner.invoke(app, ["audit", "verify"])
    config.get_settings.cache_clear()
    assert result.exit_code == 1 and "BROKEN" in result.output
