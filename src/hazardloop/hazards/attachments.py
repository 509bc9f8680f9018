"""Attachments of a hazard: photos before and after rectification, plans and acceptance reports.

A photo is evidence (整改前/整改后照片 are what an inspector asks to see), so the original bytes are
stored unchanged, EXIF orientation, time and GPS included. Files are content-addressed by SHA-256:
the same photo uploaded twice is stored once, a stored file can be checked against its name, and a
half-written file never gets a name (temp file + os.replace).

The type is decided from the content, never from the filename or the declared content type: a
"photo.jpg" that is really HTML or SVG would otherwise be served back to a browser as a page
(stored XSS). Images are decoded once at upload (to build the thumbnail), which refuses damaged,
truncated and decompression-bomb files before anything is stored.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import logging
import os
import re
import struct
import tempfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps
from sqlalchemy import select
from sqlalchemy.orm import Session

from hazardloop.auth import audit, authz
from hazardloop.auth.models import User
from hazardloop.db import utcnow
from hazardloop.errors import InvalidInput, NotFound
from hazardloop.hazards import service
from hazardloop.hazards.models import Attachment, AttachmentPhase

log = logging.getLogger(__name__)

THUMBNAIL_PX = 320  # longest side; enough for a list or a timeline card on a phone
THUMBNAIL_QUALITY = 80
# Above the 50 MP full-resolution mode of current phones, below Pillow's own 89.5 MP warning, so
# our message (not a Pillow warning) is what a user sees. Decoding an 80 MP PNG takes ~240 MB.
MAX_PIXELS = 80_000_000
ORIENTATION_TAG = 0x0112
_SWAPPING_ORIENTATIONS = {5, 6, 7, 8}  # EXIF orientations that turn the picture by 90° or 270°
_SHA256 = re.compile(r"[0-9a-f]{64}")
# What Pillow raises on malformed input varies by plugin; these are the ones its decoders use.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, TypeError, struct.error)


class AttachmentDamaged(NotFound):
    """The stored file is missing or no longer matches its SHA-256 (disk fault, or tampering).

    A subclass of NotFound (HTTP 404): the evidence that was uploaded cannot be produced, and a
    changed file must never be served as if it were the original.
    """


@dataclass(frozen=True)
class FileKind:
    content_type: str
    extension: str  # canonical, used when the uploaded name's extension does not fit the content
    aliases: tuple[str, ...]  # other extensions that fit this content
    pillow_format: str | None  # None: not an image (PDF)


JPEG = FileKind("image/jpeg", ".jpg", (".jpeg", ".jpe", ".jfif"), "JPEG")
PNG = FileKind("image/png", ".png", (), "PNG")
WEBP = FileKind("image/webp", ".webp", (), "WEBP")
HEIC = FileKind("image/heic", ".heic", (".heif",), "HEIF")  # readable only with a HEIF plugin (pillow-heif)
AVIF = FileKind("image/avif", ".avif", (), "AVIF")
PDF = FileKind("application/pdf", ".pdf", (), None)
KINDS = (JPEG, PNG, WEBP, HEIC, AVIF, PDF)
ACCEPTED = "JPEG, PNG, WebP, HEIC/AVIF photos or PDF documents"

_HEIC_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs", b"mif1", b"msf1"}
_AVIF_BRANDS = {b"avif", b"avis"}


# ---------------------------------------------------------------- deciding what a file is


def sniff(content: bytes) -> FileKind:
    """The kind of file from its first bytes (magic numbers), or InvalidInput naming what is accepted."""
    if not content:
        raise InvalidInput("file", "the file is empty")
    if content.startswith(b"\xff\xd8\xff"):
        return JPEG
    if content.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if content[:4] == b"RIFF" and content[8:12] == b"WEBP":
        return WEBP
    if content[4:8] == b"ftyp":  # ISO base media file: the brands say HEIC or AVIF
        box_end = min(int.from_bytes(content[:4], "big"), 64)
        # major brand at 8, then (after a 4-byte minor version) the compatible brands
        brands = {content[8:12]} | {content[i : i + 4] for i in range(16, box_end, 4)}
        if brands & _AVIF_BRANDS:
            return AVIF
        if brands & _HEIC_BRANDS:
            return HEIC
    # Strictly at byte 0, although readers accept %PDF- within the first 1024 bytes: anything in
    # front of it (an HTML page, say) makes a polyglot that another program may read differently.
    if content.startswith(b"%PDF-"):
        if b"%%EOF" not in content[-1024:]:
            raise InvalidInput("file", "the PDF is incomplete (no %%EOF at its end); upload it again")
        return PDF
    raise InvalidInput("file", f"this type of file is not accepted; upload {ACCEPTED}")


@dataclass(frozen=True)
class ImageFacts:
    width: int  # as displayed, after the EXIF orientation
    height: int
    thumbnail: bytes  # JPEG, upright, without EXIF


def inspect_image(content: bytes, kind: FileKind, *, max_pixels: int = MAX_PIXELS) -> ImageFacts:
    """Check that the bytes really are a decodable image of a sane size, and build its thumbnail.

    Pillow is limited to the sniffed format, so a crafted file can never reach another decoder
    (EPS, for example, would run Ghostscript).
    """
    assert kind.pillow_format is not None
    formats = [kind.pillow_format]
    Image.init()
    if kind.pillow_format not in Image.OPEN:  # HEIC without the pillow-heif plugin installed
        raise InvalidInput(
            "file",
            f"{kind.extension[1:].upper()} photos cannot be read on this server; set the phone camera to "
            "'Most Compatible' (JPEG) or export the photo as JPEG",
        )
    try:
        with Image.open(io.BytesIO(content), formats=formats) as probe:
            _check_pixels(probe.size, max_pixels)
            probe.verify()  # checksums (PNG CRCs); a JPEG's damage shows only when decoding, below
        with Image.open(io.BytesIO(content), formats=formats) as image:
            width, height = image.size
            if image.getexif().get(ORIENTATION_TAG) in _SWAPPING_ORIENTATIONS:
                width, height = height, width
            return ImageFacts(width=width, height=height, thumbnail=_thumbnail(image))
    except InvalidInput:
        raise  # our own pixel limit; InvalidInput is a ValueError, which the decoder clause below would re-wrap
    except Image.DecompressionBombError as exc:
        raise InvalidInput("file", f"the image is too large to process safely ({exc})") from exc
    except _DECODE_ERRORS as exc:
        raise InvalidInput("file", f"the image is damaged or incomplete and cannot be read ({exc})") from exc


def _check_pixels(size: tuple[int, int], max_pixels: int) -> None:
    width, height = size
    if width * height > max_pixels:
        raise InvalidInput(
            "file",
            f"the image is {width}×{height} pixels ({width * height / 1e6:.0f} MP), more than the limit of "
            f"{max_pixels / 1e6:.0f} MP; reduce its resolution",
        )


def _thumbnail(image: Image.Image) -> bytes:
    """A small upright JPEG: EXIF orientation applied, EXIF (with GPS) and ICC metadata left behind."""
    image.draft("RGB", (THUMBNAIL_PX * 2, THUMBNAIL_PX * 2))  # JPEG decodes at 1/2..1/8 scale: fast, small
    upright = ImageOps.exif_transpose(image)  # decodes the whole stream: truncation is found here
    upright.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
    has_alpha = upright.mode in ("RGBA", "LA", "PA") or "transparency" in upright.info
    if has_alpha:  # JPEG has no alpha: put transparent areas on white, as a browser shows them
        rgba = upright.convert("RGBA")
        flat = Image.new("RGB", rgba.size, "white")
        flat.paste(rgba, mask=rgba.getchannel("A"))
    else:
        flat = upright.convert("RGB")
    flat.info = {}  # nothing of the original's metadata travels into the thumbnail
    out = io.BytesIO()
    flat.save(out, format="JPEG", quality=THUMBNAIL_QUALITY, optimize=True)
    return out.getvalue()


def sanitize_filename(name: str, kind: FileKind) -> str:
    """The name as a person gave it, minus path parts and invisible characters, with an extension that fits.

    Chinese (any letter) is kept. Control and format characters go: U+202E (right-to-left override)
    would make "photo\u202egpj.exe" look like "photoexe.jpg". The extension is corrected to the sniffed
    type, so a JPEG uploaded as "report.html" is downloaded as "report.html.jpg", never opened as a page.
    """
    name = unicodedata.normalize("NFC", name or "")
    name = re.split(r"[\\/]", name)[-1]
    name = "".join(" " if unicodedata.category(c) == "Zs" else c for c in name)  # U+3000 etc. → space
    name = "".join(c for c in name if unicodedata.category(c)[0] not in ("C", "Z") or c == " ")
    name = re.sub(r" {2,}", " ", name).strip(" .")
    stem, dot, ext = name.rpartition(".")
    ext = f".{ext.lower()}" if dot else ""
    if ext not in (kind.extension, *kind.aliases):
        stem, ext = name, kind.extension  # keep the whole name, add the extension that fits
    stem = stem.strip(" .") or "attachment"
    return stem[: 255 - len(ext)] + ext


# ---------------------------------------------------------------- storage


def original_path(data_dir: Path, sha256: str) -> Path:
    """data_dir/attachments/ab/cd/abcd…: two levels keep directories small at a million files."""
    return data_dir / "attachments" / sha256[:2] / sha256[2:4] / sha256


def thumbnail_path(data_dir: Path, sha256: str) -> Path:
    return data_dir / "thumbnails" / f"{sha256}.jpg"


def _file_sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _write_atomically(path: Path, content: bytes) -> None:
    """Write to a temp file beside the target, fsync, then rename: readers see all of it or nothing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


