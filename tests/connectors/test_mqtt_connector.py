"""MQTT ingest against a real Mosquitto: what arrives, what is refused, how workers share, how it recovers."""

from __future__ import annotations

import asyncio
import contextlib
import random
import subprocess
import threading
from collections.abc import AsyncIterator

import orjson
import paho.mqtt.client as mqtt
import pytest
from connector_world import Broker, FakeClock, ListSink, free_port, start_mosquitto, wait_until

from hazardloop.connectors.base import Backoff
from hazardloop.connectors.mqtt import MqttConnector

T0 = 1_718_000_000_000


class Publisher:
    """A plain paho client, as a plant gateway would be."""

    def __init__(self, broker: Broker) -> None:
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def send(self, topic: str, payload: object) -> None:
        body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
        self.client.publish(topic, body, qos=1).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def publisher(broker: Broker):
    pub = Publisher(broker)
    yield pub
    pub.close()


@contextlib.asynccontextmanager
async def running(connector: MqttConnector) -> AsyncIterator[MqttConnector]:
    task = asyncio.create_task(connector.run())
    try:
        await wait_until(lambda: connector.status.connected or task.done())
        yield connector
    finally:
        connector.stop()
        await asyncio.wait_for(task, 5)


def make(sink, broker: Broker, prefix: str, **kw) -> MqttConnector:  # noqa: ANN001
    kw.setdefault("group", f"g{random.randrange(10**9)}")
    return MqttConnector(sink, host=broker.host, port=broker.port, topic=prefix + "/{site}/{tag}", max_age_s=0.05, **kw)


def test_single_batch_and_many_tag_payloads_arrive_exactly(broker, publisher, prefix, sink: ListSink) -> None:
    async def scenario() -> None:
        async with running(make(sink, broker, prefix)) as connector:
            publisher.send(f"{prefix}/s1/GT-101", {"ts": T0, "v": 3.5, "u": "%LEL"})
            publisher.send(f"{prefix}/s1/PT-201", {"ts": [T0, T0 + 1000], "v": [1.0, 1.25]})
            publisher.send(f"{prefix}/s1/bulk", {"ts": "2024-06-10T06:13:20Z", "values": {"TT-1": 20.5, "TT-2": -4}})
            await wait_until(lambda: sink.count == 5)
            assert connector.status.malformed == 0

    asyncio.run(scenario())
    assert sorted(sink.readings) == sorted(
        [
            ("GT-101", T0, 3.5),
            ("PT-201", T0, 1.0),
            ("PT-201", T0 + 1000, 1.25),
            ("TT-1", T0, 20.5),
            ("TT-2", T0, -4.0),
        ]
    )
    units = [u for _, _, _, batch_units in sink.batches if batch_units for u in batch_units]
    assert "%LEL" in units


def test_malformed_payloads_are_counted_and_reported_and_ingest_goes_on(broker, publisher, prefix, sink) -> None:
    async def scenario() -> MqttConnector:
        async with running(make(sink, broker, prefix)) as connector:
            publisher.send(f"{prefix}/s1/GT-101", b"not json")
            publisher.send(f"{prefix}/s1/GT-101", {"ts": 1_718_000_000, "v": 1.0})  # seconds, not ms
            publisher.send(f"{prefix}/s1/GT-101", {"ts": T0, "v": None})
            publisher.send(f"{prefix}/s1/bulk", {"ts": T0, "values": {"A": "high"}})
            publisher.send(f"{prefix}/s1/GT-101", {"ts": T0, "v": 7.0})
            await wait_until(lambda: sink.count == 1 and connector.status.malformed == 4)
            return connector

    connector = asyncio.run(scenario())
    assert sink.readings == [("GT-101", T0, 7.0)]
    reasons = " | ".join(connector.status.recent_malformed)
    assert "not JSON" in reasons and "epoch seconds" in reasons and "'values' must map" in reasons


def test_two_workers_in_one_shared_group_split_the_sensors(broker, publisher, prefix) -> None:
    sinks = [ListSink(), ListSink()]
    group = f"split{random.randrange(10**9)}"

    async def scenario() -> None:
        a, b = (make(s, broker, prefix, group=group) for s in sinks)
        async with running(a), running(b):
            for i in range(100):
                publisher.send(f"{prefix}/s1/T-{i}", {"ts": T0 + i, "v": float(i)})
            await wait_until(lambda: sinks[0].count + sinks[1].count >= 100)
            await asyncio.sleep(0.2)  # would let duplicates show up, if there were any

    asyncio.run(scenario())
    got = sinks[0].readings + sinks[1].readings
    assert sorted(got) == sorted((f"T-{i}", T0 + i, float(i)) for i in range(100))
    assert sinks[0].count > 0 and sinks[1].count > 0


def test_a_refused_batch_is_retried_and_not_lost(broker, publisher, prefix, sink) -> None:
    sink.fail_next = 2

    async def scenario() -> MqttConnector:
        async with running(make(sink, broker, prefix)) as connector:
            publisher.send(f"{prefix}/s1/GT-101", {"ts": T0, "v": 1.0})
            await wait_until(lambda: sink.count == 1)
            return connector

    connector = asyncio.run(scenario())
    assert sink.readings == [("GT-101", T0, 1.0)]
    assert connector.status.write_failures == 2


