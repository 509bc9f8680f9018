"""Shared fixtures: a migrated database (SQLite by default, PostgreSQL when
HAZARDLOOP_TEST_DATABASE_URL is set, as CI does), a clean state per test, and the web app."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from hazardloop import db as hl_db
from hazardloop.config import Settings

BENCH_DATA = Path(
    os.environ.get("HAZARDLOOP_BENCH_DATA", Path(__file__).resolve().parents[1] / ".." / "shared" / "data")
)


@pytest.fixture(autouse=True, scope="session")
def _cheap_password_hashing() -> Iterator[None]:
    """Tests create hundreds of users; argon2's production cost (tens of ms each) would dominate the run.
    Stored hashes carry their own parameters, so verification is unchanged."""
    from argon2 import PasswordHasher

    from hazardloop.auth import passwords

    production = passwords._hasher
    passwords._hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    yield
    passwords._hasher = production


@pytest.fixture(scope="session")
def bench_data() -> Path:
    return BENCH_DATA.resolve()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server_url = os.environ.get("HAZARDLOOP_TEST_DATABASE_URL")
    if not server_url:
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
        hl_db.upgrade(url)
        yield url
        return
    # A fresh database per test run on the server, so parallel runs and old state never interfere.
    name = f"hl_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    hl_db.upgrade(url)
    yield url
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def engine(database_url: str):  # noqa: ANN201
    engine = hl_db.make_engine(database_url)
    yield engine
    engine.dispose()


def _wipe(engine) -> None:  # noqa: ANN001
    metadata = hl_db.load_models()
    with engine.begin() as connection:
        for table in reversed(metadata.sorted_tables):
            connection.execute(table.delete())


@pytest.fixture
def db(engine) -> Iterator[Session]:  # noqa: ANN001
    _wipe(engine)
    session = hl_db.make_session_factory(engine)()
    yield session
    session.close()


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "var", database_url=database_url, secret_key="test-secret",
                    scheduler_enabled=False, demo_stream=False)


@pytest.fixture
def app(settings: Settings, db: Session):  # noqa: ANN201 - db wipes the state first
    from hazardloop.web.app import create_app

    application = create_app(settings)
    yield application
    application.state.engine.dispose()


@pytest.fixture
def client(app):  # noqa: ANN001, ANN201
    from fastapi.testclient import TestClient

    with TestClient(app) as test_client:
        yield test_client


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test that touches the database, so CI can run exactly those again on PostgreSQL."""
    for item in items:
        if {"db", "engine", "database_url"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.db)
