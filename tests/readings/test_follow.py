"""``PgReadingStore.follow``: rows other processes store in PostgreSQL reach this process's listeners, each
exactly once, including rows whose transaction commits after newer ones were already announced."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from functools import partial

import numpy as np
import psycopg
import pytest
from psycopg import sql
from readings_pg import PG_URL, pg_answers

import waiting
from hazardloop.readings.pgstore import PgReadingStore, libpq_url

pytestmark = pytest.mark.db

WRITER = """
import sys
import numpy as np
from hazardloop.readings.pgstore import PgReadingStore

url, table, sensor, start, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
with PgReadingStore(url, table=table) as store:
    for lo in range(0, n, 10):  # batches of ten, one commit (and one NOTIFY) each
        ts = np.arange(start + lo * 1000, start + min(n, lo + 10) * 1000, 1000)
        store.insert(np.full(len(ts), sensor), ts, np.arange(lo, lo + len(ts), dtype=float))
"""


def write_elsewhere(table: str, sensor: int, start: int, n: int) -> None:
    """Insert ``n`` readings from another process (its own store instance, its own writer id)."""
    subprocess.run([sys.executable, "-c", WRITER, PG_URL, table, str(sensor), str(start), str(n)], check=True,
                   timeout=60)


wait_for = partial(waiting.wait_for, timeout=15.0, interval=0.05)


@pytest.fixture
def table() -> Iterator[str]:
    if not pg_answers():
        pytest.skip(f"no PostgreSQL answers at {PG_URL}")
    name = f"readings_follow_{uuid.uuid4().hex[:12]}"
    yield name
    with PgReadingStore(PG_URL, table=name) as cleaner:
        cleaner.drop()


class Heard:
    """A listener that keeps every announced (sensor_id, ts) in order."""

    def __init__(self) -> None:
        self.keys: list[tuple[int, int]] = []

    def __call__(self, sensor_id: np.ndarray, ts: np.ndarray, value: np.ndarray) -> None:
        self.keys.extend(zip(sensor_id.tolist(), ts.tolist(), strict=True))


def test_rows_from_another_process_are_announced_once_and_own_rows_are_not_repeated(table: str) -> None:
    heard = Heard()
    with PgReadingStore(PG_URL, table=table) as store:
        store.subscribe(heard)
        store.follow(poll_s=5.0)  # a long poll: only the NOTIFY can make this prompt enough for the waits
        wait_for(lambda: store.following)
        store.insert(np.array([1, 1]), np.array([0, 1000]), np.array([1.0, 2.0]))
        write_elsewhere(table, sensor=2, start=0, n=35)
        write_elsewhere(table, sensor=3, start=5000, n=12)
        wait_for(lambda: len(heard.keys) >= 2 + 35 + 12)
        time.sleep(0.3)  # a second look at the same rows would announce them again
        store.insert(np.array([1]), np.array([2000]), np.array([3.0]))
        wait_for(lambda: (1, 2000) in heard.keys)
    expected = {(1, 0), (1, 1000), (1, 2000)} | {(2, i * 1000) for i in range(35)} | {
        (3, 5000 + i * 1000) for i in range(12)}
    assert len(heard.keys) == len(set(heard.keys)), "a row was announced twice"
    assert set(heard.keys) == expected


def test_a_row_committed_after_newer_rows_were_announced_is_still_announced_once(table: str) -> None:
    heard = Heard()
    with PgReadingStore(PG_URL, table=table) as store, PgReadingStore(PG_URL, table=table) as other:
        store.subscribe(heard)
        store.follow(poll_s=0.05)
        wait_for(lambda: store.following)
        with psycopg.connect(libpq_url(PG_URL)) as slow:  # a writer whose transaction commits late
            slow.execute(
                sql.SQL("INSERT INTO {} (sensor_id, ts, value, received_at, writer) "
                        "VALUES (7, 0, 1.0, (extract(epoch FROM statement_timestamp()) * 1000)::bigint, 42)").format(
                    sql.Identifier(table)))
            time.sleep(0.05)
            other.insert(np.array([8]), np.array([0]), np.array([2.0]))  # newer received_at, committed first
            wait_for(lambda: (8, 0) in heard.keys)
            time.sleep(0.2)  # several polls pass the slow row's received_at before it commits
            assert (7, 0) not in heard.keys
        wait_for(lambda: (7, 0) in heard.keys)  # committed on leaving the block
        time.sleep(0.3)
    assert sorted(heard.keys) == [(7, 0), (8, 0)]
