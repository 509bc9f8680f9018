"""The demo plant, live: simulated readings at wall-clock pace, stored and judged as they arrive.

A background thread takes the simulator's rows up to "now" every few seconds, writes them to the
readings store (durable first) and runs them through live detection, so alarms rise and clear on
the console as they would at a real plant — including the faults the simulator injects each day.
It runs as the machine user that `hazardloop demo` creates; without it (a real plant) nothing runs.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Iterator

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from hazardloop.alarms.live import LiveDetection
from hazardloop.auth.models import User
from hazardloop.db import utcnow
from hazardloop.demo.signals import simulate, stream
from hazardloop.demo.spec import load_plant_spec
from hazardloop.plant import service as plant
from hazardloop.readings.store import ReadingStore

log = logging.getLogger(__name__)
STREAM_USER = "demo-stream"
STEP = dt.timedelta(seconds=1)  # the demo's gas detectors report every second (plant.toml sample_period_s)
WAKE = dt.timedelta(seconds=2)
FIT_HISTORY = dt.timedelta(hours=6)


class DemoStream:
    def __init__(
        self, session_factory: sessionmaker[Session], store: ReadingStore, *, seed: int = 7, step: dt.timedelta = STEP
    ):
        self.session_factory, self.store, self.seed, self.step = session_factory, store, seed, step
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.rows_streamed = 0

    def start(self) -> bool:
        """Start streaming if this database holds the demo plant; False (and nothing runs) otherwise."""
        with self.session_factory() as db:
            if db.scalar(select(User.id).where(User.username == STREAM_USER)) is None:
                return False
        self._thread = threading.Thread(target=self._run, name="hazardloop-demo-stream", daemon=True)
        self._thread.start()
        return True

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        try:
            self._loop()
        except Exception:  # the demo must never take the server down with it; say what broke
            log.exception("demo stream stopped")

    def _loop(self) -> None:
        spec = load_plant_spec()
        start = utcnow().replace(microsecond=0)
        with self.session_factory() as db:
            actor = db.scalar(select(User).where(User.username == STREAM_USER))
            live = LiveDetection.start(db, actor=actor)
            history = simulate(spec, start=start - FIT_HISTORY, duration=FIT_HISTORY, step=self.step, seed=self.seed)
            live.fit({tag: history.values[:, j] for j, tag in enumerate(history.tags)})
            ids = {s.tag: s.id for s in plant.list_sensors(db, actor=actor)}
            rows = stream(spec, start=start, step=self.step, seed=self.seed)
            pending = next(rows)
            while not self._stop.is_set():
                batch, pending = _due(rows, pending, utcnow())
                if batch:
                    self._handle(db, live, ids, spec.tags, batch)
                self._stop.wait(max(WAKE, self.step).total_seconds())

    def _handle(
        self,
        db: Session,
        live: LiveDetection,
        ids: dict[str, int],
        tags: list[str],
        batch: list[tuple[dt.datetime, np.ndarray]],
    ) -> None:
        times = np.array([t.replace(tzinfo=dt.UTC).timestamp() for t, _ in batch])
        values = np.vstack([v for _, v in batch])
        known = [j for j, tag in enumerate(tags) if tag in ids]
        sensor = np.repeat(np.array([ids[tags[j]] for j in known]), len(times))
        ts_ms = np.tile((times * 1000).astype(np.int64), len(known))
        flat = values[:, known].T.reshape(-1)
        good = np.isfinite(flat)  # a dropout is no reading at all, as a real feed would send
        self.store.insert(sensor[good], ts_ms[good], flat[good])
        live.process(db, times, {tags[j]: values[:, j] for j in known})
        self.rows_streamed += len(batch)


def _due(
    rows: Iterator[tuple[dt.datetime, np.ndarray]], pending: tuple[dt.datetime, np.ndarray], now: dt.datetime
) -> tuple[list[tuple[dt.datetime, np.ndarray]], tuple[dt.datetime, np.ndarray]]:
    """The rows whose time has come (simulator times are naive UTC), and the next one still waiting."""
    batch = []
    limit = now.astimezone(dt.UTC).replace(tzinfo=None)
    while pending[0] <= limit:
        batch.append(pending)
        pending = next(rows)
    return batch, pending
