"""HTTP routes for hazard attachments: upload, list, download, thumbnail.

Downloads are served with the type sniffed at upload and `X-Content-Type-Options: nosniff`, so
a browser never second-guesses it into HTML; PDFs are sent as downloads (a PDF viewer inside
our origin runs the PDF's scripts), photos inline so they show in the page.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict

from hazardloop.hazards import attachments
from hazardloop.hazards.models import Attachment, AttachmentPhase
from hazardloop.web.deps import Actor, Db

router = APIRouter(prefix="/api/v1", tags=["hazards"])


class AttachmentRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    hazard_id: int
    filename: str
    content_type: str
    size: int
    phase: AttachmentPhase
    width: int | None
    height: int | None
    sha256: str
    uploaded_by_id: int | None
    uploaded_at: dt.datetime
    url: str = ""
    thumbnail_url: str | None = None


def read(attachment: Attachment) -> AttachmentRead:
    result = AttachmentRead.model_validate(attachment)
    result.url = f"/api/v1/attachments/{attachment.id}"
    if attachment.content_type.startswith("image/"):
        result.thumbnail_url = f"{result.url}/thumbnail"
    return result


@router.post("/hazards/{hazard_id}/attachments", response_model=AttachmentRead, status_code=201)
def upload_attachment(
    hazard_id: int,
    request: Request,
    actor: Actor,
    db: Db,
    file: Annotated[UploadFile, File(description="a photo (JPEG, PNG, WebP, HEIC) or a PDF")],
    phase: Annotated[AttachmentPhase, Form()],
) -> AttachmentRead:
    """Read at most limit+1 bytes: an oversized upload is refused without holding it in memory.

    Starlette has already spooled the part to a temporary file by now; web.body_limit refused
    any body over max_request_bytes before that (give the reverse proxy the same limit).
    """
    settings = request.app.state.settings
    content = file.file.read(settings.max_upload_bytes + 1)
    attachment = attachments.add_attachment(
        db,
        actor=actor,
        hazard_id=hazard_id,
        content=content,
        filename=file.filename or "",
        phase=phase,
        data_dir=settings.data_dir,
        max_bytes=settings.max_upload_bytes,
    )
    return read(attachment)


@router.get("/hazards/{hazard_id}/attachments", response_model=list[AttachmentRead])
def list_attachments(hazard_id: int, actor: Actor, db: Db) -> list[AttachmentRead]:
    return [read(a) for a in attachments.list_attachments(db, actor=actor, hazard_id=hazard_id)]


@router.get("/attachments/{attachment_id}", response_class=FileResponse)
def download_attachment(attachment_id: int, request: Request, actor: Actor, db: Db) -> FileResponse:
    path, content_type, filename = attachments.open_attachment(
        db, actor=actor, attachment_id=attachment_id, data_dir=request.app.state.settings.data_dir
    )
    return _file(path, content_type, filename)


@router.get("/attachments/{attachment_id}/thumbnail", response_class=FileResponse)
def download_thumbnail(attachment_id: int, request: Request, actor: Actor, db: Db) -> FileResponse:
    path, content_type, filename = attachments.open_attachment(
        db, actor=actor, attachment_id=attachment_id, data_dir=request.app.state.settings.data_dir, thumbnail=True
    )
    return _file(path, content_type, filename)


def _file(path: Path, content_type: str, filename: str) -> FileResponse:
    disposition = "inline" if content_type.startswith("image/") else "attachment"
    return FileResponse(
        path,
        media_type=content_type,
        headers={
            "Content-Disposition": content_disposition(disposition, filename),
            "X-Content-Type-Options": "nosniff",
            # Opened directly, the file gets no script, style or plugin rights in our origin.
            "Content-Security-Policy": "default-src 'none'; img-src 'self'; sandbox",
            "Cache-Control": "private, max-age=3600",  # access-controlled: never in a shared cache
        },
    )


def content_disposition(disposition: str, filename: str) -> str:
    """RFC 6266 with an RFC 5987 `filename*` (UTF-8, so 整改后.jpg survives) and an ASCII fallback.

    The fallback replaces what is not printable ASCII, and quotes and backslashes that would end or
    escape the quoted string, by "_".
    """
    fallback = "".join(c if 0x20 <= ord(c) < 0x7F and c not in '"\\' else "_" for c in filename)
    return f"{disposition}; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"