def _store_original(data_dir: Path, sha256: str, content: bytes) -> None:
    path = original_path(data_dir, sha256)
    # Deduplication; a stored copy that no longer matches (a disk fault) is healed by this upload.
    if path.exists() and _file_sha256(path) == sha256:
        return
    _write_atomically(path, content)


# ---------------------------------------------------------------- the service


def add_attachment(
    db: Session,
    *,
    actor: User,
    hazard_id: int,
    content: bytes,
    filename: str,
    phase: AttachmentPhase,
    data_dir: Path,
    max_bytes: int,
    now: dt.datetime | None = None,
    max_pixels: int = MAX_PIXELS,
) -> Attachment:
    """Store a photo or PDF for a hazard, with a timeline event and an audit record.

    Files are written before the database row, so a row never points at nothing; if the database
    write fails it is rolled back and the file stays behind, harmless (content-addressed, and used
    again by the next upload of the same bytes).
    """
    authz.require(actor, "hazard.attach")
    hazard = service.get(db, actor=actor, hazard_id=hazard_id)
    if len(content) > max_bytes:
        raise InvalidInput("file", f"the file is larger than the limit of {_human_size(max_bytes)}")
    kind = sniff(content)
    facts = inspect_image(content, kind, max_pixels=max_pixels) if kind.pillow_format else None
    sha256 = hashlib.sha256(content).hexdigest()
    _store_original(data_dir, sha256, content)
    if facts is not None and not thumbnail_path(data_dir, sha256).exists():
        _write_atomically(thumbnail_path(data_dir, sha256), facts.thumbnail)

    now = now or utcnow()
    attachment = Attachment(
        hazard_id=hazard.id,
        sha256=sha256,
        filename=sanitize_filename(filename, kind),
        content_type=kind.content_type,
        size=len(content),
        phase=AttachmentPhase(phase).value,
        width=facts.width if facts else None,
        height=facts.height if facts else None,
        uploaded_by_id=actor.id,
        uploaded_at=now,
    )
    try:
        db.add(attachment)
        db.flush()
        hazard.updated_at = now  # offline clients sync by updated_at; a new photo is a change
        service.add_event(
            db,
            hazard,
            actor=actor,
            kind="attachment",
            at=now,
            note=attachment.filename,
            data={
                "attachment_id": attachment.id,
                "phase": attachment.phase,
                "content_type": attachment.content_type,
                "sha256": sha256,
                "size": attachment.size,
            },
        )
        audit.record(
            db,
            actor=actor,
            action="hazard.attach",
            target_type="hazard",
            target_id=hazard.id,
            after=audit.snapshot(attachment),
            note=f"{attachment.phase}: {attachment.filename}",
        )
        db.commit()
    except Exception:
        db.rollback()
        raise
    return attachment


