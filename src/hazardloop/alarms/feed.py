"""The live feed: every stored reading, whoever wrote it, through live detection within a second.

The reading store announces each committed batch (``ReadingStore.subscribe``) in the writer's thread:
HTTP ingest, MQTT and the other connectors, the demo. The feed only queues those arrays there, and a
worker thread of its own turns them into aligned batches for ``LiveDetection`` a few times a second:

* **Rows.** Readings are bucketed by time (``bucket_ms``, 100 ms by default) into rows with one column
  per sensor and NaN where a sensor had no reading in that row. Detection runs those rows *sparse*
  (``LiveDetection.process_rows``): a NaN is no missing-value fault and every alarm condition holds
  what the sensor's last reading said, so a 60 s analyser next to 1 s gas detectors is neither
  MISSING nor STUCK between its readings. A sensor that stops is caught by the silent check, after
  its own gap (five sample periods at least). Two readings of one sensor in one bucket go to
  successive rows, so none is skipped.
* **Lateness.** A bucket is judged once the wall clock is ``lateness_ms`` past its end, so a reading
  that arrives a little late (a gateway's 200 ms batch, a retry) still takes its place in time order.
  A reading that arrives after its bucket was judged is still judged when it is at most ``max_shift``
  late and newer than its own sensor's last judged reading: it joins the next rows, its time moved
  forward to the edge of what was judged. Each sensor's readings stay in their order (stuck, spike and
  delay timers are per sensor), only its alignment with other sensors moves by its lateness, and a
  late HH reading still raises its alarm. Anything older (a gateway's backlog after a long outage, a
  replay) is stored, charted and exported like any other reading, and counted (``late``), but the
  live detectors do not judge it: its sensor's state has moved past that instant, and going back
  would re-judge rows already turned into alarms. It is judged apart instead
  (``LiveDetection.judge_backlog``): against the alarm limits, with a fresh limit state, raising
  alarms marked as from a late backlog at their original time. A gateway uploads its buffer in many
  batches, so late readings are gathered until none has come for ``backlog_settle_s`` and then
  judged together (an episode split over two batches stays one alarm); ``backlog_judged`` counts
  them. What is gathered and not yet judged when the feed stops is judged in ``stop``. Against a crash,
  the time span of each sensor's gathered backlog is committed (``DetectorState`` "<name>:backlog") as
  it is gathered and deleted in the transaction that commits its alarms; whoever runs detection next
  reads those spans back from the store and judges them (the span, so a reading inside it that live
  detection had judged is judged again as backlog). A reading dated in the future waits for its time.
* **Crash safety.** The store is durable before it announces a reading, and detection commits its
  state with every alarm change (between alarm changes at least every ``save_every_s``). On start the
  feed replays from the store what came after the saved state (bounded by ``catchup``), so a crash
  or restart loses no reading for detection either; replaying is safe because detection gives the
  same alarms whatever the batching. A batch that fails is replayed the same way.
* **One detector per app.** Built lazily on the first readings (or at once when a saved state exists)
  over every enabled sensor, as the machine user ``FEED_USER``; fitted from the store's last ``fit_history``
  when there is no saved state (sensors without enough history keep their configured limits only),
  or from what a caller hands ``learn_normal`` (the demo's simulator). New sensors are picked up when
  their first reading arrives; limits edited in the register within ``refresh_s``.
* **One detector per database.** Two processes running detection under one name would overwrite each
  other's saved state and raise every alarm twice (two uvicorn workers, two servers on one PostgreSQL).
  Given a ``lock_url`` (a PostgreSQL database: the app's, else the readings'), the feed runs detection
  only while it holds a session-level advisory lock named after the feed on a connection of its own;
  the others stand by (dropping what they hear: the holder follows every writer's rows in the store)
  and try again every tick. When the holder dies its connection closes, the lock goes with it, and a
  standby takes over by resuming the saved state and replaying the store, as after a restart. A holder
  that loses its connection stops judging at once. Without a ``lock_url`` (SQLite/DuckDB: one
  process) the feed always runs.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import psycopg
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from hazardloop.alarms import learning, service
from hazardloop.alarms.live import LiveDetection, ProcessReport
from hazardloop.alarms.models import DetectorState
from hazardloop.auth import service as auth_service
from hazardloop.auth.models import User, UserCreate
from hazardloop.auth.roles import Role
from hazardloop.db import utcnow
from hazardloop.readings.pgstore import libpq_url
from hazardloop.readings.store import now_ms
from hazardloop.readings.stores import AnyStore

log = logging.getLogger(__name__)

FEED_USER = "live-detection"
MAX_CELLS = 2_000_000  # rows x sensors per detection call (and readings per history query): bounds memory
FIT_ROWS = 1000  # latest consecutive readings per sensor its usual jump is learned from at a fresh start
FIT_MIN_ROWS = 30  # good readings a sensor needs to be fitted from the store's history
FIT_LEVEL_ROWS = 2000  # readings per sensor, spread over fit_history, its normal levels are learned from (a
# fresh start of 10,000 sensors then holds roughly 0.5 GB at its peak, by arithmetic: 8 bytes a reading)


def feed_user(db: Session) -> User:
    """The machine user live detection reads the plant register as (operator, every area); made once."""
    user = db.scalar(select(User).where(User.username == FEED_USER))
    if user is None:
        user = auth_service.create_user(db, actor=None, data=UserCreate(
            username=FEED_USER, display_name="实时检测 Live detection", role=Role.OPERATOR, is_machine=True,
            all_areas=True))
    return user


def backlog_name(name: str) -> str:
    """The ``DetectorState`` row holding the spans of a feed's gathered, not yet judged late backlog."""
    return f"{name}:backlog"


