"""`StoreSink`: connectors (MQTT, OPC UA, Modbus) write into the reading store through the HTTP checks.

Why it looks like this:

* **One set of checks.** A reading from a broker passes exactly the checks a reading posted over HTTP
  passes (`ingest.check`: tag, time sanity, NaN, unit, NAMUR range), so no path into the store is laxer.
* **The worker sees every sensor.** It is plant infrastructure, not a user: no area scoping applies,
  unlike HTTP ingest, where a token scoped to one area cannot write another area's sensors.
* **Tags resolve through a cached register.** A worker takes tens of thousands of readings a second;
  asking the database per batch would be the bottleneck. The tag → sensor map is loaded once and
  reloaded when a batch names a tag it does not know (a sensor added in the plant model) — at most
  every `refresh_s` seconds, so a gateway publishing a misspelt tag cannot turn every batch into a query.
* **Rejects never block.** Good readings of a batch are stored; the rejected ones are counted in the
  sink's status (`malformed`, with the reasons in `recent_malformed`) — the status the connector table
  already shows. A rejected reading is acknowledged: redelivering it would not make it valid.
* **A store failure raises.** Nothing is acknowledged then: the batcher keeps the readings and MQTT
  withholds the QoS 1 ack, so the broker redelivers; the store's idempotence makes that safe.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from hazardloop.connectors.base import ConnectorStatus
from hazardloop.plant.models import Sensor
from hazardloop.readings.ingest import Checked, RawBatch, Register, check, conflict_reason

log = logging.getLogger(__name__)

MAX_EXAMPLE_TAGS = 5  # tags named per reason in the status line


class StoreSink:
    """A connectors `ReadingSink` that checks readings and inserts them durably into a reading store."""

    def __init__(
        self,
        session_factory: Callable[[], Session],
        store: Any,  # noqa: ANN401 - ReadingStore or PgReadingStore (readings/stores.py)
        *,
        refresh_s: float = 5.0,
        status: ConnectorStatus | None = None,
    ) -> None:
        self.session_factory = session_factory
        self.store = store
        self.refresh_s = refresh_s
        self.status = status or ConnectorStatus(name="store", kind="store")
        self.status.mark_connected(time.time())  # shown as a row of the connector table: readings = stored
        self.inserted = 0
        self.duplicates = 0
        self.rejected = 0  # readings refused by the checks or conflicting with a stored value
        # How many batches a connector may hand over at once (MQTT overlaps commits when it is > 1).
        self.concurrent_writes = int(getattr(store, "concurrent_writes", 1))
        self._register: Register | None = None
        self._loaded_at = float("-inf")
        self._lock = threading.Lock()
        self._counts = threading.Lock()  # writes may come from several threads at once

    # ------------------------------------------------------------ the tag register

    def register(self, *, refresh: bool = False) -> Register:
        """The cached tag → sensor map; reloaded when asked and the last load is `refresh_s` old."""
        with self._lock:
            stale = time.monotonic() - self._loaded_at >= self.refresh_s
            if self._register is None or (refresh and stale):
                with self.session_factory() as db:
                    rows = db.execute(
                        select(Sensor.id, Sensor.tag, Sensor.unit, Sensor.range_min, Sensor.range_max)
                    ).all()
                self._register = Register.of(rows)
                self._loaded_at = time.monotonic()
            return self._register

    # ------------------------------------------------------------ the ReadingSink protocol

    def write(
        self,
        tags: list[str] | np.ndarray,
        ts: np.ndarray,
        values: np.ndarray,
        units: list[str | None] | None = None,
    ) -> None:
        """Store the good readings durably, count the rest; raise (nothing acknowledged) if the store fails."""
        n = len(values)
        if n == 0:
            return
        tag_array = np.asarray(tags, dtype=object)
        batch = RawBatch(
            row=np.arange(n, dtype=np.int64),
            tag=tag_array,
            ts=np.asarray(ts, dtype=np.int64),
            value=np.asarray(values, dtype=np.float64),
            unit=None if units is None or all(u is None for u in units) else np.asarray(units, dtype=object),
        )
        register = self.register()
        checked = check(batch, register)
        if checked.unknown_tags.any():
            fresh = self.register(refresh=True)
            if fresh is not register:
                checked = check(batch, fresh)
        result = self.store.insert(checked.sensor_id, checked.ts, checked.value)  # raises: not acknowledged
        with self._counts:
            self.inserted += result.inserted
            self.status.readings += result.inserted
            self.status.last_message_at = time.time()
            self.duplicates += len(result.duplicates)
            self._note_rejections(batch, checked, result)

    def _note_rejections(self, batch: RawBatch, checked: Checked, result: Any) -> None:  # noqa: ANN401
        """Count every rejected reading once; one status line per reason, naming a few of its tags."""
        rejected = len(batch) - len(checked.good) + len(result.conflicts)
        if not rejected:
            return
        for finding in checked.findings:
            rows = np.flatnonzero(finding.mask)
            tags = list(dict.fromkeys(str(t) for t in batch.tag[rows]))
            where = ", ".join(tags[:MAX_EXAMPLE_TAGS]) + (" …" if len(tags) > MAX_EXAMPLE_TAGS else "")
            self.status.note_malformed(f"{finding.field} of {where} ({len(rows)}×)", finding.text(int(rows[0])), 0)
        if len(result.conflicts):
            k = int(result.conflicts[0])
            why = conflict_reason(float(checked.value[k]), float(result.stored_values[0]))
            self.status.note_malformed(f"value of {batch.tag[checked.good[k]]} ({len(result.conflicts)}×)", why, 0)
        self.status.malformed += rejected
        self.rejected += rejected
        log.info("store sink: %d readings rejected; latest reason: %s", rejected, self.status.recent_malformed[-1])
