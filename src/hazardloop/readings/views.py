"""HTTP routes of the sensor history: batch ingest (JSON, CSV), charts, silent-sensor status, Parquet.

Ingest answers 200 when every row was stored or already there, and 207 (Multi-Status) when some rows
were rejected; the body is the same IngestReport either way, so a gateway re-sends exactly the rows
listed. The store is created lazily from the app's settings on first use and kept on ``app.state``.
"""

from __future__ import annotations

import json
import secrets
import tempfile
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
from fastapi import APIRouter, Depends, Form, Query, Request, UploadFile
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from hazardloop.auth import authz
from hazardloop.errors import InvalidInput
from hazardloop.plant import service as plant
from hazardloop.readings import ingest
from hazardloop.readings.ingest import IngestReport
from hazardloop.readings.store import now_ms
from hazardloop.readings.stores import AnyStore, open_store
from hazardloop.web.deps import Actor, Db

router = APIRouter(prefix="/api/v1/readings", tags=["readings"])

MAX_POINTS = 1000  # a chart is ~1000 px wide: more buckets than pixels only costs bandwidth
RAW_LIMIT = 100_000  # raw points in one answer; beyond that ask for a bucket
DEFAULT_SPAN = timedelta(hours=24)
BUCKET_LADDER_S = (1, 5, 10, 30, 60, 300, 600, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 7 * 86400)
SILENT_PERIODS = 5  # a sensor is silent after this many missed sample periods (one lost packet is not silence)
DEFAULT_SAMPLE_PERIOD_S = 60.0  # for sensors whose sample period was never configured: the demo's 1-minute grid
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}

_store_lock = threading.Lock()


def store_for(state: Any) -> AnyStore:  # noqa: ANN401 - the app's Starlette State
    """The app's one reading store, opened on first use (double-checked under a lock) as settings say.

    DuckDB under data_dir by default, PostgreSQL when ``readings_url`` is set (stores.open_store).
    Shared by the routes and the in-process demo stream, since one process owns a DuckDB file.
    """
    store = getattr(state, "readings_store", None)
    if store is None:
        with _store_lock:
            store = getattr(state, "readings_store", None)
            if store is None:
                store = open_store(state.settings)
                state.readings_store = store
    return store


def get_store(request: Request) -> AnyStore:
    return store_for(request.app.state)


Store = Annotated[AnyStore, Depends(get_store)]


# ---------------------------------------------------------------- helpers


async def _body(request: Request) -> bytes:
    """The request body, refused with a 422 naming the limit as soon as it grows past max_upload_bytes."""
    limit = request.app.state.settings.max_upload_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise InvalidInput("body", _too_large(limit))
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise InvalidInput("body", _too_large(limit))
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> str:
    return f"larger than the {limit / (1024 * 1024):g} MiB upload limit (max_upload_bytes = {limit})"


def _answer(report: IngestReport) -> JSONResponse:
    return JSONResponse(report.model_dump(), status_code=207 if report.rejected else 200)


def _zone(name: str | None) -> ZoneInfo:
    if not name:
        return ingest.PLANT_TZ
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput("tz", f"unknown time zone '{name}' (use an IANA name such as Asia/Shanghai)") from None


def _decode(content: bytes) -> str:
    for encoding in ("utf-8-sig", "gb18030"):  # Excel in China saves CSV as GBK
        try:
            return content.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise InvalidInput("file", "not UTF-8 or GBK text")


def _time_param(name: str, raw: str | None, default: int) -> int:
    if raw is None or raw == "":
        return default
    ms, ok = ingest.parse_ts(np.array([raw], dtype=object))
    if not ok[0]:
        raise InvalidInput(name, "not a time: use ISO 8601 or epoch milliseconds")
    return int(ms[0])


