"""The sensor history: one DuckDB file (``data_dir/readings.duckdb`` by default), Parquet for exchange.

Design choices, and why:

* **Time is epoch milliseconds (UTC) in a BIGINT**, not ``TIMESTAMP WITH TIME ZONE``. A reading is an
  instant; integers carry no zone or session setting that could shift it, compare and hash fastest in
  the primary key, bucket with plain integer division, and are what the JSON ingest API takes anyway.
  Exports turn them back into ``TIMESTAMP WITH TIME ZONE`` so other tools read real times.
* **The key is (sensor_id, ts)** and a re-sent reading is a no-op (``ON CONFLICT DO NOTHING``). When the
  re-sent value *differs*, the first write wins and the caller is told: a measurement does not change
  after the fact, so a second value for the same instant is a gateway or clock fault worth seeing, and
  silently overwriting it would let a late replay rewrite the history alarms were raised on.
* **Durable on return.** Every write runs in one transaction; DuckDB writes and syncs its write-ahead
  log on commit, so a reading counted as inserted survives a crash. Checkpoint policy: DuckDB folds the
  WAL into the file by itself once it passes ``checkpoint_threshold`` (DuckDB's default, 16 MiB);
  ``close()`` runs an explicit ``CHECKPOINT`` so a clean shutdown leaves no WAL to replay.
* **Threads.** One DuckDB connection per store and a cursor (DuckDB's own connection to the same
  database) per thread; writes are serialised by a lock, because DuckDB's optimistic concurrency would
  otherwise fail one of two transactions inserting the same key, and a failed ingest batch is worse
  than a queued one. Reads never take the lock.
* **One process.** DuckDB lets one process open a file for writing; the web process owns the store.
  Several ingest workers share a PostgreSQL table instead (pgstore.py, same interface; stores.py picks).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import duckdb
import numpy as np
import pandas as pd

log = logging.getLogger(__name__)
DEFAULT_FILENAME = "readings.duckdb"

Listener = Callable[[np.ndarray, np.ndarray, np.ndarray], None]
"""Called after each commit with the newly stored rows only: (sensor_id int32, ts int64 ms, value float64)."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS readings (
    sensor_id   INTEGER  NOT NULL,
    ts          BIGINT   NOT NULL,              -- epoch milliseconds, UTC
    value       DOUBLE   NOT NULL,
    quality     SMALLINT NOT NULL DEFAULT 0,    -- source quality flags; 0 = good (OPC UA style, 0 is good)
    received_at BIGINT   NOT NULL,              -- epoch ms when this store committed it (late-data audits)
    PRIMARY KEY (sensor_id, ts)
)
"""


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Window(NamedTuple):
    """Readings sorted by (sensor_id, ts): three aligned arrays."""

    sensor_id: np.ndarray  # (n,) int32
    ts: np.ndarray  # (n,) int64 epoch ms
    value: np.ndarray  # (n,) float64

    def by_sensor(self) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """sensor_id → (ts, value), views into the arrays (no copies)."""
        if len(self.sensor_id) == 0:
            return {}
        cuts = np.flatnonzero(np.diff(self.sensor_id)) + 1
        starts = np.concatenate(([0], cuts))
        ends = np.concatenate((cuts, [len(self.sensor_id)]))
        return {int(self.sensor_id[a]): (self.ts[a:b], self.value[a:b]) for a, b in zip(starts, ends, strict=True)}


@dataclass
class InsertResult:
    """What one batch did. Indices point into the batch as given (0-based)."""

    inserted: int
    duplicates: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))  # same key, same value
    conflicts: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))  # same key, other value
    stored_values: np.ndarray = field(default_factory=lambda: np.empty(0, np.float64))  # aligned with conflicts


def _same(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Equal values, where two NaNs would count as equal (the store never holds NaN, but be exact)."""
    return (a == b) | (np.isnan(a) & np.isnan(b))


