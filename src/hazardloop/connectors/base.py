"""What every connector shares: the sink it writes to, the batcher, back-off and its status.

Connectors turn an outside source (MQTT, OPC UA, Modbus) into readings. They never talk to the
readings store directly: they hand batches of numpy arrays to a `ReadingSink`, so the store can
change (CSV files, or DuckDB / PostgreSQL through `hazardloop.readings.sink.StoreSink`) without
touching protocol code, and so tests can plug in a list.

Batching is by count *and* by age (default 5,000 readings or 200 ms): a store writes far faster
in batches, and the age bound keeps an alarm from waiting on a quiet plant. A sink that raises
means the batch was not stored; the batcher keeps it and the connector retries (pollers) or
withholds the broker acknowledgement (MQTT QoS 1) — see ARCHITECTURE.md §7 "no lost data".
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import random
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

log = logging.getLogger(__name__)


@runtime_checkable
class ReadingSink(Protocol):
    """Where connectors deliver readings. Raising means: not stored, give it to me again later."""

    def write(
        self,
        tags: list[str] | np.ndarray,
        ts: np.ndarray,  # epoch milliseconds, int64
        values: np.ndarray,  # float64
        units: list[str | None] | None = None,
    ) -> None: ...


class Clock(Protocol):
    """Time as connectors see it; tests pass a fake one so back-off is checked without waiting."""

    def time(self) -> float: ...  # epoch seconds, for last-seen stamps

    def monotonic(self) -> float: ...  # for batch ages and poll periods

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock."""

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


@dataclass
class Backoff:
    """Exponential back-off with jitter, capped.

    delay(n) = min(cap, initial * factor**n) * (1 - jitter * U[0, 1)). The jitter spreads the
    reconnect storm when a broker restarts and every plant gateway comes back at once (AWS
    architecture blog, "Exponential Backoff And Jitter"); the cap keeps a source that was down
    for an hour from waiting another hour after it comes back.
    """

    initial_s: float = 0.5
    factor: float = 2.0
    cap_s: float = 30.0
    jitter: float = 0.2
    rng: random.Random = field(default_factory=random.Random, repr=False)

    def delay(self, attempt: int) -> float:
        base = min(self.cap_s, self.initial_s * self.factor ** min(attempt, 64))
        return base * (1.0 - self.jitter * self.rng.random())


@dataclass
class ConnectorStatus:
    """What an operator needs to see about one connector: is it up, since when, what went wrong."""

    name: str
    kind: str
    connected: bool = False
    connected_since: float | None = None
    last_message_at: float | None = None
    reconnects: int = 0
    last_error: str | None = None
    readings: int = 0  # delivered to the sink
    messages: int = 0
    malformed: int = 0
    recent_malformed: list[str] = field(default_factory=list)  # newest last, at most 20
    write_failures: int = 0
    dropped: int = 0  # readings given up after the pending buffer overflowed (pollers only)
    last_seen: dict[str, float] = field(default_factory=dict)  # tag -> epoch s when last received

    def mark_connected(self, now: float) -> None:
        self.connected = True
        self.connected_since = now
        self.last_error = None

    def mark_disconnected(self, error: BaseException | str | None) -> None:
        self.connected = False
        self.connected_since = None
        if error is not None:
            self.last_error = error if isinstance(error, str) else f"{type(error).__name__}: {error}"

    def note_malformed(self, where: str, why: str, count: int = 1) -> None:
        """Count `count` bad messages or readings sharing one reason, and keep the reason for the status."""
        self.malformed += count
        self.recent_malformed.append(f"{where}: {why}"[:300])
        del self.recent_malformed[:-20]

    def snapshot(self) -> dict[str, Any]:
        """A JSON-ready copy (the status view and the API read this, never the live object)."""
        return {
            "name": self.name,
            "kind": self.kind,
            "connected": self.connected,
            "connected_since": self.connected_since,
            "last_message_at": self.last_message_at,
            "reconnects": self.reconnects,
            "last_error": self.last_error,
            "readings": self.readings,
            "messages": self.messages,
            "malformed": self.malformed,
            "recent_malformed": list(self.recent_malformed),
            "write_failures": self.write_failures,
            "dropped": self.dropped,
            "last_seen": dict(self.last_seen),
        }


@dataclass
class PendingBatch:
    """What a batcher held at one moment: aligned readings, and the tokens they release once stored."""

    tags: list[str]
    ts: np.ndarray  # int64 epoch ms
    values: np.ndarray  # float64
    units: list[str | None] | None
    tokens: list[Any]

    def __len__(self) -> int:
        return len(self.values)


