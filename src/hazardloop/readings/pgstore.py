"""The sensor history in PostgreSQL, for several ingest workers sharing one store.

Same interface and semantics as the DuckDB ``ReadingStore`` (store.py: epoch-ms BIGINT time, key
(sensor_id, ts), first write wins, durable on return, listeners after commit); what differs, and why:

* **Several processes.** DuckDB lets one process write its file; PostgreSQL lets N ingest workers
  (``hazardloop connectors run``, split by an MQTT shared subscription) and the web app write one table.
  Two workers may get the same message (a redelivery after a crash), so inserts are
  ``ON CONFLICT DO NOTHING`` and take their row locks in key order, which keeps two overlapping batches
  from deadlocking; a deadlock or serialisation failure that happens anyway is retried.
* **The table is ours, not Alembic's.** Like the DuckDB file, the store creates its table
  (``CREATE TABLE IF NOT EXISTS`` under an advisory lock, so workers starting together do not race).
  Readings are not part of the application schema: they may live in another database than the app
  tables, and a test or a benchmark can use a table of its own.
* **Fast path.** A batch goes in as one binary ``COPY`` into a temporary table, built with numpy in one
  go (no per-row Python), then one ``INSERT … SELECT … ON CONFLICT DO NOTHING`` that answers only how
  many rows it inserted. Only when that is fewer than the batch (a re-send) does a second query ask
  which rows were skipped and what is stored under their keys, so a live batch costs two round trips.
* **Durable on return.** The insert commits with PostgreSQL's default ``synchronous_commit = on``: the
  WAL is flushed before COMMIT returns.
* **Readings other processes wrote** (``follow``). ``subscribe`` listeners hear this process's inserts
  only; the web app's live detection must also hear what separate ingest workers store. Each store
  instance has a random ``writer`` id stored with its rows, each insert sends one ``NOTIFY`` (delivered
  at commit, in the insert's own statement, so no extra round trip), and a follower thread wakes on it
  (or every ``poll_s`` should a notification be lost) and reads the rows of *other* writers by
  ``received_at`` (the database clock, so workers on other hosts agree). Rows commit out of
  ``received_at`` order (a transaction that started earlier may commit later), so each poll re-reads
  ``margin_ms`` behind the newest row it has seen and skips the keys it already announced: every row
  is announced once as long as its transaction commits within ``margin_ms`` of its insert statement.
"""

from __future__ import annotations

import logging
import secrets
import threading
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import psycopg
from psycopg import errors as pg_errors
from psycopg import sql
from sqlalchemy.engine import make_url

from hazardloop.readings.store import InsertResult, Listeners, Window, plan_insert, write_parquet

log = logging.getLogger(__name__)
DEFAULT_TABLE = "readings"
NOTIFY_CHANNEL = "hazardloop_readings"  # payload: the table name, so followers of other tables ignore it
RETRIES = 3  # deadlock / serialisation failures retried before the batch is refused (then not acknowledged)

_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + np.array([0, 0], dtype=">i4").tobytes()
_COPY_TRAILER = np.array([-1], dtype=">i2").tobytes()
_COPY_ROW = np.dtype(
    [
        ("fields", ">i2"),
        ("i_len", ">i4"), ("i", ">i4"),
        ("sid_len", ">i4"), ("sid", ">i4"),
        ("ts_len", ">i4"), ("ts", ">i8"),
        ("value_len", ">i4"), ("value", ">f8"),
        ("quality_len", ">i4"), ("quality", ">i2"),
    ]
)


def libpq_url(url: str) -> str:
    """``postgresql+psycopg://…`` (the SQLAlchemy spelling the settings use) → what libpq understands."""
    parsed = make_url(url)
    if not parsed.drivername.startswith("postgres"):
        raise ValueError(f"not a PostgreSQL URL: {parsed.render_as_string(hide_password=True)}")
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