@dataclass
class InsertPlan:
    """A batch made ready for an idempotent insert: one row per key, and what the repeats inside it were.

    Shared by the DuckDB and PostgreSQL stores so both answer duplicates and conflicts the same way.
    The rows are plain numpy columns (no DataFrame): DuckDB scans a dict of numpy arrays in place and
    the PostgreSQL store packs them into a binary COPY, so neither pays for building a frame per batch.
    """

    columns: dict[str, np.ndarray]  # i (index into the batch), sensor_id, ts, value, quality: first row of each key
    value: np.ndarray  # float64, the whole batch as given
    dup_in_batch: np.ndarray  # (k, 2) (first, repeat) pairs with the same value
    con_in_batch: np.ndarray  # (k, 2) (first, repeat) pairs with another value

    def __len__(self) -> int:
        return len(self.columns["i"])

    def result(self, inserted: int, stored: tuple[np.ndarray, np.ndarray] | None) -> InsertResult:
        """The InsertResult, given the count inserted and (batch row, stored value) of the skipped rows."""
        val = self.value
        if stored is None and not len(self.dup_in_batch) and not len(self.con_in_batch):  # the live path
            return InsertResult(inserted=inserted)
        dup_idx = [self.dup_in_batch[:, 1]]
        con_idx, con_val = [self.con_in_batch[:, 1]], [val[self.con_in_batch[:, 0]]]
        if stored is not None:
            rows, stored_value = stored
            same = _same(val[rows], stored_value)
            dup_idx.append(rows[same])
            con_idx.append(rows[~same])
            con_val.append(stored_value[~same])
        conflicts = np.concatenate(con_idx).astype(np.int64)
        order = np.argsort(conflicts, kind="stable")
        return InsertResult(
            inserted=inserted,
            duplicates=np.sort(np.concatenate(dup_idx)).astype(np.int64),
            conflicts=conflicts[order],
            stored_values=np.concatenate(con_val).astype(np.float64)[order],
        )


def plan_insert(
    sensor_id: np.ndarray, ts: np.ndarray, value: np.ndarray, quality: np.ndarray | None = None
) -> InsertPlan | None:
    """Check the arrays line up and keep the first row of each (sensor_id, ts); None for an empty batch."""
    sid = np.asarray(sensor_id, dtype=np.int32)
    tss = np.asarray(ts, dtype=np.int64)
    val = np.asarray(value, dtype=np.float64)
    qual = np.zeros(len(sid), np.int16) if quality is None else np.asarray(quality, dtype=np.int16)
    if not (len(sid) == len(tss) == len(val) == len(qual)):
        raise ValueError("sensor_id, ts, value and quality must have the same length")
    if len(sid) == 0:
        return None
    first, repeat_of = _first_of_each_key(sid, tss)
    kept = val
    if len(repeat_of):
        same = _same(val[repeat_of[:, 1]], val[repeat_of[:, 0]])
        dup_in_batch, con_in_batch = repeat_of[same], repeat_of[~same]
        sid, tss, kept, qual = sid[first], tss[first], val[first], qual[first]
    else:  # every key once (the live path): the arrays as given, no copies
        dup_in_batch = con_in_batch = repeat_of
    columns = {"i": first.astype(np.int32), "sensor_id": sid, "ts": tss, "value": kept, "quality": qual}
    return InsertPlan(columns, val, dup_in_batch, con_in_batch)


