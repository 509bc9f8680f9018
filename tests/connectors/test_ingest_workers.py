"""Two real ingest workers (`hazardloop connectors run`) share a plant through an MQTT shared subscription
and a PostgreSQL reading store: every reading the broker acknowledged is stored exactly once, even when
one worker is killed with SIGKILL in the middle of the stream."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
import psycopg
import pytest
from connector_world import Broker
from sqlalchemy.orm import Session

from hazardloop.plant.models import Sensor
from hazardloop.readings.pgstore import PgReadingStore, libpq_url
from hazardloop.readings.store import ReadingStore, now_ms

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "foundation"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "readings"))

from readings_pg import PG_URL, pg_answers  # noqa: E402
from world import World, build_world  # noqa: E402

pytestmark = pytest.mark.db

TAGS = [f"XT-{i:03d}" for i in range(120)]
PER_MESSAGE = 10  # readings per message (one tag, ten instants)


@pytest.fixture
def readings_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test's reading store (workers open the default table in it)."""
    if not pg_answers():
        pytest.skip(f"no PostgreSQL answers at {PG_URL}")
    name = f"hl_readings_{uuid.uuid4().hex[:10]}"
    admin = libpq_url(PG_URL)
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    url = PG_URL.rsplit("/", 1)[0] + f"/{name}"
    yield url
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def plant(db: Session) -> World:
    """The foundation world plus 120 transmitters, each 0..100 %LEL."""
    world = build_world(db)
    db.add_all(
        Sensor(tag=tag, name=tag, kind="combustible_gas", unit="%LEL", area_id=world.area_a, range_min=0, range_max=100)
        for tag in TAGS
    )
    db.commit()
    return world


class Worker:
    """One `hazardloop connectors run` process; its stdout lines are collected by a thread."""

    def __init__(self, name: str, config: Path, env: dict[str, str], status_every: float) -> None:
        self.name = name
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            # `hazardloop connectors run`, through the sub-app itself: skips importing the rest of the CLI
            [sys.executable, "-c", "from hazardloop.connectors.cli import connectors_app; connectors_app()", "run",
             str(config), "--duration", "60", "--status-every", str(status_every)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line.rstrip())

    def wait_connected(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not any(f"mqtt {self.name}: connected" in line for line in self.lines):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"worker {self.name} never subscribed:\n" + "\n".join(self.lines))
            time.sleep(0.05)

    def readings(self) -> int:
        """From the summary a worker prints when it stops: how many readings it delivered to the store."""
        for line in self.lines:
            if line.startswith(f"mqtt {self.name}: ") and " readings from " in line:
                return int(line.split(": ", 1)[1].split()[0])
        raise AssertionError(f"no summary from {self.name}:\n" + "\n".join(self.lines))

    def store_row(self) -> tuple[int, int]:
        """(stored, rejected) from the newest `store` row of the status table the worker prints."""
        for line in reversed(self.lines):
            cells = [c.strip() for c in line.split("│")]
            if len(cells) > 7 and cells[1] == "store" and cells[2] == "store":
                return int(cells[5]), int(cells[6])
        return (0, 0)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        time.sleep(0.1)  # let the reader thread take the last lines


@pytest.fixture
def launch(tmp_path: Path, broker: Broker, prefix: str, database_url: str):  # noqa: ANN201
    """Starts workers of one shared-subscription group into the store `readings_url` names ("" = DuckDB)."""
    group = f"g{uuid.uuid4().hex[:8]}"
    workers: list[Worker] = []

    def start(name: str, readings_url: str, *, session_expiry_s: int = 0, status_every: float = 0) -> Worker:
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "HAZARDLOOP_DATABASE_URL": database_url,
            "HAZARDLOOP_READINGS_URL": readings_url,
            "HAZARDLOOP_DATA_DIR": str(tmp_path / "var"),
            "HAZARDLOOP_CONFIG": str(tmp_path / "none.toml"),
            "COLUMNS": "200",
        }
        config = tmp_path / f"{name}.toml"
        config.write_text(
            '[sink]\nkind = "store"\nrefresh_s = 1.0\n\n'
            f'[[mqtt]]\nname = "{name}"\nhost = "{broker.host}"\nport = {broker.port}\n'
            f'topic = "{prefix}/{{tag}}"\ngroup = "{group}"\nqos = 1\n'
            f'client_id = "{group}-{name}"\nsession_expiry_s = {session_expiry_s}\n'
            "max_age_s = 0.05\nbackoff = { initial_s = 0.1, cap_s = 0.5 }\n"
        )
        worker = Worker(name, config, env, status_every)
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()


@pytest.fixture
def start_worker(launch, readings_url: str):  # noqa: ANN001, ANN201
    """Workers into this test's PostgreSQL reading store."""
    return lambda name, **kw: launch(name, readings_url, **kw)


