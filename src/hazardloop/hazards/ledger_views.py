"""HTTP routes of the 台账: download the filtered ledger as Excel or CSV, upload a ledger to import.

Registered before the hazards router: these fixed paths would otherwise be read as /{hazard_id}.
"""

from __future__ import annotations

import json
from urllib.parse import quote

from fastapi import APIRouter, Form, Request, UploadFile
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from hazardloop.db import utcnow
from hazardloop.errors import InvalidInput
from hazardloop.hazards import ledger
from hazardloop.hazards.ledger import BEIJING, TITLE, LedgerImportReport
from hazardloop.hazards.views import Filters
from hazardloop.web.deps import Actor, Db

router = APIRouter(prefix="/api/v1/hazards", tags=["hazards"])

XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _download(content: bytes, media_type: str, suffix: str) -> Response:
    """A file download whose name is Chinese: RFC 6266/5987 filename* for browsers, ASCII fallback for the rest."""
    stamp = utcnow().astimezone(BEIJING).strftime("%Y%m%d-%H%M")
    name = f"{TITLE}-{stamp}.{suffix}"
    disposition = f"attachment; filename=\"hazard-ledger-{stamp}.{suffix}\"; filename*=UTF-8''{quote(name)}"
    return Response(content=content, media_type=media_type, headers={"Content-Disposition": disposition})


@router.get("/export.xlsx", response_class=Response)
def export_xlsx(actor: Actor, db: Db, filters: Filters) -> Response:
    """The hazards the list shows with the same filters, as the 隐患排查治理台账 workbook."""
    return _download(ledger.export_xlsx(db, actor=actor, filters=filters), XLSX_TYPE, "xlsx")


@router.get("/export.csv", response_class=Response)
def export_csv(actor: Actor, db: Db, filters: Filters) -> Response:
    """The same ledger as CSV (UTF-8 with BOM, so Excel shows the Chinese text)."""
    return _download(ledger.export_csv(db, actor=actor, filters=filters), "text/csv; charset=utf-8", "csv")


def _mapping(text: str | None) -> dict[str, str] | None:
    if not text:
        return None
    try:
        mapping = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput("mapping", f"not JSON: {exc.msg}") from exc
    if not isinstance(mapping, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in mapping.items()):
        raise InvalidInput("mapping", 'must be a JSON object {"their header": "our field"}')
    return mapping


@router.post("/import", response_model=LedgerImportReport, status_code=201)
async def import_ledger(
    file: UploadFile, request: Request, actor: Actor, db: Db, mapping: str | None = Form(default=None)
) -> LedgerImportReport:
    """Upload a ledger (.xlsx, or CSV in UTF-8/GBK). Every bad row is listed; nothing partial is stored."""
    limit = request.app.state.settings.max_upload_bytes
    content = await file.read(limit + 1)
    if len(content) > limit:
        raise InvalidInput("file", f"larger than the {limit / (1024 * 1024):g} MiB upload limit ({limit} bytes)")
    # ten thousand rows take seconds: off the event loop, so other requests are not held up
    return await run_in_threadpool(
        ledger.import_ledger,
        db,
        actor=actor,
        content=content,
        filename=file.filename or "upload",
        mapping=_mapping(mapping),
    )
