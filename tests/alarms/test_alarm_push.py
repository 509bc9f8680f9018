"""An alarm live detection raises is pushed at once: the commit wakes the notify sender, whose polling
interval is only the fallback. The message still goes through the durable outbox."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from hazardloop.alarms.feed import LiveFeed
from hazardloop.db import make_session_factory
from hazardloop.notify import service as notify
from hazardloop.notify.flows import Sender
from hazardloop.notify.models import ChannelCreate, ChannelKind, EventKind, OutboxEntry, OutboxStatus, PolicyCreate
from hazardloop.readings.store import ReadingStore, now_ms


class Receiver:
    """A local webhook endpoint that keeps every JSON body it is sent."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                outer.bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ReadingStore]:
    reading_store = ReadingStore(tmp_path / "readings.duckdb")
    yield reading_store
    reading_store.close()


def test_an_hh_alarm_reaches_the_webhook_without_waiting_for_the_polling_interval(engine, db, world, store,  # noqa: ANN001
                                                                                   receiver) -> None:
    channel = notify.create_channel(db, actor=world.admin, data=ChannelCreate(
        kind=ChannelKind.WEBHOOK, name="control room", config={"webhook_url": receiver.url,
                                                               "secret": "control-room-secret-0123"}))
    notify.create_policy(db, actor=world.admin, data=PolicyCreate(
        name="critical", event_kinds=[EventKind.ALARM], severities=["CRITICAL"], channel_ids=[channel.id]))
    sessions = make_session_factory(engine)
    sender = Sender(sessions, interval_seconds=3600).start()  # an hour: only a wake-up can send in time
    feed = LiveFeed(sessions, store)
    feed.on_alarm(lambda report: sender.wake() if report.raised else None)
    feed.start()
    try:
        start = now_ms() - 20_000
        store.insert(np.full(10, world.sensor_a), start + np.arange(10) * 1000, np.full(10, 60.0))
        deadline = time.monotonic() + 30
        while not receiver.bodies and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        feed.stop()
        sender.stop()
    assert receiver.bodies, "no webhook arrived"
    assert "GT-101" in receiver.bodies[0]["title"] and "HH" in receiver.bodies[0]["title"]
    db.expire_all()
    [entry] = db.scalars(select(OutboxEntry).where(OutboxEntry.channel_id == channel.id))
    assert entry.status == OutboxStatus.SENT.value  # through the outbox, marked sent
