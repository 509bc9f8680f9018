"""The ingest API as a gateway and a chart would use it."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from world import World

from hazardloop.auth.roles import Role
from hazardloop.demo.signals import Simulation
from hazardloop.readings.store import now_ms

URL = "/api/v1/readings"
MINUTE = 60_000


def recent(minutes_ago: float) -> int:
    return now_ms() - int(minutes_ago * MINUTE)


def post(client, world: World, readings: list[dict], role: Role = Role.OPERATOR):  # noqa: ANN001, ANN201
    return client.post(URL, json={"readings": readings}, headers=world.auth(role))


def history(client, world: World, tag: str, **params):  # noqa: ANN001, ANN003, ANN201
    return client.get(f"{URL}/{tag}", params={"bucket": "raw", **params}, headers=world.auth(Role.ADMIN))


def test_same_batch_twice_is_stored_once_and_the_second_answer_says_duplicates(client, world: World) -> None:
    batch = [{"tag": "GT-101", "ts": recent(i), "value": 1.0 + i} for i in range(5)]
    first = post(client, world, batch)
    second = post(client, world, batch)
    assert first.status_code == 200 and first.json()["accepted"] == 5
    assert second.status_code == 200
    assert second.json() == {"received": 5, "accepted": 0, "duplicates": 5, "rejected": []}
    assert len(history(client, world, "GT-101", start=recent(10)).json()["t"]) == 5


def test_out_of_order_and_late_readings_are_accepted(client, world: World) -> None:
    post(client, world, [{"tag": "GT-101", "ts": recent(1), "value": 3.0}])
    late = post(
        client,
        world,
        [{"tag": "GT-101", "ts": recent(3 * 24 * 60), "value": 1.0}, {"tag": "GT-101", "ts": recent(2), "value": 2.0}],
    )
    assert late.json()["accepted"] == 2
    answer = history(client, world, "GT-101", start=recent(4 * 24 * 60)).json()
    assert answer["value"] == [1.0, 2.0, 3.0] and answer["t"] == sorted(answer["t"])


def test_iso_times_with_offset_and_plant_time_without_one_mean_the_same_instant(client, world: World) -> None:
    when = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    aware = when.astimezone().isoformat()
    naive_plant_time = (when + timedelta(hours=8)).replace(tzinfo=None).isoformat()  # Asia/Shanghai, UTC+8
    r = post(
        client,
        world,
        [{"tag": "GT-101", "ts": aware, "value": 4.0}, {"tag": "GT-101", "ts": naive_plant_time, "value": 4.0}],
    )
    assert r.json()["accepted"] == 1 and r.json()["duplicates"] == 1


def test_each_bad_row_is_rejected_naming_row_tag_field_and_the_good_rows_are_stored(client, world: World) -> None:
    rows = [
        f'{{"tag": "GT-101", "ts": {recent(1)}, "value": 5.0}}',  # good
        f'{{"tag": "GT-101", "ts": {recent(2)}, "value": NaN}}',
        f'{{"tag": "GT-101", "ts": {recent(3)}, "value": 250.0}}',
        f'{{"tag": "GT-101", "ts": {recent(4)}, "value": 5.0, "unit": "ppm"}}',
        f'{{"tag": "GT-101", "ts": {recent(-60)}, "value": 5.0}}',  # an hour in the future
        '{"tag": "GT-101", "ts": 1700000000, "value": 5.0}',  # epoch seconds
        '{"tag": "GT-101", "ts": "yesterday", "value": 5.0}',
        f'{{"tag": "NO-SUCH", "ts": {recent(5)}, "value": 5.0}}',
        f'{{"tag": "GT-101", "ts": {recent(6)}, "value": 101.0, "unit": "%LEL"}}',  # good: NE 43 over-range
    ]
    body = '{"readings": [' + ",".join(rows) + "]}"
    r = client.post(URL, content=body, headers={**world.auth(Role.OPERATOR), "content-type": "application/json"})
    assert r.status_code == 207
    report = r.json()
    assert report["accepted"] == 2
    got = {(x["row"], x["tag"], x["field"]): x["reason"] for x in report["rejected"]}
    assert set(got) == {
        (1, "GT-101", "value"),
        (2, "GT-101", "value"),
        (3, "GT-101", "unit"),
        (4, "GT-101", "ts"),
        (5, "GT-101", "ts"),
        (6, "GT-101", "ts"),
        (7, "NO-SUCH", "tag"),
    }
    assert "NaN" in got[(1, "GT-101", "value")]
    assert "0..100 %LEL" in got[(2, "GT-101", "value")]
    assert "'ppm'" in got[(3, "GT-101", "unit")] and "%LEL" in got[(3, "GT-101", "unit")]
    assert "future" in got[(4, "GT-101", "ts")] or "ahead" in got[(4, "GT-101", "ts")]
    assert "epoch seconds" in got[(5, "GT-101", "ts")]
    assert "unknown sensor" in got[(7, "NO-SUCH", "tag")]


def test_a_bad_batch_changes_nothing_already_stored(client, world: World) -> None:
    ts = recent(1)
    post(client, world, [{"tag": "GT-101", "ts": ts, "value": 5.0}])
    r = post(client, world, [{"tag": "GT-101", "ts": ts, "value": 7.0}, {"tag": "GT-101", "ts": ts, "value": None}])
    assert r.status_code == 207 and r.json()["accepted"] == 0
    assert [x["field"] for x in r.json()["rejected"]] == ["value", "value"]
    assert "first value is kept" in r.json()["rejected"][0]["reason"]
    assert history(client, world, "GT-101", start=recent(5)).json()["value"] == [5.0]


def test_columnar_form_stores_a_series_for_one_tag(client, world: World) -> None:
    ts = [recent(10 - i) for i in range(10)]
    r = client.post(URL, json={"tag": "GT-101", "ts": ts, "values": list(range(10))}, headers=world.auth(Role.ADMIN))
    assert r.status_code == 200 and r.json()["accepted"] == 10


def test_a_user_without_area_b_can_neither_write_nor_read_its_sensor(client, world: World) -> None:
    r = post(client, world, [{"tag": "GT-201", "ts": recent(1), "value": 1.0}], role=Role.OPERATOR)
    assert r.status_code == 207 and r.json()["accepted"] == 0
    assert r.json()["rejected"][0]["field"] == "tag"
    assert client.get(f"{URL}/GT-201", headers=world.auth(Role.OPERATOR)).status_code == 404
    assert client.get(f"{URL}/GT-201", headers=world.auth(Role.ADMIN)).status_code == 200


def test_a_viewer_may_read_but_not_write(client, world: World) -> None:
    assert post(client, world, [{"tag": "GT-101", "ts": recent(1), "value": 1.0}], role=Role.VIEWER).status_code == 403
    assert client.get(f"{URL}/GT-101", headers=world.auth(Role.VIEWER)).status_code == 200


def test_a_body_over_the_upload_limit_is_refused_naming_the_limit(client, world: World) -> None:
    client.app.state.settings.max_upload_bytes = 1000
    batch = [{"tag": "GT-101", "ts": recent(i), "value": 1.0} for i in range(100)]
    r = post(client, world, batch)
    assert r.status_code == 422 and "max_upload_bytes = 1000" in r.text


def test_the_demo_wide_csv_imports(client, world: World) -> None:
    start = np.datetime64(datetime.now(UTC).replace(tzinfo=None, microsecond=0), "s") - np.timedelta64(60, "m")
    stamps = start + np.arange(30) * np.timedelta64(1, "m")
    values = np.column_stack([np.linspace(1, 3, 30), np.linspace(2, 4, 30)])
    values[5, 1] = np.nan  # a lost reading: an empty cell, skipped, not rejected
    frame = Simulation(timestamps=stamps, tags=["GT-101", "GT-201"], values=values).to_frame()
    csv = frame.to_csv(index=False, float_format="%.4f")  # exactly how the demo writes sensor_history.csv
    r = client.post(
        f"{URL}/csv",
        params={"tz": "UTC"},
        files={"file": ("sensor_history.csv", csv, "text/csv")},
        headers=world.auth(Role.ADMIN),
    )
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == 59
    assert len(history(client, world, "GT-201", start=recent(120)).json()["t"]) == 29


def test_long_csv_body_reports_csv_lines(client, world: World) -> None:
    csv = f"tag,ts,value,unit\nGT-101,{recent(1)},5.0,%LEL\nGT-101,{recent(2)},abc,%LEL\n"
    r = client.post(f"{URL}/csv", content=csv, headers={**world.auth(Role.OPERATOR), "content-type": "text/csv"})
    assert r.status_code == 207 and r.json()["accepted"] == 1
    assert r.json()["rejected"] == [{"row": 3, "tag": "GT-101", "field": "value", "reason": "not a number"}]


def test_chart_buckets_carry_min_max_avg(client, world: World) -> None:
    hour = 60 * MINUTE
    base = (now_ms() // hour - 3) * hour
    series = [{"tag": "GT-101", "ts": base + i * MINUTE, "value": i / 2} for i in range(120)]
    assert post(client, world, series).json()["accepted"] == 120
    r = client.get(
        f"{URL}/GT-101", params={"start": base, "end": base + 2 * hour, "bucket": "1h"}, headers=world.auth(Role.VIEWER)
    )
    answer = r.json()
    assert answer["t"] == [base, base + hour] and answer["bucket_ms"] == hour
    assert answer["min"] == [0.0, 30.0] and answer["max"] == [29.5, 59.5] and answer["avg"] == [14.75, 44.75]
    auto = client.get(
        f"{URL}/GT-101", params={"start": base, "end": base + 2 * hour}, headers=world.auth(Role.VIEWER)
    ).json()
    assert len(auto["t"]) <= 1000


def test_status_flags_a_silent_sensor(client, world: World) -> None:
    post(client, world, [{"tag": "GT-101", "ts": recent(0.5), "value": 1.0}], role=Role.ADMIN)
    post(client, world, [{"tag": "GT-201", "ts": recent(60), "value": 1.0}], role=Role.ADMIN)
    sensors = {s["tag"]: s for s in client.get(f"{URL}/status", headers=world.auth(Role.ADMIN)).json()["sensors"]}
    assert sensors["GT-101"]["silent"] is False
    assert sensors["GT-201"]["silent"] is True and sensors["GT-201"]["last_value"] == 1.0
    scoped = client.get(f"{URL}/status", headers=world.auth(Role.OPERATOR)).json()["sensors"]
    assert [s["tag"] for s in scoped] == ["GT-101"]


def test_parquet_export_then_import_round_trips(client, db, world: World, tmp_path) -> None:  # noqa: ANN001
    series = [
        {"tag": tag, "ts": recent(i * 600), "value": float(i % 50)} for i in range(300) for tag in ("GT-101", "GT-201")
    ]
    assert post(client, world, series, role=Role.ADMIN).json()["accepted"] == 600
    exported = client.post(f"{URL}/export", json={}, headers=world.auth(Role.ADMIN)).json()
    assert exported["rows"] == 600
    folder = client.app.state.settings.data_dir / exported["path"]
    assert all(p.name.startswith("date=") for p in folder.iterdir()) and len(list(folder.iterdir())) >= 2
    again = client.post(f"{URL}/import", data={"path": exported["path"]}, headers=world.auth(Role.ADMIN))
    assert again.json() == {"received": 600, "accepted": 0, "duplicates": 600, "rejected": []}
    assert client.post(f"{URL}/export", json={}, headers=world.auth(Role.OPERATOR)).status_code == 403

    # into an empty store: the same readings, nothing more, nothing less
    from hazardloop.readings.ingest import import_parquet
    from hazardloop.readings.store import ReadingStore

    original = client.app.state.readings_store
    with ReadingStore(tmp_path / "fresh.duckdb") as fresh:
        report = import_parquet(db, fresh, actor=world.admin, source=folder)
        assert report.accepted == 600 and not report.rejected
        ids = [world.sensor_a, world.sensor_b]
        a, b = original.window(ids, 0, now_ms()), fresh.window(ids, 0, now_ms())
        assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("bucket", ["raw", "5m", "auto"])
def test_history_of_an_unknown_tag_is_404(client, world: World, bucket: str) -> None:
    assert client.get(f"{URL}/NOPE", params={"bucket": bucket}, headers=world.auth(Role.ADMIN)).status_code == 404


def test_ingest_is_quick_enough_for_a_gateway(client, world: World) -> None:
    ts = [recent(60) + i * 100 for i in range(10_000)]
    t0 = time.perf_counter()
    r = client.post(URL, json={"tag": "GT-101", "ts": ts, "values": [1.0] * 10_000}, headers=world.auth(Role.ADMIN))
    assert r.json()["accepted"] == 10_000 and time.perf_counter() - t0 < 5
