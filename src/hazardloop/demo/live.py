"""The demo plant, live: simulated readings at wall-clock pace, sent the way a real plant sends them.

A background thread takes the simulator's rows up to "now" every few seconds and hands them on:

* without a broker (the default), straight into the readings store (durable first);
* with ``mqtt_url`` set, published to the broker as a gateway would (one many-tag message per row, the
  payload convention of connectors/README.md), and the server's MQTT ingest stores them.

Either way the demo does not judge anything itself: live detection hears every stored reading through
the store (alarms/feed.py), so the demo exercises exactly the path a real plant's readings take. Alarms
rise and clear on the console as they would at a real plant, including the faults the simulator injects
each day, and ``inject`` can force one now (a drill, or a test). It runs as the machine user that
`hazardloop demo` creates; without it (a real plant) nothing runs.

With PostgreSQL (``lock_url``) several server processes share one database, and each would stream the
same plant: twice the writes, and an injected drill in one process lost against the plain rows the other
wrote first for the same timestamps. So only the process holding the advisory lock "hazardloop-demo-stream"
streams; the others stand by and the next one takes over, from its own "now", when the holder stops or dies.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import threading
import urllib.parse
from collections.abc import Iterator
from typing import Any

import numpy as np
import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from hazardloop.alarms.feed import Leadership
from hazardloop.auth.models import User
from hazardloop.db import utcnow
from hazardloop.demo.signals import simulate, stream
from hazardloop.demo.spec import PlantSpec, load_plant_spec
from hazardloop.plant import service as plant

log = logging.getLogger(__name__)
STREAM_USER = "demo-stream"
STEP = dt.timedelta(seconds=1)  # the demo's gas detectors report every second (plant.toml sample_period_s)
WAKE = dt.timedelta(seconds=2)
# two days: both operating states of the loading pump (it runs 08:00-17:00) whenever the demo starts
FIT_HISTORY = dt.timedelta(hours=48)
LOCK_SCOPE = "hazardloop-demo-stream"
STANDBY_POLL_S = 2.0


class DemoStream:
    """Streams the demo plant into ``store`` (or over MQTT); ``feed`` (alarms.feed.LiveFeed), when given,
    learns each sensor's normal from the simulator's recent history before the first row."""

    def __init__(
        self, session_factory: sessionmaker[Session], store: Any, *, seed: int = 7,  # noqa: ANN401 - any reading store
        step: dt.timedelta = STEP, feed: Any = None, mqtt_url: str = "",  # noqa: ANN401 - alarms.feed.LiveFeed
        mqtt_topic: str = "hazardloop/{site}/{tag}", lock_url: str | None = None,
    ):
        self.session_factory, self.store, self.seed, self.step = session_factory, store, seed, step
        self.feed = feed
        self.publisher = MqttPublisher(mqtt_url, mqtt_topic) if mqtt_url else None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._injected: dict[str, tuple[float, int]] = {}
        self._inject_lock = threading.Lock()
        self.leadership = Leadership(lock_url, "demo", scope=LOCK_SCOPE) if lock_url else None
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
        if self.publisher is not None:
            self.publisher.close()

    def inject(self, tag: str, value: float, rows: int) -> None:
        """Force ``tag`` to read ``value`` for the next ``rows`` rows (a gas release drill, a stuck sensor)."""
        with self._inject_lock:
            self._injected[tag] = (float(value), int(rows))

    @property
    def leading(self) -> bool:
        """Whether this process streams (always, without a lock)."""
        return self.leadership is None or self.leadership.held

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                if self.leadership is None or self.leadership.hold():
                    self._loop()  # returns when stopped or when the lock is lost
                else:
                    self._stop.wait(STANDBY_POLL_S)
        except Exception:  # the demo must never take the server down with it; say what broke
            log.exception("demo stream stopped")
        finally:
            if self.leadership is not None:
                self.leadership.release()

    def _loop(self) -> None:
        spec = load_plant_spec()
        start = utcnow().replace(microsecond=0)
        with self.session_factory() as db:
            actor = db.scalar(select(User).where(User.username == STREAM_USER))
            ids = {s.tag: s.id for s in plant.list_sensors(db, actor=actor)}
        if self.feed is not None:
            history = simulate(spec, start=start - FIT_HISTORY, duration=FIT_HISTORY, step=self.step, seed=self.seed)
            self.feed.learn_normal({tag: history.values[:, j] for j, tag in enumerate(history.tags)})
        rows = stream(spec, start=start, step=self.step, seed=self.seed)
        pending = next(rows)
        while not self._stop.is_set():
            if self.leadership is not None and not self.leadership.hold():
                log.warning("demo stream: lost the lock; standing by")
                return
            batch, pending = _due(rows, pending, utcnow())
            if batch:
                self._handle(spec, ids, batch)
            self._stop.wait(max(WAKE, self.step).total_seconds())

    def _handle(self, spec: PlantSpec, ids: dict[str, int], batch: list[tuple[dt.datetime, np.ndarray]]) -> None:
        tags = spec.tags
        times = np.array([t.replace(tzinfo=dt.UTC).timestamp() for t, _ in batch])
        values = self._with_injections(tags, np.vstack([v for _, v in batch]))
        ts_ms = (times * 1000).round().astype(np.int64)
        if self.publisher is not None:
            self.publisher.publish_rows(spec, tags, ts_ms, values)
        else:
            known = [j for j, tag in enumerate(tags) if tag in ids]
            sensor = np.repeat(np.array([ids[tags[j]] for j in known]), len(times))
            flat = values[:, known].T.reshape(-1)
            good = np.isfinite(flat)  # a dropout is no reading at all, as a real feed would send
            self.store.insert(sensor[good], np.tile(ts_ms, len(known))[good], flat[good])
        self.rows_streamed += len(batch)

    def _with_injections(self, tags: list[str], values: np.ndarray) -> np.ndarray:
        with self._inject_lock:
            for tag, (value, left) in list(self._injected.items()):
                if tag in tags:
                    n = min(left, len(values))
                    values[:n, tags.index(tag)] = value
                    left -= n
                if left <= 0 or tag not in tags:
                    del self._injected[tag]
                else:
                    self._injected[tag] = (value, left)
        return values


class MqttPublisher:
    """Publishes rows to a broker as a plant gateway does: one many-tag JSON message per row, QoS 1.

    paho's network thread reconnects by itself and queues what is published meanwhile, so a broker
    restart delays the demo's readings instead of dropping them.
    """

    def __init__(self, url: str, topic: str, *, client_id: str | None = None) -> None:
        import paho.mqtt.client as mqtt

        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("mqtt", "tcp") or not parts.hostname:
            raise ValueError(f"mqtt_url {url!r}: expected mqtt://host:1883")
        self.topic = topic
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or "",
                                  protocol=mqtt.MQTTv5)
        if parts.username:
            self.client.username_pw_set(parts.username, parts.password)
        self.client.connect_async(parts.hostname, parts.port or 1883)
        self.client.loop_start()

    def topic_for(self, spec: PlantSpec) -> str:
        """The topic template with each placeholder filled: the site's code for {site}, "rows" elsewhere
        (the message names its tags itself, so the {tag} level only has to match the subscription)."""
        site = spec.sites[0].code if spec.sites else "demo"
        return re.sub(r"\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda m: site if m.group(1) == "site" else "rows", self.topic)

    def publish_rows(self, spec: PlantSpec, tags: list[str], ts_ms: np.ndarray, values: np.ndarray) -> None:
        topic = self.topic_for(spec)
        for t, row in zip(ts_ms, values, strict=True):
            good = np.isfinite(row)  # JSON has no NaN: a dropout is a tag left out of the message
            if not good.any():
                continue
            payload = {"ts": int(t), "values": {tags[j]: float(row[j]) for j in np.flatnonzero(good)}}
            self.client.publish(topic, orjson.dumps(payload), qos=1)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


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