def list_attachments(db: Session, *, actor: User, hazard_id: int) -> list[Attachment]:
    """A hazard's attachments in upload order (area scope and hazard.read checked by service.get)."""
    service.get(db, actor=actor, hazard_id=hazard_id)
    return list(
        db.scalars(
            select(Attachment)
            .where(Attachment.hazard_id == hazard_id)
            .order_by(Attachment.uploaded_at, Attachment.id)
        )
    )


def get_attachment(db: Session, *, actor: User, attachment_id: int) -> Attachment:
    attachment = db.get(Attachment, attachment_id)
    if attachment is None:
        raise NotFound(f"attachment {attachment_id} not found")
    try:
        service.get(db, actor=actor, hazard_id=attachment.hazard_id)
    except (authz.OutOfScope, NotFound) as exc:
        # Same answer as a missing attachment: whether it exists in another area is not told.
        raise NotFound(f"attachment {attachment_id} not found") from exc
    return attachment


def open_attachment(
    db: Session, *, actor: User, attachment_id: int, data_dir: Path, thumbnail: bool = False
) -> tuple[Path, str, str]:
    """The stored file to send: (path, content type, download filename).

    The original's SHA-256 is checked on every read. Attachments are evidence of a rectification,
    so a file changed on disk must be reported, not served; hashing 10 MB costs ~10 ms, small next
    to sending it. Thumbnails are derived data and are not checked; a missing one is rebuilt from
    the (checked) original.
    """
    attachment = get_attachment(db, actor=actor, attachment_id=attachment_id)
    if thumbnail and not attachment.content_type.startswith("image/"):
        raise NotFound(f"attachment {attachment_id} is a document and has no thumbnail")
    original = _checked_original(attachment, data_dir)
    if not thumbnail:
        return original, attachment.content_type, attachment.filename
    path = thumbnail_path(data_dir, attachment.sha256)
    if not path.exists():
        kind = next((k for k in KINDS if k.content_type == attachment.content_type), None)
        if kind is None or kind.pillow_format is None:
            raise NotFound(f"attachment {attachment_id} has no thumbnail")
        _write_atomically(path, inspect_image(original.read_bytes(), kind).thumbnail)
    stem = attachment.filename.rpartition(".")[0] or attachment.filename
    return path, "image/jpeg", f"{stem}.thumbnail.jpg"


def _checked_original(attachment: Attachment, data_dir: Path) -> Path:
    if not _SHA256.fullmatch(attachment.sha256):
        raise AttachmentDamaged(f"attachment {attachment.id} has no valid checksum on record")
    path = original_path(data_dir, attachment.sha256)
    if not path.is_file():
        log.error("attachment %s: stored file %s is missing", attachment.id, path)
        raise AttachmentDamaged(
            f"the file of attachment {attachment.id} is missing from storage; restore it from backup"
        )
    if _file_sha256(path) != attachment.sha256:
        log.error("attachment %s: stored file %s does not match its SHA-256", attachment.id, path)
        raise AttachmentDamaged(
            f"the stored file of attachment {attachment.id} was changed after upload and is not served; "
            "restore it from backup"
        )
    return path


def _human_size(n: int) -> str:
    mib = 1024 * 1024
    if n >= mib:
        return f"{n / mib:g} MB"
    if n >= 1024:
        return f"{n / 1024:g} KB"
    return f"{n} bytes"
