"""kill -9 of the real server while readings stream in and alarm messages go out (issue #5, "Done when").

The server runs as an installation runs it: ``hazardloop serve`` in a process of its own over a data
dir (SQLite for the register, DuckDB for readings), scheduler on, no demo. A gateway thread streams
batches over HTTP with HH episodes on several sensors; a local webhook receiver checks signatures and
answers slowly, so that when the kill comes one message is on the wire and more wait in the outbox.
The server restarts on the same data dir and the stream finishes (the gateway re-sends what was not
answered, as a real one does). Then:

1. every reading of a batch answered 200 is in the store, with its value;
2. every alarm message became one outbox row and reached the receiver: exactly once, except the one
   the kill caught between send and mark (on the wire, or answered and not yet marked sent), which
   arrives twice — the outbox's at-least-once promise; the receiver drops the repeat by its
   Idempotency-Key. Messages queued but unclaimed at the kill, and all new ones, are sent by the
   restarted server. Rows the dead server had *claimed* (its batch, not only the one on the wire)
   keep its lease until it runs out — the dead server no longer renews it, ``outbox.DEFAULT_LEASE``
   after its last renewal at most — and then the restarted server's sender, which sleeps until the
   earliest lease ends, sends them by itself: the test waits for that and checks that it came
   within one lease (plus a margin for the sending) of the kill;
3. detection resumed from its saved state: every HH episode raised exactly one alarm, and none
   raised before the kill was raised again by the restarted server.

Not a database test: the server owns its own SQLite file under the tmp data dir.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import numpy as np
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from world import World, build_world, gas_sensor

from hazardloop import db as hl_db
from hazardloop.alarms.models import Alarm, AlarmNotification, DetectorState
from hazardloop.auth import service as auth_service
from hazardloop.auth.models import UserCreate
from hazardloop.auth.roles import Role
from hazardloop.notify import service as notify
from hazardloop.notify.models import ChannelCreate, ChannelKind, OutboxEntry, PolicyCreate
from hazardloop.notify.outbox import DEFAULT_LEASE
from hazardloop.plant import service as plant
from hazardloop.plant.models import SensorUpdate
from hazardloop.readings.store import now_ms

SECRET = "crash-test-webhook-secret-0123"
SENSORS = ("GT-101", "GT-102", "GT-103", "GT-201")  # GT-201 in the other area
FAST = {"on_delay_s": 0.0, "sample_period_s": 10.0}  # HH at once (50, deadband 2); silent after 50 s
BATCHES = 40
PER_BATCH = 4  # readings per sensor per HTTP batch, SPACING_MS apart and up to the moment it is sent
SPACING_MS = 20
GATE = 20  # the gateway holds batch GATE (before the second episodes) until the kill has happened
EPISODES = {tag: ((2 + i, 5 + i), (GATE + 4 + i, GATE + 7 + i)) for i, tag in enumerate(SENSORS)}  # batch ranges
RECEIVER_DELAY_S = 0.5  # a slow receiver: messages queue up behind the one on the wire
BOOT = ("import logging, sys; logging.basicConfig(level=logging.INFO, stream=sys.stderr, "
        "format='%(asctime)s %(name)s %(levelname)s %(message)s'); from hazardloop.cli import app; app()")


def wait_for(what: str, missing: Callable[[], str], timeout: float) -> None:
    """Poll `missing` (what is still missing, "" when nothing) until it is empty; fail saying what was missing."""
    deadline = time.monotonic() + timeout
    while lack := missing():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}: {lack}")
        time.sleep(0.05)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---------------------------------------------------------------- the webhook receiver


@dataclass
class Receiver:
    """Who got what: every signed request by Idempotency-Key, and which keys are on the wire right now."""

    base: str = ""
    delay_s: float = RECEIVER_DELAY_S
    arrivals: list[str] = field(default_factory=list)
    arrived_at: dict[str, float] = field(default_factory=dict)  # key -> last arrival (monotonic)
    on_wire: dict[str, float] = field(default_factory=dict)  # key -> when it arrived (monotonic)
    forged: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Hook(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        state: Receiver = self.server.state  # type: ignore[attr-defined]
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        ts = self.headers.get("x-hazardloop-timestamp", "")
        mac = hmac.new(SECRET.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
        key = self.headers.get("idempotency-key", "")
        if self.headers.get("x-hazardloop-signature") != f"sha256={mac}" or json.loads(body)["idempotency_key"] != key:
            with state.lock:
                state.forged += 1
            self._reply(401, {"error": "bad signature"})
            return
        with state.lock:
            state.arrivals.append(key)
            state.on_wire[key] = state.arrived_at[key] = time.monotonic()
        try:
            threading.Event().wait(state.delay_s)
            self._reply(200, {"received": True})
        finally:
            with state.lock:
                state.on_wire.pop(key, None)

    def _reply(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            pass  # the sender died while we answered: that is the point of this test

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    state = Receiver(base=f"http://127.0.0.1:{server.server_address[1]}")
    server.state = state  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


# ---------------------------------------------------------------- the installation


@dataclass
class Plant:
    data_dir: Path
    sessions: sessionmaker[Session]
    world: World
    gateway_token: str


@pytest.fixture
def installation(tmp_path: Path, receiver: Receiver) -> Iterator[Plant]:
    """A migrated data dir with the foundation's plant, two more sensors, a gateway token, and the webhook
    channel + alarm policy — through the services, as an administrator would set it up."""
    data_dir = tmp_path / "var"
    url = f"sqlite:///{data_dir / 'hazardloop.db'}"
    hl_db.upgrade(url)
    engine = hl_db.make_engine(url)
    sessions = hl_db.make_session_factory(engine)
    with sessions() as db:
        world = build_world(db)
        for sensor_id in (world.sensor_a, world.sensor_b):
            plant.update_sensor(db, actor=world.admin, sensor_id=sensor_id, data=SensorUpdate(**FAST))
        for tag in ("GT-102", "GT-103"):
            plant.create_sensor(db, actor=world.admin, data=gas_sensor(tag, world.area_a, world.equipment_a, **FAST))
        gateway = auth_service.create_user(db, actor=world.admin, data=UserCreate(
            username="gateway-1", display_name="采集网关", role=Role.OPERATOR, is_machine=True, all_areas=True))
        token = auth_service.create_token(db, actor=world.admin, user_id=gateway.id, name="crash test")[1]
        channel = notify.create_channel(db, actor=world.admin, data=ChannelCreate(
            kind=ChannelKind.WEBHOOK, name="DCS", config={"webhook_url": f"{receiver.base}/hook", "secret": SECRET}))
        notify.create_policy(db, actor=world.admin, data=PolicyCreate(
            name="all alarms to the DCS", channel_ids=[channel.id], event_kinds=["alarm"]))
    yield Plant(data_dir, sessions, world, token)
    engine.dispose()


class Server:
    """`hazardloop serve` as a child process on a fixed port, its log in a file per start."""

    def __init__(self, data_dir: Path, port: int) -> None:
        self.data_dir, self.port = data_dir, port
        self.url = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.logs: list[Path] = []

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HAZARDLOOP_")}
        env.update(HAZARDLOOP_DATA_DIR=str(self.data_dir), HAZARDLOOP_SECRET_KEY="crash-test-secret",
                   HAZARDLOOP_SCHEDULER_ENABLED="true", HAZARDLOOP_DEMO_STREAM="false",
                   HAZARDLOOP_CONFIG=str(self.data_dir / "absent.toml"))
        log = self.data_dir / f"server-{len(self.logs) + 1}.log"
        self.logs.append(log)
        with log.open("wb") as out:
            self.process = subprocess.Popen([sys.executable, "-c", BOOT, "serve", "--port", str(self.port)],
                                            env=env, cwd=self.data_dir, stdout=out, stderr=subprocess.STDOUT)
        wait_for("the server to start", self._unhealthy, 30)

    def _unhealthy(self) -> str:
        assert self.process is not None
        if self.process.poll() is not None:
            pytest.fail(f"the server exited with {self.process.returncode}:\n{self.logs[-1].read_text()[-3000:]}")
        try:
            answer = httpx.get(f"{self.url}/health", timeout=1)
        except httpx.TransportError as exc:
            return f"/health: {exc.__class__.__name__}"
        return "" if answer.status_code == 200 else f"/health answered {answer.status_code}"

    def kill9(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


# ---------------------------------------------------------------- the gateway


class Gateway(threading.Thread):
    """Streams BATCHES batches of live readings (stamped when first sent, re-sent unchanged through the
    outage until answered 200), baseline ~10 %LEL with noise and 60 %LEL in each sensor's EPISODES."""

    def __init__(self, url: str, token: str, gate: threading.Event) -> None:
        super().__init__(name="crash-test-gateway", daemon=True)
        self.url, self.token, self.gate = url, token, gate
        self.sent: list[list[dict]] = []
        self.acked: list[int] = []
        self.error = ""
        self._pause = threading.Event()
        self._rng = np.random.default_rng(5)
        self._last_ms = 0

    def batch(self, index: int) -> list[dict]:
        first = max(now_ms() - (PER_BATCH - 1) * SPACING_MS, self._last_ms + SPACING_MS)
        self._last_ms = first + (PER_BATCH - 1) * SPACING_MS
        rows = []
        for k in range(PER_BATCH):
            for tag in SENSORS:
                high = any(a <= index < b for a, b in EPISODES[tag])
                value = round(float((60.0 if high else 10.0) + self._rng.normal(0, 0.5)), 2)
                rows.append({"tag": tag, "ts": first + k * SPACING_MS, "value": value})
        return rows

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=5, headers={"Authorization": f"Bearer {self.token}"}) as client:
            for index in range(BATCHES):
                if index == GATE and not self.gate.wait(60):
                    self.error = "the kill never came"
                    return
                self.sent.append(self.batch(index))
                if not self._post(client, index, self.sent[-1]):
                    return
                self._pause.wait(0.1)  # a gateway's pace, so that detection and sending overlap the stream

    def _post(self, client: httpx.Client, index: int, batch: list[dict]) -> bool:
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline:
            try:
                answer = client.post("/api/v1/readings", json={"readings": batch})
            except httpx.TransportError:
                self._pause.wait(0.1)  # the server is down: re-send once it is back
                continue
            if answer.status_code == 200:
                self.acked.append(index)
                return True
            if answer.status_code < 500:
                self.error = f"batch {index} refused: {answer.status_code} {answer.text}"
                return False
            self._pause.wait(0.1)
        self.error = f"batch {index} was never acknowledged"
        return False


