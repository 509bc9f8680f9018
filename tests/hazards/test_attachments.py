"""Attachments: what a person uploading a photo or PDF, and a person looking at it later, would notice."""

from __future__ import annotations

import io
import sys
import zipfile
import zlib
from pathlib import Path

import pytest
from PIL import ExifTags, Image
from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).parents[1] / "foundation"))

from world import World, build_world  # noqa: E402

from hazardloop.auth import audit  # noqa: E402
from hazardloop.auth import service as auth_service  # noqa: E402
from hazardloop.auth.models import AuditEvent, UserCreate  # noqa: E402
from hazardloop.auth.roles import Role  # noqa: E402
from hazardloop.errors import InvalidInput  # noqa: E402
from hazardloop.hazards import attachments  # noqa: E402
from hazardloop.hazards import service as hazards  # noqa: E402
from hazardloop.hazards.models import Attachment, AttachmentPhase, Hazard, HazardCreate  # noqa: E402

GPS = {
    ExifTags.GPS.GPSLatitudeRef: "N",
    ExifTags.GPS.GPSLatitude: (31.0, 14.0, 5.5),
    ExifTags.GPS.GPSLongitudeRef: "E",
    ExifTags.GPS.GPSLongitude: (121.0, 28.0, 12.25),
}


# ---------------------------------------------------------------- the world and the files


@pytest.fixture
def attach_world(db) -> World:  # noqa: ANN001
    return build_world(db)


@pytest.fixture
def hazard(db, attach_world: World) -> Hazard:  # noqa: ANN001
    officer = attach_world.users[Role.SAFETY_OFFICER]
    data = HazardCreate(area_id=attach_world.area_a, description="配电箱门未关闭")
    return hazards.create(db, actor=officer, data=data)


def sideways_photo() -> bytes:
    """A 400×200 JPEG as the sensor stored it, red on the left, blue on the right, with EXIF
    Orientation=6 (the phone was held upright: displayed 200×400, red on top) and a GPS position."""
    image = Image.new("RGB", (400, 200), "blue")
    image.paste((255, 0, 0), (0, 0, 200, 200))
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    exif[ExifTags.IFD.GPSInfo] = GPS
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=90, exif=exif.tobytes())
    return out.getvalue()


def encoded(fmt: str, size: tuple[int, int] = (64, 48), mode: str = "RGB", **params: object) -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, (0, 128, 0, 128) if mode == "RGBA" else (0, 128, 0)).save(out, format=fmt, **params)
    return out.getvalue()


