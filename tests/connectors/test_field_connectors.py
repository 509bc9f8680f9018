"""OPC UA subscriptions and Modbus polling against local servers, and the status view over them."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future

import pytest
from asyncua import Server, ua
from connector_world import FakeClock, ListSink, free_port, wait_until
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType as SimType
from pymodbus.simulator import SimData, SimDevice

from hazardloop.connectors.base import Backoff
from hazardloop.connectors.modbus import DataType, ModbusConnector, RegisterPoint, plan_reads
from hazardloop.connectors.opcua import OpcUaConnector
from hazardloop.connectors.status import StatusRegistry, silent_sensors


class LoopThread:
    """An event loop in a thread, so servers outlive each test's asyncio.run() (session fixtures)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def call(self, coro, timeout: float = 15):  # noqa: ANN001, ANN201
        future: Future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout)

    def close(self) -> None:
        self.call(self._cancel_rest())  # servers leave session tasks behind; end them quietly
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


    @staticmethod
    async def _cancel_rest() -> None:
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class OpcUaPlant:
    def __init__(self) -> None:
        self.runner = LoopThread()
        self.port = free_port()
        self.url = f"opc.tcp://127.0.0.1:{self.port}/hazardloop/"
        self.server = Server()
        self.vars: dict[str, object] = {}
        self.runner.call(self._start())

    async def _start(self) -> None:
        await self.server.init()  # 2-3 s: the standard address space; hence one server per session
        self.server.set_endpoint(self.url)
        ns = await self.server.register_namespace("urn:hazardloop:test")
        plant = await self.server.nodes.objects.add_object(ns, "TankFarm")
        for tag, start in (("GT-101", 0.0), ("TT-301", 20.0)):
            self.vars[tag] = await plant.add_variable(ua.NodeId(tag, ns), tag, start)
        self.ns = ns
        await self.server.start()

    def node_id(self, tag: str) -> str:
        return self.vars[tag].nodeid.to_string()

    def write(self, tag: str, value: float) -> None:
        self.runner.call(self.vars[tag].write_value(value))

    def stop(self) -> None:
        self.runner.call(self.server.stop())
        self.runner.close()


@pytest.fixture(scope="session")
def opcua_plant() -> Iterator[OpcUaPlant]:
    plant = OpcUaPlant()
    yield plant
    plant.stop()


class ModbusPlc:
    """A PLC with FLOAT32 gas reading at 10-11 and INT16 level (0.1 % per count) at 20."""

    def __init__(self) -> None:
        self.runner = LoopThread()
        self.port = free_port()
        device = SimDevice(
            id=1,
            simdata=[
                SimData(0, count=10, datatype=SimType.REGISTERS),
                SimData(10, values=[21.5], datatype=SimType.FLOAT32),
                SimData(12, count=8, datatype=SimType.REGISTERS),
                SimData(20, values=[655], datatype=SimType.INT16),
            ],
        )
        self.server = self.runner.call(self._start(device))
        deadline = time.monotonic() + 5
        while not self.runner.call(self._listening()):
            assert time.monotonic() < deadline, "modbus server did not start"
            time.sleep(0.02)

    async def _start(self, device: SimDevice) -> ModbusTcpServer:
        server = ModbusTcpServer(device, address=("127.0.0.1", self.port))  # needs the running loop
        asyncio.get_running_loop().create_task(server.serve_forever())
        return server

    async def _listening(self) -> bool:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", self.port)
        except OSError:
            return False
        writer.close()
        return True

    def stop(self) -> None:
        self.runner.call(self.server.shutdown())
        self.runner.close()


@pytest.fixture(scope="session")
def plc() -> Iterator[ModbusPlc]:
    server = ModbusPlc()
    yield server
    server.stop()


async def _run_until(connector, predicate, timeout: float = 8.0) -> None:  # noqa: ANN001
    task = asyncio.create_task(connector.run())
    try:
        await wait_until(predicate, timeout)
    finally:
        connector.stop()
        await asyncio.wait_for(task, 5)


def test_opcua_server_side_changes_arrive_as_readings_with_source_time(opcua_plant: OpcUaPlant) -> None:
    sink = ListSink()
    connector = OpcUaConnector(
        sink,
        url=opcua_plant.url,
        nodes={"GT-101": opcua_plant.node_id("GT-101"), "TT-301": opcua_plant.node_id("TT-301")},
        units={"GT-101": "%LEL"},
        publishing_interval_ms=50,
        max_age_s=0.05,
    )

    async def scenario() -> None:
        task = asyncio.create_task(connector.run())
        await wait_until(lambda: connector.status.connected, 8)
        await wait_until(lambda: {t for t, _, _ in sink.readings} == {"GT-101", "TT-301"})  # initial values
        await asyncio.to_thread(opcua_plant.write, "GT-101", 12.5)
        await asyncio.to_thread(opcua_plant.write, "TT-301", 31.25)
        await wait_until(lambda: ("GT-101", 12.5) in [(t, v) for t, _, v in sink.readings])
        await wait_until(lambda: ("TT-301", 31.25) in [(t, v) for t, _, v in sink.readings])
        connector.stop()
        await asyncio.wait_for(task, 5)

    asyncio.run(scenario())
    now_ms = time.time() * 1000
    assert all(abs(ts - now_ms) < 60_000 for _, ts, _ in sink.readings)  # the server's timestamps, in ms
    assert connector.status.last_seen.keys() == {"GT-101", "TT-301"}
    assert connector.status.malformed == 0


