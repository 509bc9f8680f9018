"""The connector file: one TOML file that says which sources to read and where readings go.

Example (every key shown; see README.md beside this file for each one's meaning)::

    [sink]
    kind = "store"                    # the reading store of the settings (readings_url); or "csv" + folder
    refresh_s = 5.0                   # reload the tag → sensor map at most this often

    [[mqtt]]
    name = "plant-broker"
    host = "127.0.0.1"
    port = 1883
    topic = "plant/{area}/{tag}"      # {tag} names the sensor; other {placeholders} match any level
    group = "hazardloop"              # MQTT v5 shared subscription $share/<group>/...; "" to turn off
    qos = 1
    client_id = "worker-1"            # with session_expiry_s: a restarted worker resumes its session
    session_expiry_s = 300

    [[opcua]]
    name = "dcs"
    url = "opc.tcp://10.0.0.5:4840"
    publishing_interval_ms = 500
    nodes = { "TT-301" = "ns=2;s=TT-301.PV", "PT-201" = "ns=2;i=1005" }

    [[modbus]]
    name = "tank-farm-plc"
    host = "10.0.0.7"
    port = 502
    period_s = 1.0
    [modbus.registers]
    "GT-101" = { device_id = 1, address = 0, type = "float32" }
    "LT-102" = { device_id = 1, address = 2, type = "int16", scale = 0.1, unit = "%" }

    [expected]                        # optional: tag → sample period (s), for the silent-sensor check
    "GT-101" = 1.0

Parsed with pydantic (unknown keys refused) so a typo names the key, not a KeyError at 3 a.m.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hazardloop.connectors.base import Backoff, ReadingSink
from hazardloop.connectors.modbus import DataType, ModbusConnector, RegisterPoint
from hazardloop.connectors.mqtt import MqttConnector, TopicTemplate
from hazardloop.connectors.opcua import OpcUaConnector
from hazardloop.connectors.sinks import CsvSink


class ConnectorConfigError(ValueError):
    """The connector file is unreadable or wrong; the message names the file and the key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BackoffConfig(_Strict):
    initial_s: float = Field(default=0.5, gt=0)
    factor: float = Field(default=2.0, ge=1)
    cap_s: float = Field(default=30.0, gt=0)
    jitter: float = Field(default=0.2, ge=0, le=1)

    def build(self) -> Backoff:
        return Backoff(initial_s=self.initial_s, factor=self.factor, cap_s=self.cap_s, jitter=self.jitter)


class _Source(_Strict):
    name: str = Field(min_length=1)
    max_readings: int = Field(default=5000, ge=1)
    max_age_s: float = Field(default=0.2, ge=0)
    backoff: BackoffConfig = BackoffConfig()


class MqttConfig(_Source):
    host: str = "127.0.0.1"
    port: int = 1883
    topic: str = "hazardloop/{site}/{tag}"
    group: str = "hazardloop"
    qos: Literal[0, 1] = 1
    username: str | None = None
    password: str | None = None
    keepalive_s: int = Field(default=30, ge=5)
    receive_maximum: int = Field(default=200, ge=1, le=65535)  # MQTT v5 window: unacked messages the broker may send
    max_unacked: int | None = Field(default=None, ge=1)  # hand a batch to the store at this many; None: half the window
    client_id: str | None = None  # fixed id: needed with session_expiry_s, so a restarted worker resumes
    session_expiry_s: int = Field(default=0, ge=0)  # >0: the broker keeps unacknowledged messages for us

    @field_validator("topic")
    @classmethod
    def _valid_template(cls, value: str) -> str:
        TopicTemplate(value)
        return value

    @model_validator(mode="after")
    def _within_window(self) -> MqttConfig:
        if self.max_unacked is not None and self.max_unacked > self.receive_maximum:
            raise ValueError(
                f"max_unacked ({self.max_unacked}) must not exceed receive_maximum ({self.receive_maximum}): "
                "the broker sends no more unacknowledged messages than that"
            )
        return self

    def build(self, sink: ReadingSink) -> MqttConnector:
        return MqttConnector(
            sink,
            name=self.name,
            host=self.host,
            port=self.port,
            topic=self.topic,
            group=self.group or None,
            qos=self.qos,
            username=self.username,
            password=self.password,
            keepalive_s=self.keepalive_s,
            max_unacked=self.max_unacked,
            receive_maximum=self.receive_maximum,
            client_id=self.client_id,
            session_expiry_s=self.session_expiry_s,
            max_readings=self.max_readings,
            max_age_s=self.max_age_s,
            backoff=self.backoff.build(),
        )


