"""MQTT ingest: a shared-subscription consumer that turns JSON messages into readings.

Topic convention
    A topic template names where sensors publish, one segment per level, e.g. the default
    ``hazardloop/{site}/{tag}`` or ``plant/{area}/{tag}``. Placeholders become ``+`` in the
    subscription filter; the segment named ``{tag}`` is the sensor tag (``sensors.tag`` in the plant
    model). A template without ``{tag}`` is fine for many-tag messages, or when the payload names
    the tag itself (``"tag": "GT-101"``).

Payload convention (UTF-8 JSON object, one of)
    single        ``{"ts": 1718000000000, "v": 3.2, "u": "%LEL"}``
    batch         ``{"ts": [t0, t1, ...], "v": [v0, v1, ...], "u": "%LEL"}``  (one tag, many times)
    many tags     ``{"ts": t, "values": {"GT-101": 3.2, "PT-201": 1.05}, "u": {"GT-101": "%LEL"}}``
    many × many   ``{"ts": [t0, t1], "values": {"GT-101": [3.2, 3.3], "PT-201": [1.0, 1.1]}}``

    ``ts`` is epoch **milliseconds** (int or float) or an ISO 8601 string **with an offset**
    (``2024-06-10T08:00:00+08:00``, ``...Z``); missing means "when it arrived". A number below
    1e11 is refused as "looks like epoch seconds", and an ISO time without an offset is refused,
    because guessing either silently shifts a plant's history by 1000× or by 8 hours.
    ``u`` (unit) is optional. Values are JSON numbers; ``null`` makes the whole message malformed.

Delivery
    QoS 1 with manual acknowledgement: a message is acknowledged only after the batch holding
    its readings was accepted by the sink, so a store that is down makes the broker hold the
    messages (at-least-once; after a reconnect the broker may redeliver, so duplicates are
    possible and the store de-duplicates on (tag, ts)). Malformed messages are counted, kept in
    the status with the reason, and acknowledged — redelivering them would not make them valid.
    MQTT v5 shared subscriptions (``$share/<group>/<filter>``) let N workers in one group split
    the sensors (ARCHITECTURE.md §6); every message goes to one member of the group.

    Flow control. The broker sends at most a window of unacknowledged messages before it waits
    for acks. An MQTT v5 client names its window in CONNECT (Receive Maximum, ``receive_maximum``
    here, 200 by default); Mosquitto 2 honours it for v5 clients (its ``max_inflight_messages``,
    20, applies to clients that name none), EMQX takes the smaller of it and its ``max_inflight``.
    The connector hands a batch to the store when ``max_unacked`` messages are pending (half the
    window by default), when ``max_readings`` are pending, when the oldest is ``max_age_s`` old, or
    as soon as the broker goes quiet with messages pending (a broker with a smaller window than
    ours is waiting for acks then). For high rates publish many-tag messages (hundreds of readings
    per message).

    Pipelining. The store commits a batch in a writer thread while the network thread receives and
    decodes the next one (the store's insert and its fsync run outside the GIL), so receiving and
    committing overlap. One batch is in each writer at a time (one writer; two for a store that
    takes concurrent writes, PostgreSQL, where one insert overlaps the other's WAL flush); whatever
    arrives meanwhile forms the next batch, so batches grow with the load, up to ``max_batch``
    readings (whole messages; a larger batch costs the store no less per reading, and PostgreSQL
    more: its sort and temporary table spill to disk). Acks go out only after their batch committed,
    from the network thread (paho's client is not used from two threads). Mosquitto 2.0 does not
    always hold to the window: once acks come in bulk it was seen sending up to ~1,000
    unacknowledged messages (its ``max_queued_messages``); nothing breaks, the batches are just
    capped by ``max_batch`` instead.

Hot path: one ``orjson.loads`` per message, values converted with numpy in one call, readings
appended to the batcher as arrays; no per-reading Python objects beyond the tag strings the
JSON decoder already made.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import select
import socket
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from hazardloop.connectors.base import (
    Backoff,
    Batcher,
    Clock,
    ConnectorStatus,
    PendingBatch,
    ReadingSink,
    Stopper,
    SystemClock,
    reconnect_forever,
)

log = logging.getLogger(__name__)

_PLACEHOLDER = re.compile(r"^\{([A-Za-z_][A-Za-z0-9_]*)\}$")
_MIN_EPOCH_MS = 1e11  # 1973-03-03 in ms; as seconds it would be year 5138
_QUIET_S = 0.005  # no packet from the broker for this long, with messages pending: hand them to the store
_IDLE_S = 0.05  # longest wait for the broker when nothing is pending (the stop flag is checked this often)


class MalformedPayload(ValueError):
    """A message that does not follow the payload convention; the text says what to fix."""


class MqttConnectError(ConnectionError):
    """The broker refused the connection or the subscription."""


@dataclass(frozen=True)
class TopicTemplate:
    """``plant/{area}/{tag}`` → subscription filter ``plant/+/+`` and the tag's segment index."""

    template: str

    def __post_init__(self) -> None:
        segments = self.template.split("/")
        for i, seg in enumerate(segments):
            if seg == "#" and i != len(segments) - 1:
                raise ValueError(f"topic template {self.template!r}: '#' must be the last segment")
            if ("{" in seg or "}" in seg) and not _PLACEHOLDER.match(seg):
                raise ValueError(f"topic template {self.template!r}: a placeholder must fill a whole segment ({seg!r})")

    @property
    def filter(self) -> str:
        return "/".join("+" if _PLACEHOLDER.match(s) else s for s in self.template.split("/"))

    @property
    def tag_index(self) -> int | None:
        for i, seg in enumerate(self.template.split("/")):
            if seg == "{tag}":
                return i
        return None

    def shared_filter(self, group: str | None) -> str:
        return f"$share/{group}/{self.filter}" if group else self.filter

    def tag_of(self, topic: str) -> str | None:
        index = self.tag_index
        if index is None:
            return None
        parts = topic.split("/")
        return parts[index] if index < len(parts) else None