class Leadership:
    """A PostgreSQL session-level advisory lock that says which process runs a job under one name:
    live detection (``scope`` "hazardloop-live-feed"), the server's MQTT client (web/server_mqtt.py) or the
    demo stream (demo/live.py).

    Session-level (not transaction-level) so it is held between ticks and released by PostgreSQL itself
    when the holder's connection ends, however the process died.
    """

    def __init__(self, url: str, name: str, *, scope: str = "hazardloop-live-feed") -> None:
        self.url, self.key = libpq_url(url), f"{scope}:{name}"
        self._connection: psycopg.Connection | None = None
        self.held = False

    def hold(self) -> bool:
        """True while this process holds the lock: take it if free, check a held one is still alive."""
        try:
            if self._connection is None or self._connection.closed:
                self.held = False
                self._connection = psycopg.connect(self.url, autocommit=True, connect_timeout=5)
            if self.held:
                self._connection.execute("SELECT 1")
            else:
                row = self._connection.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))",
                                               [self.key]).fetchone()
                self.held = bool(row and row[0])
        except psycopg.Error:
            log.warning("lock %r: lost the database connection; standing by", self.key)
            self.release()
        return self.held

    def release(self) -> None:
        """Give the lock up (closing the connection releases it, even if the unlock cannot be sent)."""
        self.held = False
        if self._connection is not None:
            self._connection.close()
            self._connection = None


