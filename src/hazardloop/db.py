"""Engine, sessions and migrations.

SQLite is the embedded default (WAL, foreign keys on); PostgreSQL runs the same models and
the same Alembic migrations. Every table is created by migrations only, never by create_all,
so that the schema a user runs is the schema CI tested.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, DateTime, Engine, MetaData, case, create_engine, event, func
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC on the way in and out, whatever the backend stores.

    SQLite keeps no zone, PostgreSQL does; normalising here keeps comparisons and the
    audit hash identical on both.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; HazardLoop stores aware UTC datetimes only")
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    session = factory()
    try:
        yield session
    except Exception:
        session.rollback()
        raise
    finally:
        session.close()


def _alembic_config(url: str):  # noqa: ANN202 - alembic is imported lazily to keep start-up light
    from alembic.config import Config

    script_location = str(resources.files("hazardloop") / "migrations")
    config = Config()
    config.set_main_option("script_location", script_location)
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "heads") -> None:
    """Migrate to the latest schema; "heads" also applies domains whose revisions branch from a common base."""
    from alembic import command

    engine = make_engine(url)  # creates the SQLite folder and sets WAL before Alembic connects
    engine.dispose()
    command.upgrade(_alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    from alembic import command

    command.downgrade(_alembic_config(url), revision)


def current_revision(url: str) -> str | None:
    from alembic.runtime.migration import MigrationContext

    engine = make_engine(url)
    with engine.connect() as connection:
        heads = MigrationContext.configure(connection).get_current_heads()
    engine.dispose()
    return ",".join(sorted(heads)) or None


# ---------------------------------------------------------------- SQL that differs by dialect


def count_if(condition: ColumnElement[bool]) -> ColumnElement[int]:
    """COUNT of rows where `condition` holds, inside one aggregate query (works on SQLite and PostgreSQL)."""
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def as_days(db: Session, column: ColumnElement) -> ColumnElement[float]:
    """A timestamp as fractional days on a fixed scale; differences of two are durations in days."""
    if db.get_bind().dialect.name == "postgresql":
        return func.extract("epoch", column) / 86400.0
    return func.julianday(column)


# Every domain that owns tables is listed here, so Alembic (and tests) see the whole schema.
MODEL_MODULES = (
    "hazardloop.plant.models",
    "hazardloop.auth.models",
    "hazardloop.hazards.models",
    "hazardloop.notify.models",
    "hazardloop.alarms.models",
)


def load_models() -> MetaData:
    import importlib

    for name in MODEL_MODULES:
        importlib.import_module(name)
    return Base.metadata