class Listeners:
    """The listener list both stores share (DuckDB here, PostgreSQL in pgstore.py)."""

    _listeners: list[Listener]

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Hear of every reading once it is durable, whoever wrote it (HTTP, a connector, the demo).

        Live detection listens here instead of being called by each writer, so no ingest path can
        forget it. The listener runs in the writer's thread after the commit and must be quick
        (queue the rows); an exception in it is logged, never turned into a failed write, because
        the readings are already stored. Returns the call that unsubscribes.
        """
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def _announce(self, sensor_id: np.ndarray, ts: np.ndarray, value: np.ndarray) -> None:
        for listener in list(self._listeners):
            try:
                listener(sensor_id, ts, value)
            except Exception:  # noqa: BLE001 - the rows are stored; a listener bug must not fail the writer
                log.exception("reading-store listener %r failed", listener)


class ReadingStore(Listeners):
    """Sensor readings in one DuckDB file. Times in and out are epoch milliseconds (UTC)."""

    concurrent_writes = 1  # writes are serialised by the write lock (see Threads above): a second writer only waits

    def __init__(self, path: Path | str, *, read_only: bool = False):
        self.path = Path(path)
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._con = duckdb.connect(str(self.path), read_only=read_only)
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self._listeners: list[Listener] = []
        self._closed = False
        if not read_only:
            self._con.execute(SCHEMA)

    @classmethod
    def for_data_dir(cls, data_dir: Path) -> ReadingStore:
        return cls(Path(data_dir) / DEFAULT_FILENAME)

    # ------------------------------------------------------------ plumbing

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        if self._closed:
            raise RuntimeError("the reading store is closed")
        cursor = getattr(self._local, "cursor", None)
        if cursor is None:
            cursor = self._local.cursor = self._con.cursor()
        return cursor

    def close(self) -> None:
        """Checkpoint (fold the WAL into the file) and close. Safe to call twice."""
        if self._closed:
            return
        with self._write_lock:
            with contextlib.suppress(duckdb.Error):  # a read-only store cannot checkpoint, nor needs to
                self._con.execute("CHECKPOINT")
            self._closed = True
            self._con.close()

    def __enter__(self) -> ReadingStore:
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
        """Store a batch; return once it is committed (durable).

        Idempotent on (sensor_id, ts): an existing key with the same value is a duplicate, with another
        value a conflict (first write wins). Inside one batch the first row of a key wins the same way.
        Order does not matter: late and out-of-order readings are ordinary inserts.
        """
        plan = plan_insert(sensor_id, ts, value, quality)
        if plan is None:
            return InsertResult(inserted=0)
        columns = plan.columns
        cursor = self._cursor()
        stored = None
        with self._write_lock:
            cursor.register("_batch", columns)  # a dict of numpy arrays: scanned in place, no frame built
            try:
                inserted = len(plan)
                if not self._insert_new(cursor, inserted):  # a re-send: redo it, asking which rows were skipped
                    inserted, stored = self._insert_reporting(cursor, columns)
            finally:
                cursor.unregister("_batch")
        if inserted and self._listeners:
            # Boolean indexing copies: listeners may queue the rows while the caller reuses its arrays.
            fresh = np.ones(len(plan), dtype=bool) if stored is None else ~np.isin(columns["i"], stored[0])
            self._announce(columns["sensor_id"][fresh], columns["ts"][fresh], columns["value"][fresh])
        return plan.result(inserted, stored)

    @staticmethod
    def _insert_new(cursor: duckdb.DuckDBPyConnection, n: int) -> bool:
        """The live path: one transaction that inserts the `n` rows of ``_batch``; True once committed.

        When every row is new (a live batch: new times) that is all it takes. When some key was already
        stored the transaction is rolled back instead (False), so `_insert_reporting` can redo it and say
        which rows were skipped; asking for that on every batch (``RETURNING``) slows the live path down.
        """
        cursor.execute("BEGIN")
        try:
            inserted = int(
                cursor.execute(
                    "INSERT INTO readings SELECT sensor_id, ts, value, quality, ? FROM _batch ON CONFLICT DO NOTHING",
                    [now_ms()],
                ).fetchone()[0]
            )
            cursor.execute("COMMIT" if inserted == n else "ROLLBACK")
        except BaseException:
            cursor.execute("ROLLBACK")
            raise
        return inserted == n

    def _insert_reporting(
        self, cursor: duckdb.DuckDBPyConnection, columns: dict[str, np.ndarray]
    ) -> tuple[int, tuple[np.ndarray, np.ndarray]]:
        """The re-send path: insert the new rows of ``_batch`` and return (batch row, stored value) of the rest."""
        cursor.execute("BEGIN")
        try:
            done = cursor.execute(
                "INSERT INTO readings SELECT sensor_id, ts, value, quality, ? FROM _batch "
                "ON CONFLICT DO NOTHING RETURNING sensor_id, ts",
                [now_ms()],
            ).fetchnumpy()
            stored = self._stored_for_skipped(cursor, columns, done)
            cursor.execute("COMMIT")
        except BaseException:
            cursor.execute("ROLLBACK")
            raise
        return len(done["ts"]), stored

    @staticmethod
    def _stored_for_skipped(
        cursor: duckdb.DuckDBPyConnection, columns: dict[str, np.ndarray], done: dict[str, np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Batch rows the insert skipped, with the value already stored under their key."""
        inserted_keys = pd.MultiIndex.from_arrays([done["sensor_id"], done["ts"]])
        keys = pd.MultiIndex.from_arrays([columns["sensor_id"], columns["ts"]])
        skip = ~keys.isin(inserted_keys)
        skipped = {name: column[skip] for name, column in columns.items()}
        cursor.register("_skipped", skipped)
        try:
            found = cursor.execute(
                "SELECT s.i, r.value FROM _skipped s JOIN readings r ON r.sensor_id = s.sensor_id AND r.ts = s.ts "
                "WHERE r.ts BETWEEN ? AND ? ORDER BY s.i",
                [int(skipped["ts"].min()), int(skipped["ts"].max())],
            ).fetchnumpy()
        finally:
            cursor.unregister("_skipped")
        return found["i"].astype(np.int64), found["value"].astype(np.float64)

    # ------------------------------------------------------------ reads

    def count(self) -> int:
        return int(self._cursor().execute("SELECT count(*) FROM readings").fetchone()[0])

    def window(self, sensor_ids: list[int] | np.ndarray, start: int, end: int) -> Window:
        """All readings of these sensors with start <= ts < end, sorted by (sensor_id, ts)."""
        got = (
            self._cursor()
            .execute(
                "SELECT sensor_id, ts, value FROM readings WHERE sensor_id IN (SELECT unnest(?::INTEGER[])) "
                "AND ts >= ? AND ts < ? ORDER BY sensor_id, ts",
                [[int(s) for s in sensor_ids], int(start), int(end)],
            )
            .fetchnumpy()
        )
        return Window(got["sensor_id"].astype(np.int32), got["ts"].astype(np.int64), got["value"].astype(np.float64))

    def latest(self, sensor_ids: list[int] | np.ndarray) -> dict[int, tuple[int, float]]:
        """sensor_id → (ts, value) of its newest reading; sensors without readings are absent."""
        rows = (
            self._cursor()
            .execute(
                "SELECT sensor_id, arg_max(ts, ts), arg_max(value, ts) FROM readings "
                "WHERE sensor_id IN (SELECT unnest(?::INTEGER[])) GROUP BY sensor_id",
                [[int(s) for s in sensor_ids]],
            )
            .fetchall()
        )
        return {int(s): (int(t), float(v)) for s, t, v in rows}

    def last_seen(self, sensor_ids: list[int] | np.ndarray) -> dict[int, int]:
        """sensor_id → ts of its newest reading (what the "went silent" view compares with now)."""
        rows = (
            self._cursor()
            .execute(
                "SELECT sensor_id, max(ts) FROM readings WHERE sensor_id IN (SELECT unnest(?::INTEGER[])) "
                "GROUP BY sensor_id",
                [[int(s) for s in sensor_ids]],
            )
            .fetchall()
        )
        return {int(s): int(t) for s, t in rows}

    def downsample(self, sensor_id: int, start: int, end: int, bucket_ms: int) -> pd.DataFrame:
        """min / max / avg / count per time bucket for a chart: a year of 1-minute data in ~1000 rows.

        Buckets are aligned to the Unix epoch (UTC) by integer division, which the ts column makes exact
        and cheap; min and max are kept with the mean so a short spike survives the averaging.
        Columns: bucket (epoch ms of the bucket's start), min, max, avg, n.
        """
        if bucket_ms <= 0:
            raise ValueError("bucket_ms must be positive")
        return (
            self._cursor()
            .execute(
                "SELECT (ts // $b) * $b AS bucket, min(value) AS min, max(value) AS max, avg(value) AS avg, "
                "count(*) AS n FROM readings WHERE sensor_id = $s AND ts >= $lo AND ts < $hi "
                "GROUP BY bucket ORDER BY bucket",
                {"b": int(bucket_ms), "s": int(sensor_id), "lo": int(start), "hi": int(end)},
            )
            .df()
        )

    # ------------------------------------------------------------ Parquet

    def export_parquet(
        self, dest: Path, tags: dict[int, str], *, start: int | None = None, end: int | None = None
    ) -> int:
        """Write the readings of these sensors as a Parquet dataset hive-partitioned by UTC date.

        Files carry the tag (not our internal sensor id) and ts as TIMESTAMP WITH TIME ZONE, so another
        installation or any Parquet reader understands them; ``date=YYYY-MM-DD`` uses UTC so a partition
        never depends on the exporting server's zone. Returns the number of readings written.
        """
        dest = Path(dest)
        if dest.exists() and any(dest.iterdir()):
            raise FileExistsError(f"{dest} is not empty; export into a new folder")
        return write_parquet(self._cursor(), dest, tags, start=start, end=end)