class OpcUaConfig(_Source):
    url: str = Field(pattern=r"^opc\.tcp://")
    nodes: dict[str, str] = Field(min_length=1)
    units: dict[str, str] = {}
    publishing_interval_ms: float = Field(default=500.0, gt=0)

    def build(self, sink: ReadingSink) -> OpcUaConnector:
        return OpcUaConnector(
            sink,
            name=self.name,
            url=self.url,
            nodes=self.nodes,
            units=self.units,
            publishing_interval_ms=self.publishing_interval_ms,
            max_readings=self.max_readings,
            max_age_s=self.max_age_s,
            backoff=self.backoff.build(),
        )


class RegisterConfig(_Strict):
    device_id: int = Field(default=1, ge=0, le=255)
    address: int = Field(ge=0, le=65535)
    type: DataType = DataType.FLOAT32
    scale: float = 1.0
    offset: float = 0.0
    table: Literal["holding", "input"] = "holding"
    word_order: Literal["big", "little"] = "big"
    unit: str | None = None


class ModbusConfig(_Source):
    host: str
    port: int = 502
    period_s: float = Field(default=1.0, gt=0)
    timeout_s: float = Field(default=2.0, gt=0)
    max_age_s: float = Field(default=0.0, ge=0)
    registers: dict[str, RegisterConfig] = Field(min_length=1)

    def build(self, sink: ReadingSink) -> ModbusConnector:
        points = [
            RegisterPoint(
                tag=tag,
                address=r.address,
                datatype=r.type,
                device_id=r.device_id,
                scale=r.scale,
                offset=r.offset,
                table=r.table,
                word_order=r.word_order,
                unit=r.unit,
            )
            for tag, r in self.registers.items()
        ]
        return ModbusConnector(
            sink,
            name=self.name,
            host=self.host,
            port=self.port,
            points=points,
            period_s=self.period_s,
            timeout_s=self.timeout_s,
            max_readings=self.max_readings,
            max_age_s=self.max_age_s,
            backoff=self.backoff.build(),
        )


class SinkConfig(_Strict):
    """Where readings go: ``store`` = the reading store the settings name (the ingest worker), ``csv`` = files."""

    kind: Literal["csv", "store"] = "csv"
    folder: Path = Path("var/readings-csv")  # csv only
    refresh_s: float = Field(default=5.0, ge=0)  # store only: reload the tag map at most this often

    def build(self) -> ReadingSink:
        if self.kind == "store":
            raise ConnectorConfigError('a "store" sink needs the settings: open it with connectors.cli.open_sink')
        return CsvSink(self.folder)


class ConnectorsFile(_Strict):
    sink: SinkConfig = SinkConfig()
    mqtt: list[MqttConfig] = []
    opcua: list[OpcUaConfig] = []
    modbus: list[ModbusConfig] = []
    expected: dict[str, float] = {}

    @field_validator("expected")
    @classmethod
    def _positive_periods(cls, value: dict[str, float]) -> dict[str, float]:
        bad = [tag for tag, period in value.items() if period <= 0]
        if bad:
            raise ValueError(f"expected periods must be > 0 s (check {', '.join(bad)})")
        return value

    @property
    def sources(self) -> list[MqttConfig | OpcUaConfig | ModbusConfig]:
        return [*self.mqtt, *self.opcua, *self.modbus]

    def build(self, sink: ReadingSink | None = None) -> list[MqttConnector | OpcUaConnector | ModbusConnector]:
        """Every configured connector, writing into `sink` (default: the file's [sink])."""
        target = sink if sink is not None else self.sink.build()
        return [source.build(target) for source in self.sources]


def load(path: Path | str) -> ConnectorsFile:
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConnectorConfigError(f"{path}: no such file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConnectorConfigError(f"{path}: not valid TOML ({exc})") from None
    try:
        parsed = ConnectorsFile.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ConnectorConfigError(f"{path}: {problems}") from None
    names = [s.name for s in parsed.sources]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConnectorConfigError(f"{path}: connector names must be unique ({', '.join(duplicates)})")
    if not names:
        raise ConnectorConfigError(f"{path}: no [[mqtt]], [[opcua]] or [[modbus]] section")
    return parsed
