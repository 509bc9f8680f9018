"""Modbus TCP polling: read register maps on a period and turn them into readings.

Modbus has no push and no timestamps, so the poll time is the reading time. Points of one device
and table are read in as few requests as the protocol allows (125 registers per request,
Modbus Application Protocol v1.1b3 §6.3), because a PLC answers one request at a time and a
poll of 40 points as 40 requests would take longer than the period on a slow gateway.

Register map, per tag: device id (the old "unit"/"slave" id), 0-based register address, data
type, and a linear scale: ``value = raw * scale + offset`` — how 4–20 mA cards and
fixed-point PLC registers are documented on datasheets. FLOAT32/INT32/UINT32 take two
registers, high word first unless ``word_order = "little"`` (many Schneider and Siemens
gateways swap words).
"""

from __future__ import annotations

import struct
from collections import defaultdict
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from hazardloop.connectors.base import (
    Backoff,
    Batcher,
    Clock,
    ConnectorStatus,
    ReadingSink,
    Stopper,
    SystemClock,
    reconnect_forever,
)

MAX_REGISTERS_PER_READ = 125


class DataType(StrEnum):
    INT16 = "int16"
    UINT16 = "uint16"
    INT32 = "int32"
    UINT32 = "uint32"
    FLOAT32 = "float32"

    @property
    def width(self) -> int:
        return 1 if self in (DataType.INT16, DataType.UINT16) else 2

    @property
    def struct_code(self) -> str:
        return {"int16": "h", "uint16": "H", "int32": "i", "uint32": "I", "float32": "f"}[self.value]


@dataclass(frozen=True)
class RegisterPoint:
    """Where one tag lives in a device and how to turn its registers into engineering units."""

    tag: str
    address: int
    datatype: DataType = DataType.FLOAT32
    device_id: int = 1
    scale: float = 1.0
    offset: float = 0.0
    table: str = "holding"  # or "input"
    word_order: str = "big"
    unit: str | None = None

    def decode(self, registers: list[int]) -> float:
        words = registers if self.word_order == "big" else registers[::-1]
        raw = struct.unpack(">" + self.datatype.struct_code, struct.pack(f">{len(words)}H", *words))[0]
        return raw * self.scale + self.offset


@dataclass(frozen=True)
class ReadBlock:
    device_id: int
    table: str
    start: int
    count: int
    points: tuple[RegisterPoint, ...]


def plan_reads(points: list[RegisterPoint]) -> list[ReadBlock]:
    """Merge points into the fewest requests: same device and table, within 125 registers."""
    groups: dict[tuple[int, str], list[RegisterPoint]] = defaultdict(list)
    for point in points:
        groups[(point.device_id, point.table)].append(point)
    blocks: list[ReadBlock] = []
    for (device_id, table), members in sorted(groups.items()):
        members.sort(key=lambda p: p.address)
        current: list[RegisterPoint] = []
        for point in members:
            end = point.address + point.datatype.width
            if current and end - current[0].address > MAX_REGISTERS_PER_READ:
                blocks.append(_block(device_id, table, current))
                current = []
            current.append(point)
        blocks.append(_block(device_id, table, current))
    return blocks


def _block(device_id: int, table: str, points: list[RegisterPoint]) -> ReadBlock:
    start = points[0].address
    end = max(p.address + p.datatype.width for p in points)
    return ReadBlock(device_id, table, start, end - start, tuple(points))


class ModbusConnector:
    """Polls `points` from a Modbus TCP server every `period_s`, reconnecting with back-off."""

    kind = "modbus"

    def __init__(
        self,
        sink: ReadingSink,
        *,
        host: str,
        points: list[RegisterPoint],
        port: int = 502,
        name: str = "modbus",
        period_s: float = 1.0,
        timeout_s: float = 2.0,
        max_readings: int = 5000,
        max_age_s: float = 0.0,  # pollers flush every cycle: a poll is already a batch
        backoff: Backoff | None = None,
        clock: Clock | None = None,
    ) -> None:
        if not points:
            raise ValueError("a Modbus connector needs at least one register point")
        self.host, self.port, self.period_s, self.timeout_s = host, port, period_s, timeout_s
        self.points = list(points)
        self.blocks = plan_reads(self.points)
        self.backoff = backoff or Backoff()
        self.clock = clock or SystemClock()
        self.status = ConnectorStatus(name=name, kind=self.kind)
        self.batcher = Batcher(sink, self.status, max_readings=max_readings, max_age_s=max_age_s, clock=self.clock)
        self._stopper = Stopper()
        self._client: AsyncModbusTcpClient | None = None

    def stop(self) -> None:
        self._stopper.set()

    async def run(self) -> None:
        await reconnect_forever(self, self._session, (OSError, ModbusException, ConnectionError),
                                after=self.batcher.flush)

    def drop_connection(self) -> None:
        """Close the client's transport (tests use it to prove reconnects)."""
        if self._client is not None:
            self._client.close()

    async def _session(self) -> bool:
        # reconnect_delay=0 turns pymodbus's own reconnect off; ours has jitter and shows in the status.
        client = AsyncModbusTcpClient(self.host, port=self.port, timeout=self.timeout_s, retries=0, reconnect_delay=0)
        self._client = client
        try:
            if not await client.connect():
                raise ConnectionError(f"cannot connect to {self.host}:{self.port}")
            self.status.mark_connected(self.clock.time())
            real = SystemClock()
            next_poll = real.monotonic()
            while not self._stopper.is_set():
                if not client.connected:
                    raise ConnectionError("connection closed")
                await self._poll(client)
                if self.batcher.due():
                    self.batcher.flush()  # a refused write stays pending and is retried after the next poll
                next_poll += self.period_s
                await self._stopper.sleep(real, max(0.0, next_poll - real.monotonic()))
            return True
        finally:
            self._client = None
            client.close()

    async def _poll(self, client: AsyncModbusTcpClient) -> None:
        now_ms = int(self.clock.time() * 1000)
        tags: list[str] = []
        values: list[float] = []
        units: list[str | None] = []
        for block in self.blocks:
            read = client.read_holding_registers if block.table == "holding" else client.read_input_registers
            response = await read(block.start, count=block.count, device_id=block.device_id)
            self.status.messages += 1
            if response.isError():  # the device answered with an exception code: a map problem, not a link problem
                for point in block.points:
                    self.status.note_malformed(point.tag, f"device {block.device_id} refused the read: {response}")
                continue
            registers = response.registers
            for point in block.points:
                at = point.address - block.start
                tags.append(point.tag)
                values.append(point.decode(registers[at : at + point.datatype.width]))
                units.append(point.unit)
        self.status.last_message_at = self.clock.time()
        if tags:
            any_unit = any(u is not None for u in units)
            self.batcher.add(
                tags,
                np.full(len(tags), now_ms, dtype=np.int64),
                np.asarray(values, dtype=np.float64),
                units if any_unit else None,
            )