def _bucket_ms(raw: str | None, span_ms: int) -> int | None:
    """None for raw points; else the bucket in ms: given ("30s", "5m", "1h", "1d", or seconds) or auto."""
    if raw == "raw":
        return None
    if raw in (None, "", "auto"):
        for seconds in BUCKET_LADDER_S:
            if span_ms / (seconds * 1000) <= MAX_POINTS:
                return seconds * 1000
        return BUCKET_LADDER_S[-1] * 1000
    unit = raw[-1] if raw[-1] in _UNITS else "s"
    number = raw[:-1] if raw[-1] in _UNITS else raw
    if not number.isdigit() or int(number) == 0:
        raise InvalidInput("bucket", "use raw, auto, or a duration such as 30s, 5m, 1h, 1d")
    return int(number) * _UNITS[unit] * 1000


# ---------------------------------------------------------------- ingest


@router.post("", response_model=IngestReport, responses={207: {"model": IngestReport}})
async def post_readings(request: Request, actor: Actor, db: Db, store: Store, tz: str | None = None) -> JSONResponse:
    """A JSON batch: ``{"readings": [{"tag", "ts", "value", "unit"?}]}`` or ``{"tag", "ts": [..], "values": [..]}``.

    ts is ISO 8601 or epoch milliseconds; a string without an offset is plant time (``tz``).
    """
    content = await _body(request)
    try:
        payload = json.loads(content)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInput("body", f"not JSON: {exc}") from exc
    batch = ingest.batch_from_json(payload)
    zone = _zone(tz)
    report = await run_in_threadpool(ingest.ingest, db, store, actor=actor, batch=batch, tz=zone)
    return _answer(report)


@router.post("/csv", response_model=IngestReport, responses={207: {"model": IngestReport}})
async def post_csv(request: Request, actor: Actor, db: Db, store: Store, tz: str | None = None) -> JSONResponse:
    """CSV as the body (text/csv) or as a multipart ``file``: long (tag,ts,value[,unit]) or wide (timestamp + tags)."""
    limit = request.app.state.settings.max_upload_bytes
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        form = await request.form()
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise InvalidInput("file", "send the CSV as the multipart field 'file'")
        content = await upload.read(limit + 1)
        if len(content) > limit:
            raise InvalidInput("file", _too_large(limit))
    else:
        content = await _body(request)
    batch = ingest.batch_from_csv(_decode(content))
    zone = _zone(tz)
    report = await run_in_threadpool(ingest.ingest, db, store, actor=actor, batch=batch, tz=zone)
    return _answer(report)


# ---------------------------------------------------------------- status (declared before /{tag})


class SensorStatus(BaseModel):
    tag: str
    unit: str
    enabled: bool
    last_ts: int | None
    last_value: float | None
    silent_after_s: float
    silent: bool


class StatusReport(BaseModel):
    now: int
    silent: int
    sensors: list[SensorStatus]


@router.get("/status", response_model=StatusReport)
def status(
    actor: Actor, db: Db, store: Store, periods: Annotated[int, Query(ge=1, le=1000)] = SILENT_PERIODS
) -> StatusReport:
    """Last reading per visible sensor; an enabled sensor is silent after ``periods`` missed sample periods."""
    authz.require(actor, "readings.read")
    sensors = plant.list_sensors(db, actor=actor)
    latest = store.latest([s.id for s in sensors])
    now = now_ms()
    rows = []
    for s in sensors:
        after = periods * (s.sample_period_s or DEFAULT_SAMPLE_PERIOD_S)
        ts, value = latest.get(s.id, (None, None))
        silent = s.enabled and (ts is None or now - ts > after * 1000)
        rows.append(
            SensorStatus(
                tag=s.tag,
                unit=s.unit,
                enabled=s.enabled,
                last_ts=ts,
                last_value=value,
                silent_after_s=after,
                silent=silent,
            )
        )
    return StatusReport(now=now, silent=sum(r.silent for r in rows), sensors=rows)


# ---------------------------------------------------------------- Parquet (admins)


class ExportRequest(BaseModel):
    start: str | int | None = None
    end: str | int | None = None


class ExportResult(BaseModel):
    path: str  # relative to data_dir
    rows: int