def write_parquet(
    cursor: duckdb.DuckDBPyConnection, dest: Path, tags: dict[int, str], *, start: int | None, end: int | None
) -> int:
    """Export the ``readings`` table (or view) visible to this DuckDB cursor; see ``ReadingStore.export_parquet``.

    The PostgreSQL store reuses it over an in-memory DuckDB view of its rows, so both write the same files.
    """
    names = pd.DataFrame({"sensor_id": np.fromiter(tags, np.int32, len(tags)), "tag": list(tags.values())})
    cursor.register("_names", names)
    try:
        where, params = "TRUE", []
        if start is not None:
            where, params = where + " AND r.ts >= ?", [*params, int(start)]
        if end is not None:
            where, params = where + " AND r.ts < ?", [*params, int(end)]
        query = (
            "SELECT n.tag, make_timestamptz(r.ts * 1000) AS ts, r.value, r.quality, "
            "strftime(make_timestamp(r.ts * 1000), '%Y-%m-%d') AS date "
            f"FROM readings r JOIN _names n USING (sensor_id) WHERE {where} ORDER BY n.tag, r.ts"
        )
        rows = int(cursor.execute(f"SELECT count(*) FROM ({query})", params).fetchone()[0])
        if rows:
            dest.mkdir(parents=True, exist_ok=True)
            path = str(dest).replace("'", "''")
            cursor.execute(f"COPY ({query}) TO '{path}' (FORMAT PARQUET, PARTITION_BY (date))", params)
    finally:
        cursor.unregister("_names")
    return rows


