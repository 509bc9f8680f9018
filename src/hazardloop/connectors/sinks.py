"""Sinks that need no database: CSV files for hand-over, memory for tests and benchmarks.

The durable sink is `hazardloop.readings.sink.StoreSink` (``[sink] kind = "store"``), plugged in
through the same `ReadingSink` protocol.
"""

from __future__ import annotations

import csv
import threading
from datetime import UTC, datetime
from pathlib import Path

import numpy as np


class CsvSink:
    """Appends readings to ``<folder>/readings-YYYYMMDD.csv`` (UTC day of the reading), header ``tag,ts_ms,value,unit``.

    A development and hand-over format, not a store: it does not de-duplicate and is not fast.
    Several connectors may share one sink, so writes are serialised with a lock.
    """

    HEADER = ("tag", "ts_ms", "value", "unit")

    def __init__(self, folder: Path | str) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def write(
        self,
        tags: list[str] | np.ndarray,
        ts: np.ndarray,
        values: np.ndarray,
        units: list[str | None] | None = None,
    ) -> None:
        days = (np.asarray(ts, dtype=np.int64) // 86_400_000).astype(np.int64)
        unit_col = units if units is not None else [None] * len(values)
        with self._lock:
            for day in np.unique(days):
                rows = np.flatnonzero(days == day)
                name = datetime.fromtimestamp(int(day) * 86_400, tz=UTC).strftime("readings-%Y%m%d.csv")
                path = self.folder / name
                new = not path.exists()
                with path.open("a", newline="", encoding="utf-8") as handle:
                    writer = csv.writer(handle)
                    if new:
                        writer.writerow(self.HEADER)
                    writer.writerows(
                        (tags[i], int(ts[i]), repr(float(values[i])), unit_col[i] or "") for i in rows.tolist()
                    )


class MemorySink:
    """Keeps every batch as numpy arrays; `count` is what arrived. For tests and the ingest benchmark."""

    def __init__(self) -> None:
        self.tags: list[str] = []
        self.ts: list[np.ndarray] = []
        self.values: list[np.ndarray] = []
        self.count = 0
        self.batches = 0
        self._lock = threading.Lock()

    def write(
        self,
        tags: list[str] | np.ndarray,
        ts: np.ndarray,
        values: np.ndarray,
        units: list[str | None] | None = None,
    ) -> None:
        with self._lock:
            self.tags.extend(tags)
            self.ts.append(ts)
            self.values.append(values)
            self.count += len(values)
            self.batches += 1