class Batcher:
    """Collects readings in numpy chunks and hands them to the sink in batches.

    Not thread-safe on purpose: each connector appends and flushes from one thread (the MQTT
    network thread, or the event loop for OPC UA and Modbus), which keeps the hot path lock-free.
    `tokens` ride along with the readings (MQTT message ids) and come back from `flush` only once
    the sink accepted the batch, so the caller acknowledges exactly what was stored.

    `flush` writes in the calling thread. A connector that writes in another thread (MQTT overlaps
    the commit of one batch with receiving the next) uses the three steps instead: `take` (in its
    own thread), the sink write (anywhere), then `delivered` or `refused` (back in its own thread).
    """

    def __init__(
        self,
        sink: ReadingSink,
        status: ConnectorStatus,
        *,
        max_readings: int = 5000,
        max_age_s: float = 0.2,
        max_pending: int = 1_000_000,
        clock: Clock | None = None,
    ) -> None:
        self.sink = sink
        self.status = status
        self.max_readings = max_readings
        self.max_age_s = max_age_s
        self.max_pending = max_pending
        self.clock = clock or SystemClock()
        self._tags: list[str] = []
        self._ts: list[np.ndarray] = []
        self._values: list[np.ndarray] = []
        self._units: list[str | None] | None = None
        self._tokens: list[Any] = []
        self._token_chunks: list[int] = []  # per token: how many chunks had been added before it
        self._count = 0
        self._first_at: float | None = None

    def __len__(self) -> int:
        return self._count

    @property
    def pending_tokens(self) -> int:
        return len(self._tokens)

    def add(
        self,
        tags: Sequence[str],
        ts: np.ndarray,
        values: np.ndarray,
        units: Sequence[str | None] | None = None,
    ) -> None:
        """Append one chunk (one message, one poll). `tags`, `ts`, `values` have the same length."""
        n = len(values)
        if n == 0:
            return
        if self._first_at is None:
            self._first_at = self.clock.monotonic()
        if units is not None and self._units is None:
            self._units = [None] * self._count
        if self._units is not None:
            self._units.extend(units if units is not None else [None] * n)
        self._tags.extend(tags)
        self._ts.append(ts)
        self._values.append(values)
        self._count += n

    def add_token(self, token: Any) -> None:  # noqa: ANN401 - opaque to the batcher
        """Something to hand back once everything added so far is stored (an MQTT mid)."""
        if self._first_at is None:
            self._first_at = self.clock.monotonic()
        self._tokens.append(token)
        self._token_chunks.append(len(self._values))

    def due(self) -> bool:
        if self._count >= self.max_readings:
            return True
        return self._first_at is not None and self.clock.monotonic() - self._first_at >= self.max_age_s

    def flush(self) -> list[Any] | None:
        """Write everything pending. Returns the released tokens, or None if the sink refused.

        On refusal the readings stay pending (oldest dropped beyond `max_pending`, counted in the
        status) so the next flush retries them.
        """
        batch = self.take()
        if batch is None:
            return []
        if not len(batch):
            return batch.tokens
        try:
            self.sink.write(batch.tags, batch.ts, batch.values, batch.units)
        except Exception as exc:  # any sink failure means "not stored": keep and retry
            self.refused(batch, exc)
            return None
        self.delivered(batch)
        return batch.tokens

    def take(self, limit: int | None = None) -> PendingBatch | None:
        """What is pending, as one batch; None if there was nothing.

        Everything, or with `limit` the oldest chunks holding at least `limit` readings (whole chunks:
        a message is never split) with the tokens added up to the last of them; the rest stays.
        """
        if self._count == 0 and not self._tokens:
            self._first_at = None
            return None
        if limit is not None and self._count > limit:
            return self._take_part(limit)
        if self._count:
            ts = np.concatenate(self._ts) if len(self._ts) > 1 else self._ts[0]
            values = np.concatenate(self._values) if len(self._values) > 1 else self._values[0]
        else:
            ts, values = np.empty(0, np.int64), np.empty(0, np.float64)
        ts, values = ts.astype(np.int64, copy=False), values.astype(np.float64, copy=False)
        batch = PendingBatch(self._tags, ts, values, self._units, self._tokens)
        self._tags, self._ts, self._values, self._units, self._tokens = [], [], [], None, []
        self._token_chunks, self._count, self._first_at = [], 0, None
        return batch

    def _take_part(self, limit: int) -> PendingBatch:
        ends = np.cumsum([len(v) for v in self._values])
        chunks = int(np.searchsorted(ends, limit)) + 1  # the first `chunks` chunks hold >= limit readings
        n = int(ends[chunks - 1])
        tokens = bisect.bisect_right(self._token_chunks, chunks)
        units = None if self._units is None else self._units[:n]
        ts = np.concatenate(self._ts[:chunks]).astype(np.int64, copy=False)
        values = np.concatenate(self._values[:chunks]).astype(np.float64, copy=False)
        batch = PendingBatch(self._tags[:n], ts, values, units, self._tokens[:tokens])
        self._tags, self._ts, self._values = self._tags[n:], self._ts[chunks:], self._values[chunks:]
        self._units = None if self._units is None else self._units[n:]
        self._tokens = self._tokens[tokens:]
        self._token_chunks = [k - chunks for k in self._token_chunks[tokens:]]
        self._count -= n  # the rest keeps the age of the oldest reading taken: it goes next
        return batch

    def delivered(self, batch: PendingBatch) -> None:
        """The sink stored `batch`: count it and note when each of its tags was last heard."""
        now = self.clock.time()
        self.status.readings += len(batch)
        self.status.last_message_at = now
        self.status.last_seen.update(dict.fromkeys(batch.tags, now))

    def refused(self, batch: PendingBatch, exc: BaseException) -> None:
        """The sink refused `batch`: put it back in front of what came since, to be retried."""
        self.status.write_failures += 1
        self.status.last_error = f"sink: {type(exc).__name__}: {exc}"
        if batch.units is None and self._units is None:
            units = None
        else:
            units = (batch.units or [None] * len(batch)) + (self._units or [None] * self._count)
        self._tags = batch.tags + self._tags
        self._ts = [batch.ts, *self._ts]
        self._values = [batch.values, *self._values]
        self._units = units
        self._tokens = batch.tokens + self._tokens
        self._token_chunks = [1] * len(batch.tokens) + [k + 1 for k in self._token_chunks]  # one chunk in front
        self._count += len(batch)
        self._trim()
        self._first_at = self.clock.monotonic()

    def _trim(self) -> None:
        excess = self._count - self.max_pending
        if excess <= 0:
            return
        ts = np.concatenate(self._ts)
        values = np.concatenate(self._values)
        self._tags = self._tags[excess:]
        self._ts = [ts[excess:]]
        self._values = [values[excess:]]
        if self._units is not None:
            self._units = self._units[excess:]
        self._token_chunks = [min(k, 1) for k in self._token_chunks]  # one chunk left
        self._count -= excess
        self.status.dropped += excess


