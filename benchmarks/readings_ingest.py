"""Sustained insert rate into the readings store, and the naive peer it replaces.

* ``ReadingStore.insert`` — the real path: one vectorised ``INSERT … SELECT … ON CONFLICT DO NOTHING``
  from a DataFrame per batch, one committed (durable) transaction per batch, primary key (sensor, ts)
  enforced. Measured for 10,000-reading batches (a gateway's second of 10k sensors) and for
  100-reading batches (a small gateway), each for ``SECONDS`` of wall time into a growing table.
* peer: plain ``executemany`` INSERT of the same rows into the same table, one transaction per batch
  (the way one writes it without thinking about DuckDB's vectorised engine).

Run: ``python benchmarks/readings_ingest.py`` (pinned to at most 2 cores, the ingest target's budget).
Writes benchmarks/results/readings_ingest.md and readings_ingest.png.
"""

from __future__ import annotations

import os

if hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[:2]))

import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from _common import RESULTS, console, machine, markdown_table, rich_table  # noqa: E402
from hazardloop.readings.store import ReadingStore, now_ms  # noqa: E402

SECONDS = 10.0  # sustained: long enough for the table (and its key index) to grow to millions of rows
PEER_SECONDS = 5.0  # the naive peer is slow; a few seconds give a stable rate
SENSORS = 100
START_MS = 1_780_000_000_000  # 2026-05-28, epoch ms


def batches(size: int, rng: np.random.Generator) -> Callable[[int], tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Batch k: ``size`` readings of SENSORS sensors on a 1-second grid, each batch later than the last."""
    per_sensor = max(size // SENSORS, 1)
    width = min(size, SENSORS)
    ids = np.tile(np.arange(width, dtype=np.int32), per_sensor)
    steps = np.repeat(np.arange(per_sensor, dtype=np.int64), width)

    def make(k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        ts = START_MS + (k * per_sensor + steps) * 1000
        return ids, ts, 20 + rng.standard_normal(len(ids))

    return make


def store_rate(path: Path, size: int, seconds: float) -> tuple[float, int]:
    """Readings per second through ReadingStore.insert, and the table size at the end."""
    make = batches(size, np.random.default_rng(size))
    with ReadingStore(path) as store:
        store.insert(*make(0))  # warm-up: schema, first allocation
        done, k, t0 = 0, 1, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            result = store.insert(*make(k))
            assert result.inserted == size, "every reading of a fresh batch must be stored"
            done, k = done + size, k + 1
        elapsed = time.perf_counter() - t0
        return done / elapsed, store.count()


def executemany_rate(path: Path, size: int, seconds: float) -> float:
    """The naive peer: executemany of Python tuples into the same table, one commit per batch."""
    make = batches(size, np.random.default_rng(size))
    with ReadingStore(path) as store:  # same schema and key
        cursor = store._cursor()
        done, k, t0 = 0, 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            ids, ts, values = make(k)
            received = now_ms()
            rows = [(int(i), int(t), float(v), 0, received) for i, t, v in zip(ids, ts, values, strict=True)]
            cursor.execute("BEGIN")
            cursor.executemany("INSERT INTO readings VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING", rows)
            cursor.execute("COMMIT")
            done, k = done + size, k + 1
        return done / (time.perf_counter() - t0)


def main() -> None:
    cases: list[tuple[str, float, str]] = []
    with tempfile.TemporaryDirectory() as scratch:
        for size in (10_000, 100):
            rate, rows = store_rate(Path(scratch) / f"store-{size}.duckdb", size, SECONDS)
            cases.append((f"ReadingStore.insert, {size:,}-reading batches", rate, f"{rows:,} rows at end"))
        peer = executemany_rate(Path(scratch) / "peer.duckdb", 10_000, PEER_SECONDS)
        cases.append(("executemany INSERT (naive), 10,000-reading batches", peer, ""))
    ratio = cases[0][1] / peer

    header = ["path", "readings/s", "note"]
    rows = [[name, f"{rate:,.0f}", note] for name, rate, note in cases]
    console.print(rich_table("Readings ingest into DuckDB (durable commit per batch)", header, rows))
    console.print(f"vectorised / executemany at 10k batches: [bold]{ratio:,.0f}×[/]  ({machine()})")

    RESULTS.mkdir(parents=True, exist_ok=True)
    report = "\n".join(
        [
            "# Readings ingest",
            "",
            f"Machine: {machine()}, pinned to at most 2 cores. Each batch is one committed (durable) transaction "
            f"into a table with PRIMARY KEY (sensor_id, ts); {SECONDS:g} s sustained per store case, "
            f"{PEER_SECONDS:g} s for the naive peer.",
            "",
            markdown_table(header, rows),
            "",
            f"Vectorised insert is {ratio:,.0f}× the naive executemany at 10,000-reading batches.",
            "",
            "Run: `python benchmarks/readings_ingest.py`",
            "",
        ]
    )
    (RESULTS / "readings_ingest.md").write_text(report, encoding="utf-8")

    fig, ax = plt.subplots(figsize=(8, 3.2))
    ax.barh([name for name, _, _ in cases][::-1], [rate for _, rate, _ in cases][::-1], color="#3b7dd8")
    ax.set_xscale("log")
    ax.set_xlabel("readings per second (log scale)")
    ax.set_title("Readings ingest into DuckDB, durable per batch")
    fig.tight_layout()
    fig.savefig(RESULTS / "readings_ingest.png", dpi=120)
    console.print(f"wrote {RESULTS / 'readings_ingest.md'} and readings_ingest.png")


if __name__ == "__main__":
    main()