# ---------------------------------------------------------------- payload decoding


def _ts_scalar(raw: Any, received_ms: int) -> int:
    if raw is None:
        return received_ms
    if isinstance(raw, bool):
        raise MalformedPayload("'ts' must be epoch milliseconds or an ISO 8601 string, not a boolean")
    if isinstance(raw, int | float):
        if raw < _MIN_EPOCH_MS:
            raise MalformedPayload(f"'ts' {raw} looks like epoch seconds; send epoch milliseconds")
        return int(raw)
    if isinstance(raw, str):
        try:
            parsed = datetime.fromisoformat(raw)
        except ValueError:
            raise MalformedPayload(f"'ts' {raw!r} is not ISO 8601") from None
        if parsed.tzinfo is None:
            raise MalformedPayload(f"'ts' {raw!r} has no UTC offset; add Z or +08:00")
        return int(parsed.timestamp() * 1000)
    raise MalformedPayload(f"'ts' must be epoch milliseconds or an ISO 8601 string, got {type(raw).__name__}")


def _ts_array(raw: list[Any], received_ms: int) -> np.ndarray:
    try:
        ts = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError):  # ISO strings (or junk): the slow path, item by item
        return np.fromiter((_ts_scalar(x, received_ms) for x in raw), dtype=np.int64, count=len(raw))
    if len(ts) and (np.isnan(ts).any() or ts.min() < _MIN_EPOCH_MS):
        raise MalformedPayload("'ts' holds null or values that look like epoch seconds; send epoch milliseconds")
    return ts.astype(np.int64)


def _floats(raw: Any, what: str) -> np.ndarray:
    try:
        values = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError):
        raise MalformedPayload(f"{what} must be numbers") from None
    if np.isnan(values).any():  # JSON has no NaN, so a NaN here was a null
        raise MalformedPayload(f"{what} holds null")
    return values


Decoded = tuple[list[str], np.ndarray, np.ndarray, list[str | None] | None]