def test_opcua_reconnects_after_the_transport_drops(opcua_plant: OpcUaPlant) -> None:
    sink = ListSink()
    clock = FakeClock()
    connector = OpcUaConnector(
        sink,
        url=opcua_plant.url,
        nodes={"GT-101": opcua_plant.node_id("GT-101")},
        publishing_interval_ms=50,
        watchdog_s=0.2,
        max_age_s=0.05,
        clock=clock,
        backoff=Backoff(jitter=0),
    )

    async def scenario() -> None:
        task = asyncio.create_task(connector.run())
        await wait_until(lambda: connector.status.connected and sink.count >= 1, 8)
        await connector.drop_connection()
        await wait_until(lambda: connector.status.reconnects == 1 and connector.status.connected, 8)
        await asyncio.to_thread(opcua_plant.write, "GT-101", 99.0)
        await wait_until(lambda: ("GT-101", 99.0) in [(t, v) for t, _, v in sink.readings])
        connector.stop()
        await asyncio.wait_for(task, 5)

    asyncio.run(scenario())
    assert clock.sleeps == [0.5]


def test_plan_reads_merges_points_into_few_requests() -> None:
    points = [
        RegisterPoint("A", 0),
        RegisterPoint("B", 2, DataType.INT16),
        RegisterPoint("C", 200),
        RegisterPoint("D", 0, device_id=2),
    ]
    blocks = plan_reads(points)
    assert [(b.device_id, b.start, b.count) for b in blocks] == [(1, 0, 3), (1, 200, 2), (2, 0, 2)]


def test_modbus_polled_values_arrive_with_scale_applied(plc: ModbusPlc) -> None:
    sink = ListSink()
    connector = ModbusConnector(
        sink,
        host="127.0.0.1",
        port=plc.port,
        period_s=0.05,
        points=[
            RegisterPoint("GT-101", 10, DataType.FLOAT32, scale=2.0, offset=1.0, unit="%LEL"),
            RegisterPoint("LT-102", 20, DataType.INT16, scale=0.1, unit="%"),
        ],
    )
    asyncio.run(_run_until(connector, lambda: sink.count >= 4))
    values = {t: v for t, _, v in sink.readings}
    assert values["GT-101"] == pytest.approx(21.5 * 2 + 1)
    assert values["LT-102"] == pytest.approx(65.5)
    assert connector.status.reconnects == 0 and connector.status.malformed == 0


def test_modbus_retries_the_write_when_the_sink_refuses(plc: ModbusPlc) -> None:
    sink = ListSink()
    sink.fail_next = 2
    connector = ModbusConnector(sink, host="127.0.0.1", port=plc.port, period_s=0.05, points=[RegisterPoint("X", 10)])
    asyncio.run(_run_until(connector, lambda: sink.count >= 3))
    # the first two polls were refused and kept: the first stored batch carries all three polls
    assert len(sink.batches[0][0]) == 3 and connector.status.write_failures == 2


def test_modbus_reconnects_with_backoff_when_the_plc_is_unreachable() -> None:
    clock = FakeClock()
    connector = ModbusConnector(
        ListSink(),
        host="127.0.0.1",
        port=free_port(),
        points=[RegisterPoint("X", 0)],
        clock=clock,
        backoff=Backoff(initial_s=0.1, cap_s=0.4, jitter=0),
    )
    asyncio.run(_run_until(connector, lambda: len(clock.sleeps) >= 4))
    assert clock.sleeps[:4] == [0.1, 0.2, 0.4, 0.4]
    assert not connector.status.connected and connector.status.last_error


def test_status_view_shows_connected_last_seen_and_flags_the_silent_tag(plc: ModbusPlc) -> None:
    sink = ListSink()
    registry = StatusRegistry()
    connector = ModbusConnector(
        sink, host="127.0.0.1", port=plc.port, period_s=0.05, points=[RegisterPoint("GT-1", 10)]
    )
    registry.register(connector)
    seen: list[dict] = []

    async def scenario() -> None:
        task = asyncio.create_task(connector.run())
        await wait_until(lambda: sink.count >= 1)
        seen.extend(registry.snapshot())
        connector.stop()
        await asyncio.wait_for(task, 5)

    asyncio.run(scenario())
    (row,) = seen
    assert row["connected"] is True and row["kind"] == "modbus" and "GT-1" in row["last_seen"]
    now = time.time()
    silent = silent_sensors({"GT-1": 1.0, "GT-2": 1.0}, now, registry=registry)
    assert [s.tag for s in silent] == ["GT-2"]  # never seen
    later = silent_sensors({"GT-1": 1.0, "GT-2": 1.0}, now + 10, registry=registry)
    assert {s.tag for s in later} == {"GT-1", "GT-2"}
    assert next(s for s in later if s.tag == "GT-1").silent_for_s >= 9