def _messages(start_ms: int, rounds: int) -> list[tuple[str, bytes, list[tuple[str, int, float]]]]:
    """`rounds` messages per tag, PER_MESSAGE readings each; values are a function of (tag, ts)."""
    out = []
    for r in range(rounds):
        for k, tag in enumerate(TAGS):
            ts = [start_ms + (r * PER_MESSAGE + j) * 1000 for j in range(PER_MESSAGE)]
            values = [float((k * 7 + t // 1000) % 100) for t in ts]
            out.append((tag, orjson.dumps({"ts": ts, "v": values, "u": "%LEL"}), list(zip([tag] * len(ts), ts, values,
                                                                                            strict=True))))
    return out


def _publish(broker: Broker, prefix: str, messages: list, *, pace_s: float = 0.0) -> None:
    """Publish at QoS 1 and wait for every PUBACK: from then on the broker is responsible for them."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}",
                         protocol=mqtt.MQTTv5)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        infos = []
        for tag, payload, _ in messages:
            infos.append(client.publish(f"{prefix}/{tag}", payload, qos=1))
            if pace_s:
                time.sleep(pace_s)
        for info in infos:
            info.wait_for_publish(10)
            assert info.is_published()
    finally:
        client.disconnect()
        client.loop_stop()


def _stored(readings_url: str, ids: list[int]) -> dict[tuple[int, int], float]:
    with PgReadingStore(readings_url) as store:
        window = store.window(ids, 0, 2**62)
    return {(int(s), int(t)): float(v) for s, t, v in zip(*window, strict=True)}


def _wait_for_count(readings_url: str, expected: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    with PgReadingStore(readings_url) as store:
        while store.count() < expected and time.monotonic() < deadline:
            time.sleep(0.1)


def _check_exactly_once(readings_url: str, db: Session, sent: list[tuple[str, int, float]]) -> None:
    ids = {s.tag: s.id for s in db.query(Sensor).filter(Sensor.tag.in_(TAGS))}
    expected = {(ids[tag], ts): value for tag, ts, value in sent}
    stored = _stored(readings_url, list(ids.values()))
    missing = expected.keys() - stored.keys()
    assert not missing, f"{len(missing)} acknowledged readings missing, e.g. {sorted(missing)[:3]}"
    assert len(stored) == len(expected)  # nothing extra; the key makes each one stored once
    assert all(stored[key] == value for key, value in expected.items())


def test_two_workers_split_the_plant_and_store_every_reading_exactly_once(
    plant: World, db: Session, broker: Broker, prefix: str, readings_url: str, start_worker
) -> None:  # noqa: ANN001
    workers = [start_worker("w1"), start_worker("w2")]
    for worker in workers:
        worker.wait_connected()
    messages = _messages(now_ms() - 3_600_000, rounds=4)  # 480 messages, 4,800 readings, 120 tags
    _publish(broker, prefix, messages)
    sent = [reading for _, _, readings in messages for reading in readings]
    _wait_for_count(readings_url, len(sent))
    for worker in workers:
        worker.stop()
    _check_exactly_once(readings_url, db, sent)
    shares = [worker.readings() for worker in workers]
    assert all(share > 0 for share in shares), f"one worker took everything: {shares}"
    assert sum(shares) >= len(sent)


def test_a_worker_killed_mid_stream_loses_no_acknowledged_reading(
    plant: World, db: Session, broker: Broker, prefix: str, readings_url: str, start_worker
) -> None:  # noqa: ANN001
    """kill -9 while messages are in flight; the supervisor restarts it and the broker redelivers its session."""
    first, second = start_worker("w1", session_expiry_s=60), start_worker("w2", session_expiry_s=60)
    first.wait_connected()
    second.wait_connected()
    messages = _messages(now_ms() - 3_600_000, rounds=6)  # 720 messages, 7,200 readings
    publisher = threading.Thread(target=_publish, args=(broker, prefix, messages), kwargs={"pace_s": 0.002})
    publisher.start()
    time.sleep(0.4)  # mid-stream
    first.process.send_signal(signal.SIGKILL)
    first.process.wait(5)
    assert first.process.returncode == -signal.SIGKILL
    restarted = start_worker("w1", session_expiry_s=60)  # same client id: resumes the session
    restarted.wait_connected()
    publisher.join(30)
    assert not publisher.is_alive()
    sent = [reading for _, _, readings in messages for reading in readings]
    _wait_for_count(readings_url, len(sent))
    for worker in (second, restarted):
        worker.stop()
    _check_exactly_once(readings_url, db, sent)


def test_one_worker_stores_into_the_default_duckdb_store_and_counts_rejects(
    plant: World, db: Session, broker: Broker, prefix: str, launch, tmp_path: Path
) -> None:  # noqa: ANN001
    """No readings_url: the worker writes data_dir/readings.duckdb, as the web app would read it."""
    worker = launch("solo", "", status_every=0.2)
    worker.wait_connected()
    messages = _messages(now_ms() - 3_600_000, rounds=1)
    bad = [("NOPE-1", orjson.dumps({"ts": [now_ms() - 1000], "v": [1.0]}), [])]
    _publish(broker, prefix, messages + bad)
    sent = [reading for _, _, readings in messages for reading in readings]
    deadline = time.monotonic() + 15
    while worker.store_row() < (len(sent), 1) and time.monotonic() < deadline:
        time.sleep(0.1)
    worker.stop()
    with ReadingStore(tmp_path / "var" / "readings.duckdb") as store:
        ids = {s.tag: s.id for s in db.query(Sensor).filter(Sensor.tag.in_(TAGS))}
        window = store.window(list(ids.values()), 0, 2**62)
        assert len(window.ts) == len(sent) == store.count()
    assert worker.store_row() == (len(sent), 1), "\n".join(worker.lines[-20:])  # stored, rejected