def decode_payload(payload: bytes, topic_tag: str | None, received_ms: int) -> Decoded:
    """One message → (tags, ts epoch ms int64, values float64, units or None). Raises MalformedPayload."""
    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise MalformedPayload(f"not JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise MalformedPayload("expected a JSON object")
    ts_raw = doc.get("ts")
    unit = doc.get("u")
    many = doc.get("values")
    if many is not None:
        return _decode_many(many, ts_raw, unit, received_ms)
    tag = doc.get("tag") or topic_tag
    if not tag or not isinstance(tag, str):
        raise MalformedPayload("no tag: the topic template has no {tag} segment and the payload has no 'tag'")
    if unit is not None and not isinstance(unit, str):
        raise MalformedPayload("'u' must be a string for a single-tag message")
    raw = doc.get("v")
    if raw is None:
        raise MalformedPayload("neither 'v' nor 'values' (or 'v' is null)")
    if isinstance(raw, list):
        values = _floats(raw, "'v'")
        if not isinstance(ts_raw, list) or len(ts_raw) != len(values):
            raise MalformedPayload("a batch needs 'ts' as a list as long as 'v'")
        ts = _ts_array(ts_raw, received_ms)
    else:
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            raise MalformedPayload(f"'v' must be a number, got {type(raw).__name__}")
        values = np.array([raw], dtype=np.float64)
        ts = np.array([_ts_scalar(ts_raw, received_ms)], dtype=np.int64)
    n = len(values)
    return [tag] * n, ts, values, (None if unit is None else [unit] * n)


def _decode_many(many: Any, ts_raw: Any, unit: Any, received_ms: int) -> Decoded:
    if not isinstance(many, dict) or not many:
        raise MalformedPayload("'values' must be a non-empty object of tag → number")
    tags = list(many)
    if isinstance(ts_raw, list):  # many tags × many times: every tag a list as long as 'ts'
        ts_one = _ts_array(ts_raw, received_ms)
        grid = _floats(list(many.values()), "'values'")
        if grid.shape != (len(tags), len(ts_one)):
            raise MalformedPayload("with 'ts' as a list, every tag in 'values' needs a list as long as 'ts'")
        k = len(ts_one)
        tags_out = np.repeat(np.array(tags, dtype=object), k).tolist()
        ts, values = np.tile(ts_one, len(tags)), grid.ravel()
    else:
        tags_out = tags
        try:
            values = np.fromiter(many.values(), dtype=np.float64, count=len(tags))
        except (TypeError, ValueError):
            raise MalformedPayload("'values' must map each tag to a number") from None
        ts = np.full(len(tags), _ts_scalar(ts_raw, received_ms), dtype=np.int64)
    if unit is None:
        return tags_out, ts, values, None
    if isinstance(unit, dict):
        per_tag = [unit.get(t) for t in tags]
    elif isinstance(unit, str):
        per_tag = [unit] * len(tags)
    else:
        raise MalformedPayload("'u' must be a string or an object of tag → unit")
    reps = len(values) // len(tags)
    return tags_out, ts, values, [u for u in per_tag for _ in range(reps)]


# ---------------------------------------------------------------- the connector


class MqttConnector:
    """Consumes a topic template through a shared subscription into a sink, reconnecting with back-off.

    paho-mqtt 2.x runs in a worker thread that this class drives itself (``client.loop``), not
    paho's own reconnecting thread: our back-off has jitter, is visible in the status and is
    tested on a fake clock.
    """

    kind = "mqtt"

    def __init__(
        self,
        sink: ReadingSink,
        *,
        name: str = "mqtt",
        host: str = "127.0.0.1",
        port: int = 1883,
        topic: str = "hazardloop/{site}/{tag}",
        group: str | None = "hazardloop",
        qos: int = 1,
        client_id: str | None = None,
        keepalive_s: int = 30,
        username: str | None = None,
        password: str | None = None,
        session_expiry_s: int = 0,
        max_readings: int = 5000,
        max_age_s: float = 0.2,
        max_unacked: int | None = None,
        receive_maximum: int = 200,
        max_batch: int = 100_000,
        writers: int | None = None,
        connect_timeout_s: float = 5.0,
        backoff: Backoff | None = None,
        clock: Clock | None = None,
    ) -> None:
        if qos not in (0, 1):
            raise ValueError("qos must be 0 or 1 (QoS 2 buys nothing once the store de-duplicates)")
        if not 1 <= receive_maximum <= 65535:
            raise ValueError("receive_maximum must be 1..65535 (MQTT v5 Receive Maximum)")
        max_unacked = max(1, receive_maximum // 2) if max_unacked is None else max_unacked
        if not 1 <= max_unacked <= receive_maximum:
            raise ValueError("max_unacked must be 1..receive_maximum: the broker sends no more unacknowledged")
        self.topics = TopicTemplate(topic)
        self.host, self.port, self.group, self.qos = host, port, group, qos
        self.client_id = client_id or f"hazardloop-{name}-{uuid.uuid4().hex[:8]}"
        self.keepalive_s, self.username, self.password = keepalive_s, username, password
        self.session_expiry_s = session_expiry_s
        self.max_unacked = max_unacked
        self.receive_maximum = receive_maximum
        self.max_batch = max_batch
        # Batches committed at once: a store that takes concurrent writers (PostgreSQL: one connection
        # per thread, row locks in key order) says so; DuckDB serialises its writes, so one.
        self.writers = writers or max(1, int(getattr(sink, "concurrent_writes", 1)))
        self.connect_timeout_s = connect_timeout_s
        self.backoff = backoff or Backoff()
        self.clock = clock or SystemClock()
        self.status = ConnectorStatus(name=name, kind=self.kind)
        self.batcher = Batcher(sink, self.status, max_readings=max_readings, max_age_s=max_age_s, clock=self.clock)
        self._stopper = Stopper()
        self._client: mqtt.Client | None = None
        self._generation = 0
        self._ready = False
        self._refusal: str | None = None
        self._writer: ThreadPoolExecutor | None = None  # the store's thread, for as long as `run` runs
        self._writing: list[tuple[Future[None], PendingBatch]] = []  # batches in the writers, oldest first
        self._store_failing = False  # the last write was refused: retry by age only, not at every quiet tick
        self._wake_r: socket.socket | None = None  # the writer's "done" wakes the network thread's select
        self._wake_w: socket.socket | None = None

    # -- lifecycle

    def stop(self) -> None:
        self._stopper.set()

    async def run(self) -> None:
        async def session() -> bool:
            await asyncio.to_thread(self._session)
            return self._ready  # it had been up: the back-off starts from the beginning

        # One writer thread for the connector's life, not one per connection: a store keeps a database
        # connection per thread (PostgreSQL), and a flapping broker must not leave one behind per reconnect.
        self._writer = ThreadPoolExecutor(max_workers=self.writers, thread_name_prefix=f"mqtt-{self.status.name}-store")
        try:
            # refused, reset, timed out, DNS: all retried
            await reconnect_forever(self, session, (OSError, MqttConnectError), up_on_error=lambda: self._ready)
        finally:
            self._writer.shutdown(wait=True)  # idle by now: every session waits for its last batch

    def drop_connection(self) -> None:
        """Cut the socket under the client (tests and `connectors run` use it to prove reconnects)."""
        client = self._client
        sock = client.socket() if client is not None else None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    # -- one connection, in a worker thread

    def _session(self) -> None:
        self._ready, self._refusal = False, None
        self._generation += 1
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=self.qos > 0,
        )
        if self.username:
            client.username_pw_set(self.username, self.password)
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.session_expiry_s
        props.ReceiveMaximum = self.receive_maximum
        self._client = client
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        try:
            # A session that outlives the connection must be resumed, or the broker's queue for it is thrown away.
            clean_start = self.session_expiry_s == 0
            client.connect(self.host, self.port, self.keepalive_s, clean_start=clean_start, properties=props)
            self._wait_ready(client)
            self.status.mark_connected(self.clock.time())
            log.info("mqtt %s: subscribed to %s", self.status.name, self.topics.shared_filter(self.group))
            self._pump(client)
        finally:
            self._collect(client, wait=True)  # the batch in the writer: acked if it committed
            self._flush(client)  # what arrived since, written here
            if self._stopper.is_set():
                client.disconnect()
                client.loop(0.05)
            sock = client.socket()
            if sock is not None:
                sock.close()
            self._wake_r.close()
            self._wake_w.close()
            self._client = None

    def _wait_ready(self, client: mqtt.Client) -> None:
        deadline = self.clock.monotonic() + self.connect_timeout_s
        while not self._ready:
            rc = client.loop(0.05)
            if self._refusal:
                raise MqttConnectError(self._refusal)
            if rc != mqtt.MQTT_ERR_SUCCESS:
                raise MqttConnectError(f"connection lost while connecting: {mqtt.error_string(rc)}")
            if self.clock.monotonic() > deadline or self._stopper.is_set():
                raise TimeoutError(f"no CONNACK/SUBACK from {self.host}:{self.port} in {self.connect_timeout_s}s")

    def _pump(self, client: mqtt.Client) -> None:
        """Receive, hand batches to the writer, ack what it committed: paho's loop with our own select.

        paho's ``loop()`` cannot also wait on the writer, so this is the external-loop form paho
        documents (``loop_read`` / ``loop_write`` / ``loop_misc``) with the writer's wake-up socket in
        the same ``select``: an ack leaves as soon as its commit is done, not at the next tick.
        """
        wake = self._wake_r
        while not self._stopper.is_set():
            sock = client.socket()
            if sock is None:
                raise MqttConnectError("connection lost")
            waiting = len(self._writing) < self.writers and self.batcher.pending_tokens + len(self.batcher) > 0
            buffered = getattr(sock, "pending", lambda: 0)()  # TLS: bytes already decrypted, select won't see
            writes = [sock] if client.want_write() else []
            timeout = 0.0 if buffered else _QUIET_S if waiting else _IDLE_S
            readable, writable, _ = select.select([sock, wake], writes, [], timeout)
            if buffered:
                readable.append(sock)
            if wake in readable:
                with contextlib.suppress(BlockingIOError):
                    wake.recv(4096)
            rc = client.loop_read() if sock in readable else mqtt.MQTT_ERR_SUCCESS
            if rc == mqtt.MQTT_ERR_SUCCESS and writable and client.socket() is not None:
                rc = client.loop_write()
            if rc == mqtt.MQTT_ERR_SUCCESS:
                rc = client.loop_misc()
            self._collect(client)
            self._dispatch(client, quiet=sock not in readable)
            if rc != mqtt.MQTT_ERR_SUCCESS:
                raise MqttConnectError(f"connection lost: {mqtt.error_string(rc)}")

    def _dispatch(self, client: mqtt.Client, *, quiet: bool = False) -> None:
        """Hand what is pending to the writer, if it is free and a batch is due (or the broker went quiet)."""
        batcher = self.batcher
        if len(self._writing) >= self.writers:
            return  # messages keep arriving meanwhile: they form the next, larger batch
        if self._store_failing and not batcher.due():
            return  # a store that refused is retried every max_age_s, not hammered
        if not (quiet or batcher.pending_tokens >= self.max_unacked or batcher.due()):
            return
        batch = batcher.take(self.max_batch)
        if batch is None:
            return
        if not len(batch):  # malformed messages only: nothing to store, acknowledge them
            self._ack(client, batch.tokens)
            return
        future = self._writer.submit(self.batcher.sink.write, batch.tags, batch.ts, batch.values, batch.units)
        self._writing.append((future, batch))
        future.add_done_callback(self._wake)

    def _wake(self, _: Future[None]) -> None:
        """Writer thread: the commit is done, break the network thread out of its select."""
        with contextlib.suppress(OSError):  # a full socket buffer already holds a wake-up
            self._wake_w.send(b"\0")

    def _collect(self, client: mqtt.Client, *, wait: bool = False) -> None:
        """Network thread: ack each batch the writers stored; take a refused one back to retry.

        With `wait`, first wait for every batch in the writers (the connection is ending).
        """
        still: list[tuple[Future[None], PendingBatch]] = []
        refused: list[tuple[PendingBatch, BaseException]] = []
        for future, batch in self._writing:
            if not (wait or future.done()):
                still.append((future, batch))
                continue
            error = future.exception()  # waits when asked to
            if error is None:
                self.batcher.delivered(batch)
                self._ack(client, batch.tokens)
                self._store_failing = False
            else:
                refused.append((batch, error))
        self._writing = still
        for batch, error in reversed(refused):  # not stored, nothing acknowledged: back in front of the queue
            self._store_failing = True
            self.batcher.refused(batch, error)

    def _flush(self, client: mqtt.Client) -> None:
        """Write what is pending in this thread and ack it (at the end of a connection)."""
        tokens = self.batcher.flush()
        if tokens:
            self._ack(client, tokens)

    def _ack(self, client: mqtt.Client, tokens: list[tuple[int, int, int]]) -> None:
        generation = self._generation
        for gen, mid, qos in tokens:
            if gen == generation:  # a mid from an older connection means nothing to this one
                client.ack(mid, qos)

    # -- paho callbacks (worker thread)

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if reason.is_failure:
            self._refusal = f"broker refused the connection: {reason}"
            return
        client.subscribe(self.topics.shared_filter(self.group), options=SubscribeOptions(qos=self.qos))

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any, properties: Any) -> None:
        failed = [r for r in reasons if r.is_failure]
        if failed:
            self._refusal = f"broker refused {self.topics.shared_filter(self.group)!r}: {failed[0]}"
        else:
            self._ready = True

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        status = self.status
        status.messages += 1
        received = self.clock.time()
        status.last_message_at = received
        try:
            tags, ts, values, units = decode_payload(msg.payload, self.topics.tag_of(msg.topic), int(received * 1000))
        except MalformedPayload as exc:
            status.note_malformed(msg.topic, str(exc))
        else:
            self.batcher.add(tags, ts, values, units)
        if msg.qos > 0:
            self.batcher.add_token((self._generation, msg.mid, msg.qos))
        self._dispatch(client)