class Connector(Protocol):
    """What the runner and the status registry need from any connector."""

    status: ConnectorStatus

    async def run(self) -> None: ...  # until stop(); reconnects with back-off on its own

    def stop(self) -> None: ...


class Stopper:
    """A stop flag that both threads and the event loop can wait on."""

    def __init__(self) -> None:
        self._flag = threading.Event()

    def set(self) -> None:
        self._flag.set()

    def is_set(self) -> bool:
        return self._flag.is_set()

    async def sleep(self, clock: Clock, seconds: float, step: float = 0.05) -> None:
        """Sleep on `clock`, waking early when stopped (in steps, so a fake clock sees one call)."""
        if seconds <= step or not isinstance(clock, SystemClock):
            await clock.sleep(seconds)
            return
        deadline = time.monotonic() + seconds
        while not self.is_set() and (left := deadline - time.monotonic()) > 0:
            await asyncio.sleep(min(step, left))


def now_ms(clock: Clock) -> int:
    return int(clock.time() * 1000)


async def reconnect_forever(
    connector: Any,  # noqa: ANN401 - any connector with status, backoff, clock, _stopper, kind
    session: Callable[[], Awaitable[bool]],
    errors: tuple[type[BaseException], ...],
    *,
    after: Callable[[], None] | None = None,
    up_on_error: Callable[[], bool] = lambda: False,
) -> None:
    """Run one connection after another until stopped, with capped, jittered back-off between them.

    `session` returns whether the connection got as far as delivering (then the back-off starts over);
    an expected error (refused, reset, timed out) is recorded in the status, never raised. `after`
    runs once per ended connection (flush what was batched).
    """
    attempt = 0
    while not connector._stopper.is_set():
        error: BaseException | None = None
        try:
            was_up = await session()
        except errors as exc:
            error, was_up = exc, up_on_error()
        if after is not None:
            after()
        connector.status.mark_disconnected(error)
        if connector._stopper.is_set():
            break
        attempt = 0 if was_up else attempt
        delay = connector.backoff.delay(attempt)
        attempt += 1
        connector.status.reconnects += 1
        log.warning("%s %s: disconnected (%s); reconnecting in %.2fs", connector.kind, connector.status.name, error,
                    delay)
        await connector._stopper.sleep(connector.clock, delay)
