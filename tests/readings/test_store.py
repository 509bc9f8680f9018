"""The reading stores on their own (DuckDB, and PostgreSQL where it answers): idempotency, order,
durability, downsampling, Parquet, listeners."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hazardloop.readings.store import read_parquet
from hazardloop.readings.stores import AnyStore

HOUR = 3_600_000
T0 = 1_790_000_000_000  # 2026-09-21, epoch ms


def test_same_batch_twice_is_stored_once_and_reported_as_duplicates(store: AnyStore) -> None:
    ids, ts, values = np.array([1, 1, 2]), T0 + np.array([0, 1000, 0]), np.array([1.0, 2.0, 3.0])
    first = store.insert(ids, ts, values)
    second = store.insert(ids, ts, values)
    assert first.inserted == 3 and len(first.duplicates) == 0
    assert second.inserted == 0 and second.duplicates.tolist() == [0, 1, 2]
    assert store.count() == 3


def test_a_different_value_for_a_stored_key_is_a_conflict_and_the_first_value_is_kept(store: AnyStore) -> None:
    store.insert([1], [T0], [5.0])
    result = store.insert([1, 1], [T0, T0 + 1], [6.0, 7.0])
    assert result.inserted == 1
    assert result.conflicts.tolist() == [0] and result.stored_values.tolist() == [5.0]
    assert store.window([1], T0, T0 + 1).value.tolist() == [5.0]


def test_within_one_batch_the_first_row_of_a_key_wins(store: AnyStore) -> None:
    result = store.insert([1, 1, 1], [T0, T0, T0], [1.0, 1.0, 2.0])
    assert result.inserted == 1
    assert result.duplicates.tolist() == [1] and result.conflicts.tolist() == [2]
    assert result.stored_values.tolist() == [1.0]


def test_out_of_order_and_late_readings_are_stored_and_read_back_in_time_order(store: AnyStore) -> None:
    store.insert([1, 1], [T0 + 5 * HOUR, T0 + 2 * HOUR], [5.0, 2.0])
    store.insert([1], [T0 - 48 * HOUR], [9.0])  # two days late
    window = store.window([1], T0 - 72 * HOUR, T0 + 6 * HOUR)
    assert window.ts.tolist() == [T0 - 48 * HOUR, T0 + 2 * HOUR, T0 + 5 * HOUR]
    assert window.value.tolist() == [9.0, 2.0, 5.0]
    assert store.latest([1, 2]) == {1: (T0 + 5 * HOUR, 5.0)}
    assert store.last_seen([1]) == {1: T0 + 5 * HOUR}


def test_everything_acknowledged_survives_close_and_reopen(open_store) -> None:  # noqa: ANN001
    store = open_store()
    rng = np.random.default_rng(1)
    values = rng.random(5000)
    acknowledged = store.insert(np.repeat([1, 2], 2500), T0 + np.tile(np.arange(2500) * 1000, 2), values).inserted
    store.close()
    reopened = open_store()
    assert reopened.count() == acknowledged == 5000
    assert np.array_equal(np.sort(reopened.window([1, 2], T0, T0 + HOUR).value), np.sort(values))


def test_downsampling_gives_min_max_avg_per_bucket(store: AnyStore) -> None:
    minute = 60_000
    ts = T0 - T0 % HOUR + np.arange(120) * minute  # two hours of 1-minute data, hour-aligned
    values = np.arange(120, dtype=float)
    store.insert(np.ones(120, int), ts, values)
    frame = store.downsample(1, int(ts[0]), int(ts[-1]) + 1, HOUR)
    assert frame["bucket"].tolist() == [int(ts[0]), int(ts[0]) + HOUR]
    assert frame["min"].tolist() == [0.0, 60.0]
    assert frame["max"].tolist() == [59.0, 119.0]
    assert frame["avg"].tolist() == [29.5, 89.5]
    assert frame["n"].tolist() == [60, 60]


def test_parquet_export_is_hive_partitioned_by_date_and_reads_back_equal(store: AnyStore, tmp_path: Path) -> None:
    ts = T0 + np.arange(0, 72) * HOUR  # three days
    store.insert(np.ones(72, int), ts, np.linspace(0, 1, 72))
    rows = store.export_parquet(tmp_path / "out", {1: "GT-101"})
    partitions = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert rows == 72 and len(partitions) in (3, 4) and all(p.startswith("date=") for p in partitions)
    frame = read_parquet(tmp_path / "out").sort_values("ts")
    assert frame["tag"].unique().tolist() == ["GT-101"]
    assert frame["ts"].tolist() == ts.tolist()
    assert np.array_equal(frame["value"].to_numpy(), np.linspace(0, 1, 72))


def test_listeners_hear_only_newly_stored_rows_and_a_failing_listener_fails_no_write(store: AnyStore) -> None:
    heard: list[tuple[list[int], list[int], list[float]]] = []
    store.subscribe(lambda s, t, v: heard.append((s.tolist(), t.tolist(), v.tolist())))
    store.subscribe(lambda s, t, v: 1 / 0)
    store.insert([1, 2], [T0, T0], [1.0, 2.0])
    result = store.insert([1, 2, 3], [T0, T0, T0], [1.0, 2.5, 3.0])  # one duplicate, one conflict, one new
    assert result.inserted == 1
    assert heard == [([1, 2], [T0, T0], [1.0, 2.0]), ([3], [T0], [3.0])]


def test_two_writers_sending_overlapping_batches_store_each_reading_once(open_store) -> None:  # noqa: ANN001
    """What two ingest workers do after a redelivery: the same readings, at the same time, from two threads."""
    from concurrent.futures import ThreadPoolExecutor

    store = open_store()
    rng = np.random.default_rng(7)
    ids = rng.integers(1, 200, 20_000)
    ts = T0 + rng.integers(0, 50, 20_000) * 1000
    values = (ids * 1000 + (ts - T0) // 1000).astype(float)  # a function of the key: resends agree
    chunks = [slice(k, k + 2500) for k in range(0, 20_000, 2500)]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda c: store.insert(ids[c], ts[c], values[c]), chunks + chunks[::-1]))
    unique = len({(int(i), int(t)) for i, t in zip(ids, ts, strict=True)})
    assert sum(r.inserted for r in results) == unique == store.count()
    assert all(len(r.conflicts) == 0 for r in results)
