"""Over a real MQTT broker: the server ingests what gateways publish, and the demo plant publishes like one;
either way the readings are stored and live detection raises the alarm."""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
import pytest
from sqlalchemy import select

import waiting

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "connectors"))

from connector_world import BROKER_HOST, Broker, answers, free_port, start_mosquitto  # noqa: E402

from hazardloop.alarms.models import Alarm, AlarmType  # noqa: E402
from hazardloop.config import Settings  # noqa: E402
from hazardloop.readings.store import now_ms  # noqa: E402

HH = AlarmType.LIMIT_HH.value


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """The real Mosquitto on 1883 if it answers (it does here and in CI), else our own one."""
    if answers(1883):
        yield Broker(BROKER_HOST, 1883)
        return
    port = free_port()
    process = start_mosquitto(tmp_path_factory.mktemp("mqtt"), port)
    yield Broker(BROKER_HOST, port, process)
    process.terminate()
    process.wait(5)


@pytest.fixture
def mqtt_settings(database_url: str, tmp_path: Path, broker: Broker) -> Settings:
    """A server that ingests from the broker under a topic root of its own (tests never see each other)."""
    root = f"hltest/{uuid.uuid4().hex[:10]}"
    return Settings(data_dir=tmp_path / "var", database_url=database_url, secret_key="test-secret",
                    scheduler_enabled=False, demo_stream=False, mqtt_url=f"mqtt://{broker.host}:{broker.port}",
                    mqtt_topic=root + "/{site}/{tag}", mqtt_group=f"g{uuid.uuid4().hex[:8]}")


wait_for = partial(waiting.wait_for, timeout=60.0, interval=0.2)


def hh_alarms(db, tag: str) -> list[Alarm]:  # noqa: ANN001
    db.expire_all()
    return list(db.scalars(select(Alarm).where(Alarm.tag == tag, Alarm.type == HH)))


def serve(settings: Settings):  # noqa: ANN201
    from fastapi.testclient import TestClient

    from hazardloop.web.app import create_app

    return TestClient(create_app(settings))


def publisher(broker: Broker) -> mqtt.Client:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect(broker.host, broker.port)
    client.loop_start()
    return client


def test_readings_published_by_a_gateway_are_stored_and_raise_an_alarm(db, world, broker, mqtt_settings) -> None:  # noqa: ANN001
    start = now_ms() - 60_000
    root = mqtt_settings.mqtt_topic.split("/{site}")[0]
    with serve(mqtt_settings) as client:
        connector = client.app.state.mqtt_connector
        wait_for(lambda: connector.status.connected, timeout=20)
        gateway = publisher(broker)
        try:
            for i in range(30):  # many tags per message, one message a second, as a gateway sends
                payload = {"ts": start + i * 1000, "values": {"GT-101": 5.0 if i < 10 else 60.0, "GT-201": 7.0}}
                gateway.publish(f"{root}/S1/all", orjson.dumps(payload), qos=1).wait_for_publish(5)
            store = client.app.state.readings_store
            wait_for(lambda: store.count() == 60)
            [alarm] = wait_for(lambda: hh_alarms(db, "GT-101"))
        finally:
            gateway.loop_stop()
            gateway.disconnect()
    assert alarm.first_at.timestamp() * 1000 == start + 15_000  # first HH reading at 10 s + 5 s on-delay
    assert hh_alarms(db, "GT-201") == []


def test_the_demo_publishes_over_mqtt_and_an_injected_fault_raises_an_alarm(db, tmp_path, mqtt_settings) -> None:  # noqa: ANN001
    from hazardloop.demo.build import build_demo

    build_demo(db, data_dir=tmp_path, seed=2, days=1, hazards_per_day=0)
    settings = mqtt_settings.model_copy(update={"demo_stream": True})
    with serve(settings) as client:
        demo, store = client.app.state.demo_stream, client.app.state.readings_store
        assert demo is not None and demo.publisher is not None  # the demo publishes; it writes no store itself
        wait_for(lambda: store.count() > 50)  # back through the server's MQTT ingest
        demo.inject("GT-101", 80.0, rows=30)  # a gas release on the tank farm: above HH 50 for 30 s
        [alarm] = wait_for(lambda: hh_alarms(db, "GT-101"))
    assert alarm.peak == 80.0


def test_two_server_processes_on_one_postgresql_run_one_mqtt_client_and_hand_it_over(  # noqa: ANN001
        db, world, broker, mqtt_settings, tmp_path) -> None:
    """Two uvicorn workers of one server share its MQTT client id: one holds it, the other stands by
    (before, both connected and the broker kept taking the session from one to give it to the other)."""
    if not mqtt_settings.resolved_database_url.startswith("postgres"):
        pytest.skip("the processes meet in PostgreSQL (run with HAZARDLOOP_TEST_DATABASE_URL)")
    one = mqtt_settings.model_copy(update={"mqtt_client_id": f"hltest-{uuid.uuid4().hex[:10]}"})
    two = one.model_copy(update={"data_dir": tmp_path / "var-2"})  # a store of its own: who ingested what
    root = one.mqtt_topic.split("/{site}")[0]
    start = now_ms() - 60_000

    def publish(seconds: range) -> None:
        for i in seconds:
            payload = {"ts": start + i * 1000, "values": {"GT-101": 5.0}}
            gateway.publish(f"{root}/S1/all", orjson.dumps(payload), qos=1).wait_for_publish(5)

    gateway = publisher(broker)
    first_server, second_server = serve(one), serve(two)
    first = first_server.__enter__()
    first_running = True
    try:
        holder = first.app.state.mqtt_connector
        wait_for(lambda: holder.status.connected, timeout=20)
        second = second_server.__enter__()
        try:
            publish(range(10))
            wait_for(lambda: first.app.state.readings_store.count() == 10)
            time.sleep(5)  # two lock checks of the second process
            standby = second.app.state.mqtt_connector
            assert holder.status.connected and holder.status.reconnects == 0  # never kicked off the broker
            assert not standby.status.connected and standby.status.messages == 0
            assert second.app.state.readings_store.count() == 0
            first_server.__exit__(None, None, None)  # the holder stops; the standby takes the client id over
            first_running = False
            wait_for(lambda: second.app.state.mqtt_connector.status.connected, timeout=20)
            publish(range(10, 20))
            wait_for(lambda: second.app.state.readings_store.count() == 10)
        finally:
            second_server.__exit__(None, None, None)
    finally:
        if first_running:
            first_server.__exit__(None, None, None)
        gateway.loop_stop()
        gateway.disconnect()
