"""Settings come from hazardloop.toml and HAZARDLOOP_* variables; SQLite runs in WAL with foreign keys."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from hazardloop import db as hl_db
from hazardloop.config import Settings


def test_toml_file_is_read_and_environment_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "hazardloop.toml"
    config.write_text('data_dir = "/srv/hl"\nport = 9000\ndefault_language = "en"\n', encoding="utf-8")
    monkeypatch.setenv("HAZARDLOOP_CONFIG", str(config))
    monkeypatch.setenv("HAZARDLOOP_PORT", "9100")
    settings = Settings()
    assert settings.data_dir == Path("/srv/hl") and settings.default_language == "en"
    assert settings.port == 9100
    assert settings.resolved_database_url == f"sqlite:///{Path('/srv/hl/hazardloop.db').resolve()}"


def test_unknown_language_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HAZARDLOOP_DEFAULT_LANGUAGE", "fr")
    with pytest.raises(ValueError, match="default_language"):
        Settings()


def test_secret_key_is_generated_once_and_kept(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    first = settings.resolved_secret_key()
    assert len(first) > 40 and Settings(data_dir=tmp_path).resolved_secret_key() == first
    assert (tmp_path / "secret.key").stat().st_mode & 0o077 == 0


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    hl_db.upgrade(url)
    engine = hl_db.make_engine(url)
    with engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
        with pytest.raises(Exception, match="FOREIGN KEY"):
            connection.execute(text("INSERT INTO areas (site_id, code, name_zh, name_en, polygon) "
                                    "VALUES (999, 'X', 'x', 'x', '[]')"))
    assert hl_db.current_revision(url) is not None
    engine.dispose()


def test_migrations_go_down_and_up_again(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'y.db'}"
    hl_db.upgrade(url)
    head = hl_db.current_revision(url)
    hl_db.downgrade(url, "base")
    assert hl_db.current_revision(url) is None
    hl_db.upgrade(url)
    assert hl_db.current_revision(url) == head