def copy_payload(columns: dict[str, np.ndarray]) -> bytes:
    """A PostgreSQL binary COPY stream of (i, sensor_id, ts, value, quality), built with numpy in one pass."""
    rows = np.empty(len(columns["i"]), dtype=_COPY_ROW)
    rows["fields"] = 5
    rows["i_len"], rows["sid_len"], rows["ts_len"], rows["value_len"], rows["quality_len"] = 4, 4, 8, 8, 2
    rows["i"] = columns["i"]
    rows["sid"] = columns["sensor_id"]
    rows["ts"] = columns["ts"]
    rows["value"] = columns["value"]
    rows["quality"] = columns["quality"]
    return _COPY_HEADER + rows.tobytes() + _COPY_TRAILER


class PgReadingStore(Listeners):
    """Sensor readings in one PostgreSQL table. Times in and out are epoch milliseconds (UTC)."""

    # Two inserts at once (one connection per thread) overlap one's WAL flush with the other's work:
    # 1.2-1.7x the rate of one writer for batches of 100,000 measured here; the key-ordered row locks
    # and the deadlock retry already make concurrent batches safe (several workers write one table).
    concurrent_writes = 2

    def __init__(self, url: str, *, table: str = DEFAULT_TABLE) -> None:
        self.url = libpq_url(url)
        self.table = sql.Identifier(*table.split("."))
        self.table_name = table
        self._local = threading.local()
        self._connections: list[psycopg.Connection] = []
        self._connections_lock = threading.Lock()
        self._listeners = []
        self._closed = False
        self.writer = secrets.randbits(63)  # tells this instance's rows from other processes' (follow)
        self._follower: _Follower | None = None
        self._create_table()

    # ------------------------------------------------------------ plumbing

    def _connection(self) -> psycopg.Connection:
        """This thread's connection (psycopg connections are not for concurrent use), made on first use."""
        if self._closed:
            raise RuntimeError("the reading store is closed")
        connection = getattr(self._local, "connection", None)
        if connection is None or connection.closed:
            connection = psycopg.connect(self.url, autocommit=True)
            # The insert sorts its batch by key (lock order); with the 4 MB default a batch of 100,000
            # readings (what the MQTT worker hands over under load) sorts on disk (EXPLAIN: "external merge").
            connection.execute("SET work_mem = '32MB'")
            connection.execute(
                "CREATE TEMP TABLE IF NOT EXISTS _hl_batch "
                "(i INTEGER, sensor_id INTEGER, ts BIGINT, value DOUBLE PRECISION, quality SMALLINT) "
                "ON COMMIT DELETE ROWS"
            )
            self._local.connection = connection
            with self._connections_lock:
                self._connections.append(connection)
        return connection

    def _forget_connection(self) -> None:
        """Drop this thread's connection after a connection-level error; the next call reconnects."""
        connection = getattr(self._local, "connection", None)
        self._local.connection = None
        if connection is not None:
            connection.close()

    def _create_table(self) -> None:
        connection = self._connection()
        with connection.transaction():
            connection.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [self.table_name])
            connection.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} ("
                    "sensor_id INTEGER NOT NULL, "
                    "ts BIGINT NOT NULL, "  # epoch milliseconds, UTC
                    "value DOUBLE PRECISION NOT NULL, "
                    "quality SMALLINT NOT NULL DEFAULT 0, "  # source quality flags; 0 = good
                    "received_at BIGINT NOT NULL, "  # epoch ms when this store committed it
                    "PRIMARY KEY (sensor_id, ts))"
                ).format(self.table)
            )
            # Added to tables made before ``follow`` existed (0 = written by a store that predates it).
            # Looked up first: ALTER TABLE locks the table exclusively even when the column is there.
            has_writer = connection.execute(
                "SELECT 1 FROM pg_attribute WHERE attrelid = %s::regclass AND attname = 'writer' AND NOT attisdropped",
                [self.table.as_string(connection)],
            ).fetchone()
            if has_writer is None:
                connection.execute(
                    sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS writer BIGINT NOT NULL DEFAULT 0").format(
                        self.table
                    )
                )
                index = sql.Identifier(f"{self.table_name.split('.')[-1]}_received_at")  # in the table's schema
                connection.execute(
                    sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} (received_at)").format(index, self.table)
                )

    def close(self) -> None:
        """Close every connection this store opened. Safe to call twice."""
        if self._closed:
            return
        if self._follower is not None:
            self._follower.stop()
        self._closed = True
        with self._connections_lock:
            for connection in self._connections:
                connection.close()
            self._connections.clear()

    def drop(self) -> None:
        """Drop the table (tests and benchmarks that made a table of their own)."""
        self._connection().execute(sql.SQL("DROP TABLE IF EXISTS {}").format(self.table))

    def __enter__(self) -> PgReadingStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ writes

    def insert(
        self,
        sensor_id: np.ndarray,
        ts: np.ndarray,
        value: np.ndarray,
        quality: np.ndarray | None = None,
    ) -> InsertResult:
        """Store a batch; return once it is committed (durable). Semantics as ``ReadingStore.insert``."""
        plan = plan_insert(sensor_id, ts, value, quality)
        if plan is None:
            return InsertResult(inserted=0)
        payload = copy_payload(plan.columns)
        for attempt in range(RETRIES + 1):
            try:
                skipped, stored = self._insert_once(payload, len(plan))
                break
            except (pg_errors.DeadlockDetected, pg_errors.SerializationFailure):
                if attempt == RETRIES:
                    raise
            except psycopg.OperationalError:
                self._forget_connection()
                raise
        columns = plan.columns
        fresh = ~np.isin(columns["i"], skipped) if len(skipped) else np.ones(len(plan), bool)
        inserted = int(fresh.sum())
        if inserted and self._listeners:
            self._announce(columns["sensor_id"][fresh], columns["ts"][fresh], columns["value"][fresh])
        return plan.result(inserted, stored)

    def _insert_once(self, payload: bytes, n: int) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray] | None]:
        """One transaction: COPY, insert, and only if some rows were skipped, which and their stored values.

        Returns (batch rows skipped, (those rows, their stored values)); a live batch skips nothing
        and costs no row decoding at all.
        """
        connection = self._connection()
        with connection.transaction(), connection.cursor() as cursor:
            with cursor.copy("COPY _hl_batch (i, sensor_id, ts, value, quality) FROM STDIN (FORMAT BINARY)") as copy:
                copy.write(payload)
            cursor.execute(
                sql.SQL(
                    "WITH ins AS ("
                    " INSERT INTO {t} (sensor_id, ts, value, quality, received_at, writer)"
                    " SELECT sensor_id, ts, value, quality,"
                    " (extract(epoch FROM statement_timestamp()) * 1000)::bigint, %s"
                    " FROM _hl_batch ORDER BY sensor_id, ts"
                    " ON CONFLICT DO NOTHING RETURNING 1) "
                    "SELECT (SELECT count(*) FROM ins), pg_notify(%s, %s)"
                ).format(t=self.table),
                [self.writer, NOTIFY_CHANNEL, self.table_name],
            )
            if cursor.fetchone()[0] == n:
                return np.empty(0, np.int64), None
            # Rows this transaction wrote carry its id in xmin; the others were there before (or were
            # committed by a concurrent writer while this insert waited on them: a new statement sees those).
            # A frozen row 2**32 transactions old could share the id; that would only count a duplicate as new.
            cursor.execute(
                sql.SQL(
                    "SELECT b.i, r.value FROM _hl_batch b JOIN {t} r USING (sensor_id, ts) "
                    "WHERE r.xmin <> pg_current_xact_id()::xid ORDER BY b.i"
                ).format(t=self.table)
            )
            found = cursor.fetchall()
        rows = np.array([r[0] for r in found], dtype=np.int64)
        return rows, (rows, np.array([r[1] for r in found], dtype=np.float64))

    # ------------------------------------------------------------ other processes' rows

    def follow(self, *, poll_s: float = 1.0, margin_ms: int = 2000) -> PgReadingStore:
        """Announce to this store's listeners the rows other processes (other writers) insert from now on.

        Rows this instance inserts are announced by ``insert`` already and are never announced again.
        Starts one thread with a connection of its own; ``close`` stops it. Calling it twice is a no-op.
        """
        if self._follower is None:
            self._follower = _Follower(self, poll_s=poll_s, margin_ms=margin_ms)
            self._follower.start()
        return self

    @property
    def following(self) -> bool:
        return self._follower is not None and self._follower.is_alive()

    # ------------------------------------------------------------ reads

    def _query(self, query: sql.Composable, params: list | dict) -> list[tuple]:
        try:
            with self._connection().cursor() as cursor:
                cursor.execute(query, params)
                return cursor.fetchall()
        except psycopg.OperationalError:
            self._forget_connection()
            raise

    def count(self) -> int:
        return int(self._query(sql.SQL("SELECT count(*) FROM {}").format(self.table), [])[0][0])

    def window(self, sensor_ids: list[int] | np.ndarray, start: int, end: int) -> Window:
        """All readings of these sensors with start <= ts < end, sorted by (sensor_id, ts)."""
        rows = self._query(
            sql.SQL(
                "SELECT sensor_id, ts, value FROM {} WHERE sensor_id = ANY(%s) AND ts >= %s AND ts < %s "
                "ORDER BY sensor_id, ts"
            ).format(self.table),
            [[int(s) for s in sensor_ids], int(start), int(end)],
        )
        if not rows:
            return Window(np.empty(0, np.int32), np.empty(0, np.int64), np.empty(0, np.float64))
        sid, ts, value = zip(*rows, strict=True)
        return Window(np.array(sid, np.int32), np.array(ts, np.int64), np.array(value, np.float64))

    def latest(self, sensor_ids: list[int] | np.ndarray) -> dict[int, tuple[int, float]]:
        """sensor_id → (ts, value) of its newest reading; sensors without readings are absent."""
        rows = self._query(
            sql.SQL(
                "SELECT DISTINCT ON (sensor_id) sensor_id, ts, value FROM {} WHERE sensor_id = ANY(%s) "
                "ORDER BY sensor_id, ts DESC"
            ).format(self.table),
            [[int(s) for s in sensor_ids]],
        )
        return {int(s): (int(t), float(v)) for s, t, v in rows}

    def last_seen(self, sensor_ids: list[int] | np.ndarray) -> dict[int, int]:
        """sensor_id → ts of its newest reading (what the "went silent" view compares with now)."""
        rows = self._query(
            sql.SQL("SELECT sensor_id, max(ts) FROM {} WHERE sensor_id = ANY(%s) GROUP BY sensor_id").format(
                self.table
            ),
            [[int(s) for s in sensor_ids]],
        )
        return {int(s): int(t) for s, t in rows}

    def downsample(self, sensor_id: int, start: int, end: int, bucket_ms: int) -> pd.DataFrame:
        """min / max / avg / count per epoch-aligned time bucket; see ``ReadingStore.downsample``."""
        if bucket_ms <= 0:
            raise ValueError("bucket_ms must be positive")
        rows = self._query(
            sql.SQL(
                "SELECT ts - ((ts %% %(b)s) + %(b)s) %% %(b)s AS bucket, min(value), max(value), avg(value), count(*) "
                "FROM {} WHERE sensor_id = %(s)s AND ts >= %(lo)s AND ts < %(hi)s GROUP BY bucket ORDER BY bucket"
            ).format(self.table),
            {"b": int(bucket_ms), "s": int(sensor_id), "lo": int(start), "hi": int(end)},
        )
        frame = pd.DataFrame(rows, columns=["bucket", "min", "max", "avg", "n"])
        return frame.astype({"bucket": np.int64, "min": np.float64, "max": np.float64, "avg": np.float64,
                             "n": np.int64})

    # ------------------------------------------------------------ Parquet

    def export_parquet(
        self, dest: Path, tags: dict[int, str], *, start: int | None = None, end: int | None = None
    ) -> int:
        """The same hive-partitioned Parquet as ``ReadingStore.export_parquet``, written by an in-memory DuckDB.

        The rows are read into memory first: an export is an occasional hand-over, not a live path.
        """
        dest = Path(dest)
        if dest.exists() and any(dest.iterdir()):
            raise FileExistsError(f"{dest} is not empty; export into a new folder")
        rows = self._query(
            sql.SQL(
                "SELECT sensor_id, ts, value, quality FROM {} WHERE sensor_id = ANY(%s) "
                "AND ts >= %s AND ts < %s"
            ).format(self.table),
            [list(tags), -(2**63) if start is None else int(start), 2**63 - 1 if end is None else int(end)],
        )
        frame = pd.DataFrame(rows, columns=["sensor_id", "ts", "value", "quality"]).astype(
            {"sensor_id": np.int32, "ts": np.int64, "value": np.float64, "quality": np.int16}
        )
        con = duckdb.connect()
        try:
            con.register("readings", frame)
            return write_parquet(con, dest, tags, start=start, end=end)
        finally:
            con.close()