def test_reconnects_after_the_socket_drops_waiting_the_backoff(broker, publisher, prefix, sink) -> None:
    clock = FakeClock()
    policy = dict(initial_s=0.5, factor=2.0, cap_s=30.0, jitter=0.2)

    async def scenario() -> MqttConnector:
        connector = make(sink, broker, prefix, clock=clock, backoff=Backoff(**policy, rng=random.Random(7)))
        async with running(connector):
            connector.drop_connection()
            await wait_until(lambda: connector.status.reconnects == 1 and connector.status.connected)
            publisher.send(f"{prefix}/s1/GT-101", {"ts": T0, "v": 2.0})
            await wait_until(lambda: sink.count == 1)
        return connector

    connector = asyncio.run(scenario())
    assert clock.sleeps == [Backoff(**policy, rng=random.Random(7)).delay(0)]
    assert 0.4 <= clock.sleeps[0] <= 0.5
    assert "connection lost" in (connector.status.last_error or "") or connector.status.last_error is None


def test_backoff_grows_exponentially_with_jitter_and_is_capped_while_the_broker_is_down(sink) -> None:
    clock = FakeClock()
    port = free_port()  # nothing listens here

    async def scenario() -> MqttConnector:
        connector = MqttConnector(
            sink, port=port, clock=clock, backoff=Backoff(initial_s=1, factor=2, cap_s=5, jitter=0.1)
        )
        task = asyncio.create_task(connector.run())
        await wait_until(lambda: len(clock.sleeps) >= 6)
        connector.stop()
        await asyncio.wait_for(task, 5)
        return connector

    connector = asyncio.run(scenario())
    bases = [1, 2, 4, 5, 5, 5]
    for slept, base in zip(clock.sleeps, bases, strict=False):
        assert base * 0.9 <= slept <= base
    assert not connector.status.connected
    assert "Connection refused" in (connector.status.last_error or "")


def test_survives_a_broker_restart(tmp_path, prefix, sink) -> None:
    port = free_port()
    process = start_mosquitto(tmp_path, port)
    clock = FakeClock()

    async def scenario() -> MqttConnector:
        nonlocal process
        connector = MqttConnector(
            sink, port=port, topic=prefix + "/{tag}", max_age_s=0.05, clock=clock, backoff=Backoff(jitter=0)
        )
        async with running(connector):
            process.terminate()
            process.wait(5)
            await wait_until(lambda: not connector.status.connected and len(clock.sleeps) >= 2)
            process = start_mosquitto(tmp_path, port)
            await wait_until(lambda: connector.status.connected, timeout=10)
            pub = Publisher(Broker("127.0.0.1", port))
            pub.send(f"{prefix}/GT-9", {"ts": T0, "v": 9.0})
            pub.close()
            await wait_until(lambda: sink.count == 1)
        return connector

    try:
        connector = asyncio.run(scenario())
    finally:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(5)
    assert sink.readings == [("GT-9", T0, 9.0)]
    assert clock.sleeps[:2] == [0.5, 1.0]  # reconnect attempts while it was down, without jitter
    assert connector.status.reconnects >= 2


class BlockingSink(ListSink):
    """A store whose first write hangs until released: a commit that takes its time."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.writing = threading.Event()

    def write(self, tags, ts, values, units=None) -> None:  # noqa: ANN001 - the ReadingSink protocol
        self.writing.set()
        assert self.release.wait(10), "never released"
        super().write(tags, ts, values, units)


def test_nothing_is_acknowledged_before_its_commit_and_the_broker_keeps_to_our_window(
    broker, publisher, prefix
) -> None:
    """While one batch commits the connector goes on receiving, but only up to the window it asked for
    (MQTT v5 Receive Maximum, here 30: more than Mosquitto's default of 20 for clients that name none);
    the broker holds the rest because nothing was acknowledged yet."""
    sink = BlockingSink()

    async def scenario() -> MqttConnector:
        async with running(make(sink, broker, prefix, receive_maximum=30)) as connector:
            for i in range(45):
                publisher.send(f"{prefix}/s1/T-{i}", {"ts": T0 + i, "v": float(i)})
            await wait_until(lambda: connector.status.messages == 30)
            assert sink.writing.is_set()  # the first batch is in the store: receiving went on meanwhile
            await asyncio.sleep(0.5)
            assert connector.status.messages == 30, "the broker sent past the window: something was acked early"
            assert sink.count == 0
            sink.release.set()
            await wait_until(lambda: sink.count == 45)
            return connector

    try:
        connector = asyncio.run(scenario())
    finally:
        sink.release.set()
    assert sorted(sink.readings) == sorted((f"T-{i}", T0 + i, float(i)) for i in range(45))
    assert connector.status.readings == 45 and connector.status.write_failures == 0


def test_a_window_smaller_than_max_unacked_is_refused() -> None:
    with pytest.raises(ValueError, match="max_unacked"):
        MqttConnector(ListSink(), receive_maximum=10, max_unacked=20)


def test_a_store_that_keeps_refusing_is_retried_every_max_age_not_hammered(broker, publisher, prefix, sink) -> None:
    sink.fail_next = 1000

    async def scenario() -> MqttConnector:
        connector = MqttConnector(sink, host=broker.host, port=broker.port, topic=prefix + "/{site}/{tag}",
                                  group=f"g{random.randrange(10**9)}", max_age_s=0.1)
        async with running(connector):
            publisher.send(f"{prefix}/s1/GT-101", {"ts": T0, "v": 1.0})
            await wait_until(lambda: connector.status.write_failures >= 1)
            await asyncio.sleep(0.55)
            sink.fail_next = 0
            await wait_until(lambda: sink.count == 1)
        return connector

    connector = asyncio.run(scenario())
    assert 3 <= connector.status.write_failures <= 9  # ~one attempt per 0.1 s over 0.55 s
    assert sink.readings == [("GT-101", T0, 1.0)]
