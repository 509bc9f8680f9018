"""The payload convention and the connector file, without a broker."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from hazardloop.connectors import config
from hazardloop.connectors.cli import connectors_app
from hazardloop.connectors.mqtt import MalformedPayload, TopicTemplate, decode_payload

T0 = 1_718_000_000_000


def test_many_tags_by_many_times_unrolls_tag_major() -> None:
    tags, ts, values, units = decode_payload(
        b'{"ts":[1718000000000,1718000001000],"values":{"A":[1,2],"B":[3,4]},"u":{"A":"bar"}}', None, 0
    )
    assert tags == ["A", "A", "B", "B"]
    assert ts.tolist() == [T0, T0 + 1000, T0, T0 + 1000]
    assert values.tolist() == [1, 2, 3, 4] and units == ["bar", "bar", None, None]


def test_iso_time_with_offset_is_converted_to_utc_ms() -> None:
    _, ts, _, _ = decode_payload(b'{"ts":"2024-06-10T14:13:20+08:00","v":1}', "GT-1", 0)
    assert ts.dtype == np.int64 and ts.tolist() == [T0]


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        (b'{"ts":"2024-06-10T14:13:20","v":1}', "no UTC offset"),
        (b'{"ts":1718000000,"v":1}', "epoch seconds"),
        (b'{"ts":[1718000000000],"v":[1,2]}', "as long as 'v'"),
        (b"[1,2]", "JSON object"),
        (b'{"v":true}', "must be a number"),
    ],
)
def test_bad_payloads_say_what_to_fix(payload: bytes, why: str) -> None:
    with pytest.raises(MalformedPayload, match=why):
        decode_payload(payload, "GT-1", T0)


def test_topic_template_builds_the_shared_filter_and_finds_the_tag() -> None:
    template = TopicTemplate("plant/{area}/{tag}")
    assert template.shared_filter("hazardloop") == "$share/hazardloop/plant/+/+"
    assert template.tag_of("plant/tank-farm/GT-101") == "GT-101"
    with pytest.raises(ValueError, match="whole segment"):
        TopicTemplate("plant/x{tag}")


def test_connector_file_builds_connectors_and_names_a_wrong_key(tmp_path) -> None:
    good = tmp_path / "c.toml"
    good.write_text(
        '[sink]\nfolder = "out"\n[[mqtt]]\nname = "m"\ntopic = "plant/{area}/{tag}"\n'
        '[[modbus]]\nname = "plc"\nhost = "10.0.0.7"\n[modbus.registers]\n'
        '"LT-1" = { address = 2, type = "int16", scale = 0.1 }\n[expected]\n"LT-1" = 1.0\n'
    )
    parsed = config.load(good)
    kinds = [c.kind for c in parsed.build()]
    assert kinds == ["mqtt", "modbus"] and parsed.expected == {"LT-1": 1.0}
    bad = tmp_path / "bad.toml"
    bad.write_text('[[modbus]]\nname = "plc"\nhost = "h"\n[modbus.registers]\n"X" = { adress = 2 }\n')
    with pytest.raises(config.ConnectorConfigError, match="registers.X.adress"):
        config.load(bad)
    result = CliRunner().invoke(connectors_app, ["check", str(bad)])
    assert result.exit_code == 2 and "adress" in result.output


def test_csv_sink_writes_readings_per_utc_day(tmp_path) -> None:
    from hazardloop.connectors.sinks import CsvSink

    CsvSink(tmp_path).write(["A", "B"], np.array([T0, T0 + 86_400_000]), np.array([1.5, 2.0]), ["bar", None])
    first, second = sorted(tmp_path.glob("*.csv"))
    assert first.read_text().splitlines() == ["tag,ts_ms,value,unit", f"A,{T0},1.5,bar"]
    assert second.name == "readings-20240611.csv"


def test_a_store_sink_and_a_persistent_session_are_read_from_the_file(tmp_path) -> None:  # noqa: ANN001
    path = tmp_path / "worker.toml"
    path.write_text(
        '[sink]\nkind = "store"\nrefresh_s = 2\n\n[[mqtt]]\nname = "w1"\ntopic = "p/{tag}"\n'
        'client_id = "worker-1"\nsession_expiry_s = 300\n'
    )
    parsed = config.load(path)
    assert parsed.sink.kind == "store" and parsed.sink.refresh_s == 2
    (connector,) = parsed.build(sink=object())  # type: ignore[arg-type]
    assert connector.client_id == "worker-1" and connector.session_expiry_s == 300
    with pytest.raises(config.ConnectorConfigError, match="needs the settings"):
        parsed.sink.build()
    result = CliRunner().invoke(connectors_app, ["check", str(path)])
    assert result.exit_code == 0 and "reading store" in result.output


def test_an_unknown_sink_kind_is_refused_naming_the_key(tmp_path) -> None:  # noqa: ANN001
    path = tmp_path / "bad.toml"
    path.write_text('[sink]\nkind = "duckdb"\n\n[[mqtt]]\nname = "w1"\n')
    with pytest.raises(config.ConnectorConfigError, match="sink.kind"):
        config.load(path)


def test_a_max_unacked_beyond_the_receive_window_is_refused_naming_both(tmp_path) -> None:  # noqa: ANN001
    path = tmp_path / "c.toml"
    path.write_text('[[mqtt]]\nname = "m"\nreceive_maximum = 50\nmax_unacked = 80\n')
    with pytest.raises(config.ConnectorConfigError, match="max_unacked") as info:
        config.load(path)
    assert "receive_maximum" in str(info.value)
    path.write_text('[[mqtt]]\nname = "m"\nreceive_maximum = 50\n')
    (connector,) = config.load(path).build(sink=object())  # type: ignore[arg-type]
    assert connector.receive_maximum == 50 and connector.max_unacked == 25  # half the window by default