def read_parquet(source: Path) -> pd.DataFrame:
    """A Parquet file, or a (hive-partitioned) folder of them, as a frame of tag, ts, value[, unit, quality].

    Read with a private in-memory DuckDB so the store's file is not involved: the frame goes through the
    same validation as JSON and CSV before anything is stored. ts comes back as epoch ms (UTC).
    """
    source = Path(source)
    pattern = str(source / "**" / "*.parquet") if source.is_dir() else str(source)
    con = duckdb.connect()
    try:
        relation = con.read_parquet(pattern, hive_partitioning=source.is_dir())
        columns = set(relation.columns)
        missing = {"tag", "ts", "value"} - columns
        if missing:
            raise ValueError(f"Parquet lacks column(s) {', '.join(sorted(missing))}; expected tag, ts, value")
        ts_type = str(dict(zip(relation.columns, relation.dtypes, strict=True))["ts"]).upper()
        ts_sql = "epoch_ms(ts)" if "TIMESTAMP" in ts_type else "CAST(ts AS BIGINT)"
        extra = [c for c in ("unit", "quality") if c in columns]
        select = ", ".join(["CAST(tag AS VARCHAR) AS tag", f"{ts_sql} AS ts", "CAST(value AS DOUBLE) AS value", *extra])
        return relation.project(select).df()
    finally:
        con.close()


def _first_of_each_key(sid: np.ndarray, ts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the first row of every (sensor_id, ts) key, and (first, repeat) index pairs of the others.

    Vectorised: a stable lexsort puts equal keys next to each other in their original order.
    """
    order = np.lexsort((ts, sid))  # lexsort is stable: equal keys keep batch order
    s, t = sid[order], ts[order]
    new_key = np.ones(len(order), dtype=bool)
    new_key[1:] = (s[1:] != s[:-1]) | (t[1:] != t[:-1])
    if new_key.all():
        return np.arange(len(sid)), np.empty((0, 2), np.int64)
    group_first = order[np.maximum.accumulate(np.where(new_key, np.arange(len(order)), 0))]
    repeats = ~new_key
    pairs = np.stack([group_first[repeats], order[repeats]], axis=1).astype(np.int64)
    return np.sort(order[new_key]), pairs