@router.post("/export", response_model=ExportResult)
def export(body: ExportRequest, request: Request, actor: Actor, db: Db, store: Store) -> ExportResult:
    """Write readings as a Parquet dataset hive-partitioned by date under data_dir/exports/."""
    authz.require(actor, "plant.write")  # archives hold every area's history: plant administrators only
    data_dir = request.app.state.settings.ensure_data_dir()
    start = None if body.start is None else _time_param("start", str(body.start), 0)
    end = None if body.end is None else _time_param("end", str(body.end), 0)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    relative = Path("exports") / f"readings-{stamp}-{secrets.token_hex(3)}"
    rows = ingest.export_parquet(db, store, actor=actor, dest=data_dir / relative, start=start, end=end)
    return ExportResult(path=relative.as_posix(), rows=rows)


@router.post("/import", response_model=IngestReport, responses={207: {"model": IngestReport}})
async def import_parquet(
    request: Request,
    actor: Actor,
    db: Db,
    store: Store,
    file: UploadFile | None = None,
    path: Annotated[str | None, Form()] = None,
) -> JSONResponse:
    """Import a Parquet ``file`` (upload), or a ``path`` under data_dir (an earlier export), with the usual checks."""
    authz.require(actor, "plant.write")
    settings = request.app.state.settings
    data_dir = settings.ensure_data_dir().resolve()
    if file is not None:
        content = await file.read(settings.max_upload_bytes + 1)
        if len(content) > settings.max_upload_bytes:
            raise InvalidInput("file", _too_large(settings.max_upload_bytes))
        with tempfile.TemporaryDirectory(dir=data_dir) as scratch:
            source = Path(scratch) / "upload.parquet"
            source.write_bytes(content)
            report = await run_in_threadpool(_import, db, store, actor, source)
        return _answer(report)
    if not path:
        raise InvalidInput("file", "send a Parquet file, or the path of an export under the data directory")
    source = (data_dir / path).resolve()
    if not source.is_relative_to(data_dir) or not source.exists():
        raise InvalidInput("path", "no such export under the data directory")
    return _answer(await run_in_threadpool(_import, db, store, actor, source))


def _import(db: Any, store: AnyStore, actor: Any, source: Path) -> IngestReport:
    try:
        return ingest.import_parquet(db, store, actor=actor, source=source)
    except Exception as exc:  # duckdb raises its own types for a file that is not Parquet
        if isinstance(exc, InvalidInput) or not type(exc).__module__.startswith("duckdb"):
            raise
        raise InvalidInput("file", f"not a readable Parquet file: {exc}") from exc


# ---------------------------------------------------------------- one sensor's history


@router.get("/{tag:path}")
def history(
    tag: str,
    actor: Actor,
    db: Db,
    store: Store,
    start: str | None = None,
    end: str | None = None,
    bucket: str | None = None,
) -> dict:
    """One sensor's readings between start and end (default: the last 24 h), bucketed for a chart.

    Columnar answer (t, min, max, avg, n per bucket; or t, value for ``bucket=raw``), ECharts-ready.
    """
    authz.require(actor, "readings.read")
    sensor = plant.sensor_by_tag(db, actor=actor, tag=tag)  # 404 outside the actor's areas
    hi = _time_param("end", end, now_ms() + 1)
    lo = _time_param("start", start, hi - int(DEFAULT_SPAN.total_seconds() * 1000))
    if hi <= lo:
        raise InvalidInput("end", "must be after start")
    bucket_ms = _bucket_ms(bucket, hi - lo)
    head = {"tag": sensor.tag, "unit": sensor.unit, "start": lo, "end": hi, "bucket_ms": bucket_ms}
    if bucket_ms is None:
        window = store.window([sensor.id], lo, hi)
        if len(window.ts) > RAW_LIMIT:
            raise InvalidInput("bucket", f"{len(window.ts)} raw points exceed {RAW_LIMIT}; ask for a bucket")
        return {**head, "t": window.ts.tolist(), "value": window.value.tolist()}
    frame = store.downsample(sensor.id, lo, hi, bucket_ms)
    return {**head, **{c: frame[c].tolist() for c in ("min", "max", "avg", "n")}, "t": frame["bucket"].tolist()}