class _Follower(threading.Thread):
    """``PgReadingStore.follow``'s thread: LISTEN, and on each notification (or ``poll_s``) read the rows
    other writers committed since the last look; see the module docstring for the commit-order margin."""

    def __init__(self, store: PgReadingStore, *, poll_s: float, margin_ms: int) -> None:
        super().__init__(name=f"hazardloop-readings-follow-{store.table_name}", daemon=True)
        if poll_s <= 0 or margin_ms < 0:
            raise ValueError("poll_s must be positive and margin_ms >= 0")
        self.store, self.poll_s, self.margin_ms = store, poll_s, margin_ms
        self._stop_event = threading.Event()
        self._connection: psycopg.Connection | None = None
        self._watermark: int | None = None  # newest received_at seen
        self._seen: dict[tuple[int, int], int] = {}  # (sensor_id, ts) -> received_at, within the margin
        self.announced = 0  # rows of other writers announced (for tests and diagnostics)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop_event.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout)

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                self._follow()
            except psycopg.Error:
                log.exception("following %s: connection lost; reconnecting", self.store.table_name)
                self._stop_event.wait(1.0)
            finally:
                if self._connection is not None:
                    self._connection.close()
                    self._connection = None

    def _follow(self) -> None:
        connection = self._connection = psycopg.connect(self.store.url, autocommit=True)
        connection.execute(sql.SQL("LISTEN {}").format(sql.Identifier(NOTIFY_CHANNEL)))
        if self._watermark is None:  # start at the newest committed row: older ones are the replay's job
            row = connection.execute(sql.SQL("SELECT max(received_at) FROM {}").format(self.store.table)).fetchone()
            self._watermark = int(row[0]) if row[0] is not None else 0
            self._seen_since(connection, self._watermark - self.margin_ms, announce=False)
        self._poll(connection)  # whatever came while (re)connecting
        while not self._stop_event.is_set():
            for _ in connection.notifies(timeout=self.poll_s, stop_after=1):
                pass  # any insert into any followed table: one cheap indexed look (the margin re-read)
            if not self._stop_event.is_set():
                self._poll(connection)

    def _rows_since(self, connection: psycopg.Connection, since: int) -> list[tuple[int, int, float, int]]:
        return connection.execute(
            sql.SQL(
                "SELECT sensor_id, ts, value, received_at FROM {} WHERE received_at >= %s AND writer <> %s "
                "ORDER BY received_at"
            ).format(self.store.table),
            [since, self.store.writer],
        ).fetchall()

    def _seen_since(self, connection: psycopg.Connection, since: int, *, announce: bool) -> None:
        rows = [r for r in self._rows_since(connection, since) if (r[0], r[1]) not in self._seen]
        for sid, ts, _, received in rows:
            self._seen[(sid, ts)] = received
            self._watermark = max(self._watermark or 0, received)
        if announce and rows and self.store._listeners:
            sid, ts, value, _ = zip(*rows, strict=True)
            self.store._announce(np.array(sid, np.int32), np.array(ts, np.int64), np.array(value, np.float64))
        if announce:
            self.announced += len(rows)
        horizon = (self._watermark or 0) - self.margin_ms
        if len(self._seen) > 1024 or not rows:
            self._seen = {k: r for k, r in self._seen.items() if r >= horizon}

    def _poll(self, connection: psycopg.Connection) -> None:
        self._seen_since(connection, (self._watermark or 0) - self.margin_ms, announce=True)