# ---------------------------------------------------------------- looking inside


def outbox(sessions: sessionmaker[Session]) -> dict[str, tuple[str, str | None]]:
    """idempotency key -> (status, claim token) of every outbox row."""
    with sessions() as db:
        return {k: (s, t) for k, s, t in db.execute(
            select(OutboxEntry.idempotency_key, OutboxEntry.status, OutboxEntry.claim_token))}


def hh_alarms(sessions: sessionmaker[Session]) -> list[Alarm]:
    with sessions() as db:
        return list(db.scalars(select(Alarm).where(Alarm.type == "limit_hh").order_by(Alarm.id)))


def stored(server: Server, token: str, tag: str, start: int, end: int) -> dict[int, float]:
    answer = httpx.get(f"{server.url}/api/v1/readings/{tag}", params={"bucket": "raw", "start": start, "end": end},
                       headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    return dict(zip(body["t"], body["value"], strict=True))


# ---------------------------------------------------------------- the test


def test_kill9_mid_stream_loses_no_acknowledged_reading_and_no_queued_message(
    installation: Plant, receiver: Receiver
) -> None:
    sessions = installation.sessions
    server = Server(installation.data_dir, free_port())
    gate = threading.Event()
    gateway = Gateway(server.url, installation.gateway_token, gate)
    try:
        server.start()
        gateway.start()

        def not_yet_time_to_kill() -> str:
            if gateway.error:
                pytest.fail(gateway.error)
            waiting = sum(s in ("pending", "sending", "failed") for s, _ in outbox(sessions).values())
            cleared = sum(not a.active for a in hh_alarms(sessions))
            with receiver.lock:  # last, so that the kill follows at once; early in the answer's wait, so it is
                on_wire = sum(time.monotonic() - t < receiver.delay_s / 2 for t in receiver.on_wire.values())  # mid-air
            if on_wire and waiting >= 2 and cleared >= 2:
                return ""
            return f"{cleared} HH alarms cleared, {waiting} messages waiting, {on_wire} on the wire"

        wait_for("HH episodes over and alarm messages queued behind one on the wire", not_yet_time_to_kill, 30)
        server.kill9()
        killed_at = time.monotonic()
        with receiver.lock:
            on_wire_at_kill = set(receiver.on_wire)
            arrived_before_kill = Counter(receiver.arrivals)
        acked_before_kill = list(gateway.acked)
        at_kill = outbox(sessions)  # the dead server's last word: the database does not move until the restart
        alarms_at_kill = hh_alarms(sessions)
        with sessions() as db:
            saved_state = db.scalar(select(func.count()).select_from(DetectorState))
        gate.set()
        assert 0 < len(acked_before_kill) <= GATE < BATCHES, "the kill came in the middle of the stream"
        assert saved_state, "detection had saved its state before the kill"
        waiting = {k for k, (s, _) in at_kill.items() if s != "sent"}
        claimed = {k for k, (s, _) in at_kill.items() if s == "sending"}  # the dead server's lease holds these
        assert claimed, f"the dead server had claimed messages: {at_kill}"
        assert len(waiting) >= 2, f"messages were waiting at the kill: {at_kill}"

        server.start()
        gateway.join(60)
        assert not gateway.is_alive() and not gateway.error, gateway.error or "the stream did not finish"
        assert gateway.acked == list(range(BATCHES))
        batches = gateway.sent

        def not_yet_settled() -> str:
            alarms = hh_alarms(sessions)
            with sessions() as db:
                unbridged = db.scalar(select(func.count()).select_from(AlarmNotification)
                                      .where(AlarmNotification.enqueued_at.is_(None)))
            unsent = [k for k, (s, _) in outbox(sessions).items() if s != "sent" and k not in claimed]
            if (len(alarms) >= sum(len(e) for e in EPISODES.values()) and not any(a.active for a in alarms)
                    and unbridged == 0 and not unsent):
                return ""
            return (f"HH alarms {[(a.tag, 'active' if a.active else 'cleared') for a in alarms]}, "
                    f"{unbridged} alarm notifications not in the outbox, unsent new messages {unsent}")

        wait_for("both episodes of every sensor judged and the restarted server's messages sent", not_yet_settled, 30)

        # (1) every acknowledged reading is in the store, with the value the gateway sent
        admin_token = installation.world.tokens[Role.ADMIN]
        for tag in SENSORS:
            history = stored(server, admin_token, tag, batches[0][0]["ts"], batches[-1][-1]["ts"] + 1)
            for index in gateway.acked:
                for row in batches[index]:
                    if row["tag"] == tag:
                        assert history.get(row["ts"]) == row["value"], (
                            f"{tag} at {row['ts']} (batch {index}, "
                            f"{'acknowledged before the kill' if index in acked_before_kill else 'after'}) "
                            f"is {history.get(row['ts'])}, sent {row['value']}")

        # (2) the rows the dead server had claimed: its lease runs out, and the restarted server sends them
        receiver.delay_s = 0.0
        wait_for("the dead server's claimed messages, sent by the restarted server once its lease ran out",
                 lambda: ", ".join(sorted(k for k, (s, _) in outbox(sessions).items() if s != "sent")),
                 DEFAULT_LEASE.total_seconds() + 30)
    finally:
        gate.set()
        server.stop()

    assert "(resumed)" in server.logs[1].read_text(), "the restarted server resumed detection from its saved state"
    with receiver.lock:
        recovered_s = max(receiver.arrived_at[k] for k in claimed) - killed_at
    assert recovered_s <= DEFAULT_LEASE.total_seconds() + 15, (
        f"the claimed messages went out {recovered_s:.1f} s after the kill, lease {DEFAULT_LEASE}")
    final = outbox(sessions)
    assert all(status == "sent" for status, _ in final.values()), final
    assert waiting <= final.keys(), "every message queued at the kill is still in the outbox"
    delivered = Counter(receiver.arrivals)
    assert receiver.forged == 0
    assert delivered.keys() == final.keys(), "every outbox row reached the receiver, and nothing else did"
    twice = {k for k, n in delivered.items() if n > 1}
    assert all(n <= 2 for n in delivered.values()), delivered
    assert all(k in claimed and arrived_before_kill[k] == 1 for k in twice), (
        f"only a message sent but not yet marked at the kill may arrive twice: {twice}; claimed at the kill "
        f"{claimed}, on the wire {on_wire_at_kill}, arrived before it {dict(arrived_before_kill)}")
    assert on_wire_at_kill <= twice, "the one on the wire was received, never marked sent: it goes out again"
    with sessions() as db:
        notes = {f"alarm:{n.alarm_id}:{n.kind}:{n.step}" for n in db.scalars(select(AlarmNotification))}
    assert notes == {k.split("#")[0] for k in final}, "each alarm message became exactly one outbox row"

    # (3) detection resumed: one alarm per HH episode, the ones raised before the kill not raised again
    alarms = hh_alarms(sessions)
    for tag in SENSORS:
        mine = [a for a in alarms if a.tag == tag]
        raised_at = sorted(int(a.first_at.replace(tzinfo=dt.UTC).timestamp() * 1000) for a in mine)
        episodes = [(batches[a][0]["ts"], batches[b][0]["ts"]) for a, b in EPISODES[tag]]
        assert len(mine) == len(episodes), f"{tag}: {len(mine)} HH alarms for {len(episodes)} episodes: {raised_at}"
        assert all(lo <= t < hi for t, (lo, hi) in zip(raised_at, episodes, strict=True)), (tag, raised_at, episodes)
    assert {a.id for a in alarms_at_kill} <= {a.id for a in alarms}
    assert all(f"alarm:{a.id}:raised:0" in notes for a in alarms), "every HH alarm was pushed"
    print(f"kill after {len(acked_before_kill)}/{BATCHES} acknowledged batches, {len(alarms_at_kill)} HH alarms; "
          f"{len(waiting)} messages waiting ({len(claimed)} claimed, {len(on_wire_at_kill)} on the wire); "
          f"{len(final)} messages in all, {len(twice)} delivered twice; the claimed ones sent {recovered_s:.1f} s "
          f"after the kill (lease {DEFAULT_LEASE.total_seconds():g} s)")