class LiveFeed:
    """Store listener + worker thread feeding one ``LiveDetection``; see the module docstring."""

    def __init__(self, session_factory: sessionmaker[Session], store: AnyStore, *, name: str = "live",
                 interval_s: float = 0.25, bucket_ms: int = 100, lateness_ms: int = 200,
                 max_shift: dt.timedelta = dt.timedelta(seconds=60),
                 catchup: dt.timedelta = dt.timedelta(minutes=10), fit_history: dt.timedelta = dt.timedelta(hours=6),
                 save_every_s: float = 5.0, silent_every_s: float = 5.0, refresh_s: float = 300.0,
                 calibration_every_s: float = 60.0, backlog_settle_s: float = 2.0, clock: Callable[[], int] = now_ms,
                 detection: Mapping[str, Any] | None = None, lock_url: str | None = None) -> None:
        if bucket_ms <= 0 or lateness_ms < 0 or interval_s <= 0:
            raise ValueError("bucket_ms and interval_s must be positive, lateness_ms >= 0")
        self.session_factory, self.store, self.name = session_factory, store, name
        self.interval_s, self.bucket_ms, self.lateness_ms = interval_s, bucket_ms, lateness_ms
        self.catchup_ms, self.fit_history_ms = int(catchup / dt.timedelta(milliseconds=1)), int(
            fit_history / dt.timedelta(milliseconds=1))
        self.max_shift_ms = int(max_shift / dt.timedelta(milliseconds=1))
        self.save_every_s, self.silent_every_s, self.refresh_s = save_every_s, silent_every_s, refresh_s
        self.calibration_every_s = calibration_every_s
        self.backlog_settle_ms = int(backlog_settle_s * 1000)
        self.clock = clock
        self.detection = dict(detection or {})
        self.leadership = Leadership(lock_url, name) if lock_url else None
        self.live: LiveDetection | None = None
        self.late = 0  # readings behind what live detection had judged: judged apart, as a late backlog
        self.backlog_judged = 0  # late readings judged against the limits (judge_backlog)
        self.shifted = 0  # readings judged a little after their time (they arrived after their bucket)
        self.unknown = 0  # readings of sensors not (or no longer) enabled
        self.batches = 0
        self.last_report: ProcessReport | None = None
        self._alarm_listeners: list[Callable[[ProcessReport], None]] = []
        self._queue: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._queue_lock = threading.Lock()
        self._arrived = threading.Event()
        self._stop = threading.Event()
        self._idle = threading.Event()
        self._thread: threading.Thread | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._fit_request: dict[str, np.ndarray] | None = None
        self._reload_calibration = False
        self._reset_buffer()
        self._reset_backlog()
        self._closed_until: int | None = None  # readings before this ms are late
        self._ids = np.zeros(0, dtype=np.int64)
        self._cols = np.zeros(0, dtype=np.int64)
        self._last_silent = self._last_refresh = self._last_calibration = time.monotonic()
        self._retry_at = 0.0

    # ---- wiring ------------------------------------------------------------------------------------
    def on_alarm(self, listener: Callable[[ProcessReport], None]) -> None:
        """Call ``listener`` (in the worker thread) after a batch raised, updated or cleared alarms
        and committed — the notify sender's wake-up."""
        self._alarm_listeners.append(listener)

    def listen(self) -> LiveFeed:
        """Hear the store's new readings (``start`` does this; tests drive ``tick`` themselves after it).
        Listening starts before any replay from the store, so that no reading falls between the two
        (the overlap is de-duplicated)."""
        subscribe = getattr(self.store, "subscribe", None)
        if subscribe is None:
            log.error("live feed %r: this reading store (%s) announces no new readings; live detection will "
                      "hear nothing", self.name, type(self.store).__name__)
            return self
        self._unsubscribe = subscribe(self._heard)
        return self

    def start(self) -> LiveFeed:
        """Listen to the store and start the worker thread."""
        self.listen()
        self._thread = threading.Thread(target=self._run, name=f"hazardloop-live-feed-{self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop listening and end the worker. Buckets not yet judged stay in the store; the next start
        replays them (see the module docstring), so stopping never loses them for detection."""
        if self._unsubscribe is not None:
            self._unsubscribe()
        self._stop.set()
        self._arrived.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self.live is not None and len(self._late_sid) and self.leading:
            try:
                with self.session_factory() as db:
                    self._judge_backlog(db, self.clock(), force=True)
            except Exception:  # noqa: BLE001 - stopping must go on; the readings themselves are stored
                log.exception("live feed %r: judging the late backlog at stop failed", self.name)
        if self.leadership is not None:
            self.leadership.release()

    def learn_normal(self, values_by_tag: Mapping[str, Any]) -> None:
        """Fit each sensor's normal from this history (tag -> readings) before the next batch."""
        self._fit_request = {tag: np.asarray(v, dtype=float) for tag, v in values_by_tag.items()}
        self._arrived.set()

    def reload_calibration(self) -> None:
        """Re-read the verdict-learned limits before the next batch (the recalibration job calls this)."""
        self._reload_calibration = True
        self._arrived.set()

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until everything heard so far is judged, or ``timeout``; True when idle (for tests/tools)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._idle.clear()
            self._arrived.set()
            if self._idle.wait(max(0.0, deadline - time.monotonic())) and self.pending == 0:
                return True
        return False

    @property
    def leading(self) -> bool:
        """Whether this feed runs detection (always, without a ``lock_url``)."""
        return self.leadership is None or self.leadership.held

    @property
    def pending(self) -> int:
        """Readings heard but not yet judged (queued or waiting for their bucket to close)."""
        with self._queue_lock:
            queued = sum(len(q[0]) for q in self._queue)
        return queued + len(self._sid) + len(self._late_sid)

    # ---- the listener (writer's thread) ------------------------------------------------------------
    def _heard(self, sensor_id: np.ndarray, ts: np.ndarray, value: np.ndarray) -> None:
        with self._queue_lock:
            self._queue.append((sensor_id, ts, value))
        self._arrived.set()

    # ---- the worker --------------------------------------------------------------------------------
    def _run(self) -> None:
        self._guarded(self.tick)
        while not self._stop.is_set():
            self._arrived.wait(self._timeout())
            self._arrived.clear()
            if self._stop.is_set():
                break
            self._guarded(self.tick)

    def _guarded(self, job: Callable[..., Any], *args: Any) -> None:
        """Run one step; a failure drops the detector (it is rebuilt from the saved state and the store's
        readings after a short pause) instead of ending live detection."""
        if time.monotonic() < self._retry_at:
            return
        try:
            job(*args)
        except Exception:  # noqa: BLE001 - any failure: log it, rebuild, go on
            log.exception("live feed %r: a batch failed; replaying from the reading store", self.name)
            self.live = None
            self._retry_at = time.monotonic() + 2.0

    def _timeout(self) -> float:
        """Until the oldest waiting bucket may close, at most ``interval_s``."""
        if not len(self._sid):
            return self.interval_s
        due = (int(self._ts.min()) // self.bucket_ms + 1) * self.bucket_ms + self.lateness_ms
        return float(np.clip((due - self.clock()) / 1000.0, 0.01, self.interval_s))

    def tick(self, now: int | None = None) -> ProcessReport | None:
        """One step of the worker: take what was heard, judge the buckets whose time has come, and the
        housekeeping (silent feeds, calibration, sensor list). Public so tests can drive it on a clock."""
        now = self.clock() if now is None else now
        with self._queue_lock:
            heard, self._queue = self._queue, []
        if self.leadership is not None and not self.leadership.hold():
            self._stand_by()
            return None
        with self.session_factory() as db:
            if self.live is None and (heard or len(self._sid) or self._fit_request is not None
                                      or db.get(DetectorState, self.name) is not None):
                oldest = min((int(ts.min()) for _, ts, _ in heard if len(ts)), default=now)
                self._init(db, now, fit_until=oldest)
            if self.live is None:
                self._idle.set()
                return None
            gathered = len(self._late_sid)
            for sid, ts, value in heard:
                self._buffer(sid, ts, value)
            if len(self._late_sid) > gathered:
                self._keep_backlog_spans(db)
            self._housekeeping(db)
            report = self._judge(db, ((now - self.lateness_ms) // self.bucket_ms) * self.bucket_ms)
            report = self._judge_backlog(db, now) or report
            if report is None and time.monotonic() - self._last_silent >= self.silent_every_s:
                report = self.live.check_silent(db, dt.datetime.fromtimestamp(now / 1000, dt.UTC))
                self._last_silent = time.monotonic()
                self._announce(report)
        if not len(self._sid):
            self._idle.set()
        return report

    def _stand_by(self) -> None:
        """Another process runs detection: forget the detector and what was heard (the holder judges it;
        on taking over, this feed resumes the saved state and replays the store)."""
        if self.live is not None:
            log.warning("live feed %r: lost the detection lock; standing by", self.name)
        self.live = None
        self._reset_buffer()
        self._reset_backlog()
        self._closed_until = None
        self._idle.set()

    # ---- building the detector ---------------------------------------------------------------------
    def _init(self, db: Session, now: int, fit_until: int) -> None:
        """Build the detector; resume (and replay from the store) or, fresh, fit on the history before
        ``fit_until`` (the first reading to judge, so it is not judged against a normal that includes it)."""
        self._build(db)
        live = self.live
        assert live is not None
        self._reset_buffer()
        if np.isfinite(live.last_ts):  # resumed: replay what came after the saved state
            done = int(np.floor(live.last_ts * 1000)) + 1
            start = max(done, now - self.catchup_ms)
            if start > done:
                log.warning("live feed %r: readings from %s to %s are older than the catch-up window and are "
                            "not judged", self.name, dt.datetime.fromtimestamp(done / 1000, dt.UTC),
                            dt.datetime.fromtimestamp(start / 1000, dt.UTC))
            window = self.store.window(self._ids, start, np.iinfo(np.int64).max)
            self._closed_until = start
            self._buffer(window.sensor_id, window.ts, window.value)
        else:
            self._closed_until = None
            levels, recent = self._history(live, fit_until)
            live.fit(levels, min_rows=FIT_MIN_ROWS, recent_by_tag=recent)
        self._restore_backlog(db)
        log.info("live feed %r: watching %d sensors (%s)", self.name, len(live.sensors),
                 "resumed" if np.isfinite(live.last_ts) else "fresh start")

    def _history(self, live: LiveDetection, until: int,
                 span_ms: int | None = None) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Each sensor's stored ``fit_history`` before ``until``, read a few sensors at a time (six hours
        of 10,000 one-second sensors would not fit in memory at once), as (levels, recent): up to
        ``FIT_LEVEL_ROWS`` readings spread evenly over the whole span, for the normal levels and operating
        states (a pump that starts and stops through those hours is seen in both), and the last ``FIT_ROWS``
        consecutive readings, for the usual one-step change."""
        tag_of = {s.id: s.tag for s in live.sensors}
        span_ms = self.fit_history_ms if span_ms is None else span_ms
        per_query = max(1, MAX_CELLS // max(1, span_ms // 1000))  # sensors, at 1 Hz at most
        levels: dict[str, np.ndarray] = {}
        recent: dict[str, np.ndarray] = {}
        for lo in range(0, len(self._ids), per_query):
            window = self.store.window(self._ids[lo:lo + per_query], until - span_ms, until)
            for sid, (_, values) in window.by_sensor().items():
                if sid in tag_of:
                    stride = max(1, -(-len(values) // FIT_LEVEL_ROWS))  # ceil: at most FIT_LEVEL_ROWS
                    levels[tag_of[sid]] = values[::-1][::stride][::-1].copy()  # always keeps the newest
                    recent[tag_of[sid]] = values[-FIT_ROWS:].copy()
        return levels, recent

    def _build(self, db: Session) -> None:
        """(Re)build the detector over the enabled sensors, resuming the saved state by tag."""
        live = LiveDetection.start(db, actor=feed_user(db), name=self.name, **self.detection)
        ids = np.array([s.id for s in live.sensors], dtype=np.int64)
        order = np.argsort(ids)
        self._ids, self._cols = ids[order], order.astype(np.int64)
        self.live = live
        self._last_refresh = self._last_calibration = time.monotonic()

    def _housekeeping(self, db: Session) -> None:
        live = self.live
        assert live is not None
        if self._fit_request is not None:
            request, self._fit_request = self._fit_request, None
            live.fit(request)
        if self._reload_calibration or time.monotonic() - self._last_calibration >= self.calibration_every_s:
            self._reload_calibration = False
            live.load_calibration(db)
            hours = learning.pending_relearn(db, self.name)
            if hours is not None:
                self._relearn(db, hours)
            self._last_calibration = time.monotonic()
        if time.monotonic() - self._last_refresh >= self.refresh_s:
            self._refresh(db)

    def _relearn(self, db: Session, hours: float) -> None:
        """A person asked for normal to be learned afresh (learning.request_relearn): fit on the stored
        readings of the last ``hours``, save, and close the request in one commit."""
        assert self.live is not None
        levels, recent = self._history(self.live, self.clock(), span_ms=int(hours * 3_600_000))
        self.live.fit(levels, min_rows=FIT_MIN_ROWS, recent_by_tag=recent)
        fitted = sum(1 for v in levels.values() if np.isfinite(v).sum() >= FIT_MIN_ROWS)
        learning.relearned(db, name=self.name, sensors=fitted, hours=hours)
        self.live.save(db)
        db.commit()
        log.warning("live feed %r: normal relearned from %g h of readings (%d sensors)", self.name, hours, fitted)

    def _refresh(self, db: Session) -> None:
        """Pick up register changes (new sensors, edited limits): the state is saved, rebuild from it."""
        assert self.live is not None
        self.live.save(db)
        db.commit()
        self._build(db)

    # ---- the buffer of heard readings --------------------------------------------------------------
    def _reset_buffer(self) -> None:
        self._sid = np.zeros(0, dtype=np.int64)
        self._ts = np.zeros(0, dtype=np.int64)
        self._value = np.zeros(0, dtype=np.float64)

    def _buffer(self, sensor_id: np.ndarray, ts: np.ndarray, value: np.ndarray) -> None:
        sensor_id, ts = np.asarray(sensor_id, dtype=np.int64), np.asarray(ts, dtype=np.int64)
        edge = self._closed_until
        if edge is not None and (ts < edge).any():
            late = np.flatnonzero(ts < edge)
            movable = (ts[late] > self._judged_until(sensor_id[late])) & (edge - ts[late] <= self.max_shift_ms)
            ts = ts.copy()
            ts[late[movable]] = edge
            self.shifted += int(movable.sum())
            self.late += int(len(late) - movable.sum())
            self._gather_backlog(sensor_id[late[~movable]], ts[late[~movable]], np.asarray(value)[late[~movable]])
            keep = np.ones(len(ts), dtype=bool)
            keep[late[~movable]] = False
            sensor_id, ts, value = sensor_id[keep], ts[keep], np.asarray(value)[keep]
        if len(ts):
            self._sid = np.concatenate([self._sid, np.asarray(sensor_id, dtype=np.int64)])
            self._ts = np.concatenate([self._ts, ts])
            self._value = np.concatenate([self._value, np.asarray(value, dtype=np.float64)])

    # ---- the late backlog --------------------------------------------------------------------------
    def _reset_backlog(self) -> None:
        self._late_sid = np.zeros(0, dtype=np.int64)
        self._late_ts = np.zeros(0, dtype=np.int64)
        self._late_value = np.zeros(0, dtype=np.float64)
        self._late_heard = 0  # clock ms when the last late reading was gathered

    def _gather_backlog(self, sensor_id: np.ndarray, ts: np.ndarray, value: np.ndarray) -> None:
        if not len(ts):
            return
        self._late_sid = np.concatenate([self._late_sid, np.asarray(sensor_id, dtype=np.int64)])
        self._late_ts = np.concatenate([self._late_ts, np.asarray(ts, dtype=np.int64)])
        self._late_value = np.concatenate([self._late_value, np.asarray(value, dtype=np.float64)])
        self._late_heard = self.clock()

    def _judge_backlog(self, db: Session, now: int, *, force: bool = False) -> ProcessReport | None:
        """Judge the gathered late readings once none has come for ``backlog_settle_s`` (or they grew to
        ``MAX_CELLS``, or ``force``): against the alarm limits, apart from the live state."""
        if not len(self._late_sid) or self.live is None:
            return None
        if not force and now - self._late_heard < self.backlog_settle_ms and len(self._late_sid) < MAX_CELLS:
            return None
        sid, ts, value = self._late_sid, self._late_ts, self._late_value
        self._reset_backlog()
        try:
            cols = self._columns(db, sid)
            known = cols >= 0
            service.drop_detector_blob(db, backlog_name(self.name))  # committed with the alarms, or not at all
            report = self.live.judge_backlog(db, cols[known], ts[known] / 1000.0, value[known],
                                             received_at=dt.datetime.fromtimestamp(now / 1000, dt.UTC))
            db.commit()  # (judge_backlog commits only when it had readings to judge)
        except Exception:
            db.rollback()
            self._gather_backlog(sid, ts, value)  # judged again once the detector is back
            raise
        self.unknown += int(len(cols) - known.sum())
        self.backlog_judged += int(known.sum())
        if report.raised:
            log.warning("live feed %r: %d alarm(s) raised from a late backlog of %d readings", self.name,
                        len(report.raised), int(known.sum()))
        self._announce(report)
        return report

    def _keep_backlog_spans(self, db: Session) -> None:
        """Commit each sensor's gathered backlog span [first, last] ms: what a crash must not forget."""
        order = np.argsort(self._late_sid, kind="stable")
        sensors, starts = np.unique(self._late_sid[order], return_index=True)
        ts = self._late_ts[order]
        first, last = np.minimum.reduceat(ts, starts), np.maximum.reduceat(ts, starts)
        spans = [[int(s), int(a), int(b)] for s, a, b in zip(sensors, first, last, strict=True)]
        service.store_detector_blob(db, name=backlog_name(self.name), blob=json.dumps({"spans": spans}),
                                    now=utcnow())
        db.commit()

    def _restore_backlog(self, db: Session) -> None:
        """Gather again, from the store, the backlog spans a stopped or crashed holder had not judged."""
        blob = service.detector_blob(db, backlog_name(self.name))
        if blob is None:
            return
        spans = json.loads(blob).get("spans", [])
        for sensor, first, last in spans:
            window = self.store.window([sensor], first, last + 1)
            self._gather_backlog(window.sensor_id, window.ts, window.value)
        log.warning("live feed %r: judging a late backlog of %d readings left unjudged by the last run",
                    self.name, len(self._late_sid))

    def _judged_until(self, sid: np.ndarray) -> np.ndarray:
        """Epoch ms of each sensor's last judged reading (-inf: none yet, or a sensor detection does not know)."""
        cols = self._lookup(sid)
        out = np.full(len(sid), -np.inf)
        if self.live is not None:
            known = cols >= 0
            out[known] = np.nan_to_num(self.live.monitor.last_good_time[cols[known]] * 1000.0, nan=-np.inf)
        return out

    def _columns(self, db: Session, sid: np.ndarray) -> np.ndarray:
        """Column of each sensor id in the detector; -1 for one it does not know (rebuilt once to look)."""
        cols = self._lookup(sid)
        if (cols < 0).any() and time.monotonic() - self._last_refresh >= 10.0:
            self._refresh(db)
            cols = self._lookup(sid)
        return cols

    def _lookup(self, sid: np.ndarray) -> np.ndarray:
        if not len(self._ids):
            return np.full(len(sid), -1, dtype=np.int64)
        at = np.clip(np.searchsorted(self._ids, sid), 0, len(self._ids) - 1)
        return np.where(self._ids[at] == sid, self._cols[at], -1)

    # ---- judging closed buckets --------------------------------------------------------------------
    def _judge(self, db: Session, cut: int) -> ProcessReport | None:
        """Judge every buffered reading before ``cut`` (epoch ms, a bucket boundary)."""
        if not len(self._sid):
            return None
        ready = self._ts < cut
        if not ready.any():
            return None
        sid, ts, value = self._sid[ready], self._ts[ready], self._value[ready]
        self._sid, self._ts, self._value = self._sid[~ready], self._ts[~ready], self._value[~ready]
        self._closed_until = cut if self._closed_until is None else max(self._closed_until, cut)
        cols = self._columns(db, sid)
        known = cols >= 0
        self.unknown += int(len(cols) - known.sum())
        row_ts, x = self._rows(cols[known], ts[known], value[known])
        report = None
        assert self.live is not None
        step = max(1, MAX_CELLS // max(1, x.shape[1]))
        for lo in range(0, len(row_ts), step):
            report = self.live.process_rows(db, row_ts[lo:lo + step] / 1000.0, x[lo:lo + step], sparse=True,
                                            save_every_s=self.save_every_s)
            self.batches += 1
            self._last_silent = time.monotonic()
            self._announce(report)
        return report

    def _rows(self, cols: np.ndarray, ts: np.ndarray, value: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Readings → (row times in ms, rows x sensors matrix with NaN where a sensor has no reading).

        Bucket by ``bucket_ms``; a sensor's second reading in a bucket opens a second row. A row's time
        is its latest reading's (never earlier than the row before, so rows stay in time order).
        """
        p = len(self.live.sensors) if self.live is not None else 0
        if not len(ts):
            return np.zeros(0), np.zeros((0, p))
        order = np.lexsort((ts, cols))
        cols, ts, value = cols[order], ts[order], value[order]
        first = np.ones(len(ts), dtype=bool)
        first[1:] = (cols[1:] != cols[:-1]) | (ts[1:] != ts[:-1])  # a re-announced reading: once
        cols, ts, value = cols[first], ts[first], value[first]
        bucket = ts // self.bucket_ms
        order = np.lexsort((ts, cols, bucket))
        cols, ts, value, bucket = cols[order], ts[order], value[order], bucket[order]
        group_start = np.ones(len(ts), dtype=bool)
        group_start[1:] = (bucket[1:] != bucket[:-1]) | (cols[1:] != cols[:-1])
        idx = np.arange(len(ts))
        rank = idx - np.maximum.accumulate(np.where(group_start, idx, 0))
        keys, row = np.unique(bucket * (int(rank.max()) + 1) + rank, return_inverse=True)
        row_ts = np.full(len(keys), np.iinfo(np.int64).min)
        np.maximum.at(row_ts, row, ts)
        row_ts = np.maximum.accumulate(row_ts)
        x = np.full((len(keys), p), np.nan)
        x[row, cols] = value
        return row_ts.astype(np.float64), x

    def _announce(self, report: ProcessReport) -> None:
        self.last_report = report
        if report.raised or report.updated or report.cleared:
            for listener in list(self._alarm_listeners):
                try:
                    listener(report)
                except Exception:  # noqa: BLE001 - a listener bug must not stop detection
                    log.exception("live feed %r: alarm listener %r failed", self.name, listener)