def noisy_jpeg() -> bytes:
    """A JPEG with enough entropy that cutting it in half leaves a truncated scan, not an empty one."""
    import random

    rng = random.Random(6)
    image = Image.frombytes("RGB", (300, 200), bytes(rng.getrandbits(8) for _ in range(300 * 200 * 3)))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=90)
    return out.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width×height: the shape of a decompression bomb."""
    data = bytearray(encoded("PNG", (10, 10)))
    data[16:24] = width.to_bytes(4, "big") + height.to_bytes(4, "big")
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")  # IHDR CRC covers type + data
    return bytes(data)


def small_pdf() -> bytes:
    return b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\n" \
        b"trailer<</Root 1 0 R>>\n%%EOF\n"


def a_zip() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("a.txt", "hello")
    return out.getvalue()


def upload(client, world: World, hazard_id: int, content: bytes, filename: str = "照片.jpg",  # noqa: ANN001
           phase: str = "before", role: Role = Role.SAFETY_OFFICER, content_type: str = "image/jpeg"):  # noqa: ANN201
    return client.post(
        f"/api/v1/hazards/{hazard_id}/attachments",
        files={"file": (filename, content, content_type)},
        data={"phase": phase},
        headers=world.auth(role),
    )


def stored_files(data_dir: Path) -> list[Path]:
    root = data_dir / "attachments"
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


# ---------------------------------------------------------------- photos kept as evidence


def test_the_stored_photo_is_the_uploaded_original_with_orientation_and_gps(client, attach_world, hazard, settings):  # noqa: ANN001
    photo = sideways_photo()
    r = upload(client, attach_world, hazard.id, photo)
    assert r.status_code == 201, r.text
    body = r.json()
    stored = attachments.original_path(settings.data_dir, body["sha256"])
    assert stored.read_bytes() == photo
    exif = Image.open(stored).getexif()
    assert exif[ExifTags.Base.Orientation] == 6
    assert exif.get_ifd(ExifTags.IFD.GPSInfo)[ExifTags.GPS.GPSLatitudeRef] == "N"
    assert (body["width"], body["height"]) == (200, 400)  # as a person sees it, upright


def test_the_thumbnail_is_upright_small_and_carries_no_exif(client, attach_world, hazard):  # noqa: ANN001
    attachment_id = upload(client, attach_world, hazard.id, sideways_photo()).json()["id"]
    r = client.get(f"/api/v1/attachments/{attachment_id}/thumbnail", headers=attach_world.auth(Role.VIEWER))
    assert r.status_code == 200
    assert r.headers["content-type"] == "image/jpeg"
    thumb = Image.open(io.BytesIO(r.content))
    assert thumb.size == (160, 320)
    red, blue = thumb.getpixel((80, 40)), thumb.getpixel((80, 280))
    assert red[0] > 200 and red[2] < 60, "the left of the sensor image is the top of the photo"
    assert blue[2] > 200 and blue[0] < 60
    assert not thumb.getexif()
    assert "exif" not in thumb.info


def test_the_same_photo_uploaded_twice_is_stored_once_with_two_records(client, attach_world, hazard, settings):  # noqa: ANN001
    photo = sideways_photo()
    first = upload(client, attach_world, hazard.id, photo, phase="before").json()
    second = upload(client, attach_world, hazard.id, photo, phase="after").json()
    assert first["id"] != second["id"] and first["sha256"] == second["sha256"]
    assert len(stored_files(settings.data_dir)) == 1
    listed = client.get(f"/api/v1/hazards/{hazard.id}/attachments", headers=attach_world.auth(Role.VIEWER)).json()
    assert [a["phase"] for a in listed] == ["before", "after"]


@pytest.mark.parametrize(
    ("fmt", "mode", "content_type"),
    [("PNG", "RGBA", "image/png"), ("WEBP", "RGB", "image/webp"), ("JPEG", "CMYK", "image/jpeg")],
)
def test_png_webp_and_cmyk_photos_are_accepted_with_thumbnails(client, attach_world, hazard, fmt, mode, content_type):  # noqa: ANN001, E501
    content = encoded(fmt, mode=mode)
    r = upload(client, attach_world, hazard.id, content, filename="x.bin", content_type="application/octet-stream")
    assert r.status_code == 201, r.text
    assert r.json()["content_type"] == content_type
    thumb = client.get(r.json()["thumbnail_url"], headers=attach_world.auth(Role.VIEWER))
    assert thumb.status_code == 200 and Image.open(io.BytesIO(thumb.content)).format == "JPEG"


# ---------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("content", "filename", "says"),
    [
        (b"<!DOCTYPE html><html><script>alert(1)</script></html>", "photo.jpg", "not accepted"),
        (b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>', "logo.svg", "not accepted"),
        (a_zip(), "photo.jpg", "not accepted"),
        (b"MZ\x90\x00" + b"\x00" * 200, "photo.jpg", "not accepted"),
        (encoded("GIF"), "anim.gif", "not accepted"),
        (b"", "empty.jpg", "empty"),
        (noisy_jpeg()[:6000], "cut.jpg", "damaged"),
        (b"\xff\xd8\xff\xe0<html>not really</html>", "fake.jpg", "damaged"),
        (b"%PDF-1.7\n1 0 obj<<>>endobj\n", "cut.pdf", "incomplete"),
    ],
    ids=["html-as-jpg", "svg", "zip", "exe", "gif", "empty", "truncated-jpeg", "jpeg-magic-then-html", "cut-pdf"],
)
def test_files_that_are_not_what_they_claim_are_refused_and_nothing_is_kept(  # noqa: ANN001
    client, attach_world, hazard, settings, db, content, filename, says  # noqa: ANN001
):
    r = upload(client, attach_world, hazard.id, content, filename=filename)
    assert r.status_code == 422
    error = r.json()["detail"][0]
    assert error["loc"] == ["body", "file"]
    assert says in error["msg"]
    assert stored_files(settings.data_dir) == []
    assert db.scalars(select(Attachment)).all() == []


def test_an_oversized_upload_is_refused_naming_the_limit(client, app, attach_world, hazard, settings):  # noqa: ANN001
    app.state.settings.max_upload_bytes = 16 * 1024
    r = upload(client, attach_world, hazard.id, noisy_jpeg())
    assert r.status_code == 422
    assert "16 KB" in r.json()["detail"][0]["msg"]
    assert stored_files(settings.data_dir) == []


def test_an_image_with_more_pixels_than_the_limit_is_refused_before_decoding(client, attach_world, hazard):  # noqa: ANN001
    r = upload(client, attach_world, hazard.id, png_claiming(9000, 9000), filename="big.png")
    assert r.status_code == 422
    assert r.json()["detail"][0]["msg"].startswith("the image is 9000×9000 pixels (81 MP), more than the limit")


def test_a_decompression_bomb_is_refused(client, attach_world, hazard):  # noqa: ANN001
    r = upload(client, attach_world, hazard.id, png_claiming(40000, 40000), filename="bomb.png")
    assert r.status_code == 422
    assert "too large to process safely" in r.json()["detail"][0]["msg"]


def test_heic_without_a_decoder_is_refused_with_what_to_do(db, attach_world, hazard, settings):  # noqa: ANN001
    heic = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64
    if "HEIF" in Image.OPEN:
        pytest.skip("a HEIF plugin is installed here")
    with pytest.raises(InvalidInput, match="JPEG"):
        attachments.add_attachment(db, actor=attach_world.users[Role.SAFETY_OFFICER], hazard_id=hazard.id,
                                   content=heic, filename="IMG_0001.HEIC", phase=AttachmentPhase.BEFORE,
                                   data_dir=settings.data_dir, max_bytes=10_000_000)


# ---------------------------------------------------------------- PDFs


def test_a_pdf_is_accepted_downloaded_as_a_file_and_has_no_thumbnail(client, attach_world, hazard):  # noqa: ANN001
    r = upload(client, attach_world, hazard.id, small_pdf(), filename="治理方案.pdf", phase="plan",
               content_type="image/jpeg")  # the declared type is ignored
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["content_type"] == "application/pdf" and body["thumbnail_url"] is None
    assert body["width"] is None
    download = client.get(body["url"], headers=attach_world.auth(Role.VIEWER))
    assert download.status_code == 200 and download.content == small_pdf()
    assert download.headers["content-type"] == "application/pdf"
    assert download.headers["content-disposition"].startswith("attachment;")
    assert client.get(f"{body['url']}/thumbnail", headers=attach_world.auth(Role.VIEWER)).status_code == 404


# ---------------------------------------------------------------- download


def test_a_download_has_the_sniffed_type_nosniff_and_the_chinese_filename(client, attach_world, hazard):  # noqa: ANN001
    r = upload(client, attach_world, hazard.id, sideways_photo(), filename="整改前.jpg", content_type="text/html")
    download = client.get(r.json()["url"], headers=attach_world.auth(Role.VIEWER))
    assert download.status_code == 200
    assert download.headers["content-type"] == "image/jpeg"
    assert download.headers["x-content-type-options"] == "nosniff"
    disposition = download.headers["content-disposition"]
    assert disposition.startswith("inline;")
    assert "filename*=UTF-8''%E6%95%B4%E6%94%B9%E5%89%8D.jpg" in disposition


def test_the_filename_loses_paths_and_invisible_characters_and_gets_a_fitting_extension(client, attach_world, hazard):  # noqa: ANN001, E501
    r = upload(client, attach_world, hazard.id, sideways_photo(), filename="..\\..\\C:/tmp/配电箱\u202egpj.exe")
    assert r.json()["filename"] == "配电箱gpj.exe.jpg"


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("整改后 照片.JPEG", "整改后 照片.jpeg"),
        ("/etc/passwd", "passwd.jpg"),
        ("a\x00b\x1f\tc.jpg", "abc.jpg"),
        ("配电箱\u3000门.jpg", "配电箱 门.jpg"),
        ("", "attachment.jpg"),
        ("x" * 400 + ".jpg", "x" * 251 + ".jpg"),
    ],
)
def test_filenames_are_cleaned_but_keep_chinese(given, kept):  # noqa: ANN001
    assert attachments.sanitize_filename(given, attachments.JPEG) == kept


def test_a_stored_file_changed_after_upload_is_not_served(client, attach_world, hazard, settings):  # noqa: ANN001
    body = upload(client, attach_world, hazard.id, sideways_photo()).json()
    stored = attachments.original_path(settings.data_dir, body["sha256"])
    stored.chmod(0o600)
    stored.write_bytes(sideways_photo() + b"tampered")
    r = client.get(body["url"], headers=attach_world.auth(Role.VIEWER))
    assert r.status_code == 404
    assert "changed after upload" in r.json()["detail"]


def test_a_lost_thumbnail_is_rebuilt_from_the_original(client, attach_world, hazard, settings):  # noqa: ANN001
    body = upload(client, attach_world, hazard.id, sideways_photo()).json()
    attachments.thumbnail_path(settings.data_dir, body["sha256"]).unlink()
    r = client.get(body["thumbnail_url"], headers=attach_world.auth(Role.VIEWER))
    assert r.status_code == 200 and Image.open(io.BytesIO(r.content)).size == (160, 320)


# ---------------------------------------------------------------- who may


def test_a_user_without_the_area_sees_neither_the_list_nor_the_file(client, db, attach_world, hazard):  # noqa: ANN001
    attachment = upload(client, attach_world, hazard.id, sideways_photo()).json()
    outsider = auth_service.create_user(
        db, actor=attach_world.admin,
        data=UserCreate(username="boiler_officer", display_name="锅炉房安全员", role=Role.SAFETY_OFFICER,
                        password="correct-horse-9", area_ids=[attach_world.area_b]),
    )
    _, token = auth_service.create_token(db, actor=attach_world.admin, user_id=outsider.id, name="test")
    auth = {"Authorization": f"Bearer {token}"}
    assert client.get(f"/api/v1/hazards/{hazard.id}/attachments", headers=auth).status_code == 404
    assert client.get(attachment["url"], headers=auth).status_code == 404
    assert client.get(attachment["thumbnail_url"], headers=auth).status_code == 404
    r = client.post(f"/api/v1/hazards/{hazard.id}/attachments", headers=auth,
                    files={"file": ("a.jpg", sideways_photo(), "image/jpeg")}, data={"phase": "before"})
    assert r.status_code == 404


def test_a_viewer_may_look_but_not_upload(client, attach_world, hazard):  # noqa: ANN001
    r = upload(client, attach_world, hazard.id, sideways_photo(), role=Role.VIEWER)
    assert r.status_code == 403
    assert "hazard.attach" in r.json()["detail"]


# ---------------------------------------------------------------- records


def test_an_upload_shows_on_the_timeline_and_in_the_audit_log(client, db, attach_world, hazard):  # noqa: ANN001
    attachment = upload(client, attach_world, hazard.id, sideways_photo(), filename="整改前.jpg").json()
    timeline = client.get(f"/api/v1/hazards/{hazard.id}/timeline", headers=attach_world.auth(Role.VIEWER)).json()
    event = timeline[-1]
    assert event["kind"] == "attachment" and event["note"] == "整改前.jpg"
    assert event["data"]["attachment_id"] == attachment["id"] and event["data"]["phase"] == "before"
    logged = db.scalars(select(AuditEvent).where(AuditEvent.action == "hazard.attach")).all()
    assert len(logged) == 1 and logged[0].after["sha256"] == attachment["sha256"]
    assert audit.verify(db).ok


def test_a_failed_database_write_leaves_no_attachment_row(db, attach_world, hazard, settings, monkeypatch):  # noqa: ANN001
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("database went away")

    monkeypatch.setattr(attachments.audit, "record", broken)
    with pytest.raises(RuntimeError):
        attachments.add_attachment(db, actor=attach_world.users[Role.SAFETY_OFFICER], hazard_id=hazard.id,
                                   content=sideways_photo(), filename="a.jpg", phase=AttachmentPhase.BEFORE,
                                   data_dir=settings.data_dir, max_bytes=10_000_000)
    assert db.scalars(select(Attachment)).all() == []
    assert [e.kind for e in hazards.timeline(db, actor=attach_world.admin, hazard_id=hazard.id)] == ["transition"]
