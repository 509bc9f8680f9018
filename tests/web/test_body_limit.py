"""An oversized request is refused before it is read: nothing spooled, nothing stored, the limit named."""

from __future__ import annotations

import http.client
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).parents[1] / "foundation"))

from world import World, build_world  # noqa: E402

from hazardloop.auth.roles import Role  # noqa: E402
from hazardloop.hazards import service as hazards  # noqa: E402
from hazardloop.hazards.models import Attachment, Hazard, HazardCreate  # noqa: E402
from hazardloop.web.body_limit import MULTIPART_OVERHEAD_BYTES  # noqa: E402

MIB = 1024 * 1024


@pytest.fixture
def world(db) -> World:  # noqa: ANN001
    return build_world(db)


@pytest.fixture
def hazard(db, world: World) -> Hazard:  # noqa: ANN001
    data = HazardCreate(area_id=world.area_a, description="配电箱门未关闭")
    return hazards.create(db, actor=world.users[Role.SAFETY_OFFICER], data=data)


@pytest.fixture
def small_limits(app):  # noqa: ANN001, ANN201
    app.state.settings.max_upload_bytes = 1024
    app.state.settings.max_request_bytes = 2 * MIB
    return 2 * MIB


def test_a_body_declared_larger_than_the_limit_is_refused_with_413_and_nothing_stored(
    client, db, world, hazard, small_limits  # noqa: ANN001
):
    r = client.post(
        f"/api/v1/hazards/{hazard.id}/attachments",
        files={"file": ("big.jpg", b"\xff" * (3 * MIB), "image/jpeg")},
        data={"phase": "before"},
        headers=world.auth(Role.SAFETY_OFFICER),
    )
    assert r.status_code == 413
    assert "max_request_bytes = 2097152" in r.json()["detail"]
    assert db.scalars(select(Attachment)).all() == []


def test_a_body_under_the_limit_reaches_the_route_and_its_own_file_check(client, world, hazard, small_limits):  # noqa: ANN001
    r = client.post(
        f"/api/v1/hazards/{hazard.id}/attachments",
        files={"file": ("big.jpg", b"\xff" * 4096, "image/jpeg")},
        data={"phase": "before"},
        headers=world.auth(Role.SAFETY_OFFICER),
    )
    assert r.status_code == 422  # the per-file limit (1 KB), not the request limit
    assert r.json()["detail"][0]["loc"] == ["body", "file"]


def test_the_request_limit_never_falls_below_one_full_size_file(client, app, world, hazard):  # noqa: ANN001
    app.state.settings.max_upload_bytes = 2 * MIB
    app.state.settings.max_request_bytes = 1  # misconfigured: a single allowed photo must still get through
    r = client.post(
        f"/api/v1/hazards/{hazard.id}/attachments",
        files={"file": ("x.jpg", b"\xff" * (2 * MIB + 10), "image/jpeg")},
        data={"phase": "before"},
        headers=world.auth(Role.SAFETY_OFFICER),
    )
    assert r.status_code == 422  # reached the route: the file is 10 bytes over its own limit
    assert "max_request_bytes" not in r.text


def test_a_chunked_body_without_length_is_cut_off_once_it_passes_the_limit(live_server, db, world, hazard, small_limits):  # noqa: ANN001, E501
    """A real server and a client streaming 16 MiB without Content-Length: 413, where the route would say 422."""
    limit = max(small_limits, 1024 + MULTIPART_OVERHEAD_BYTES)
    boundary = "hazardloopboundary"
    head = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"phase\"\r\n\r\nbefore\r\n"
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.jpg\"\r\n"
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()
    url = urlsplit(live_server)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}", "Transfer-Encoding": "chunked"}
    headers.update(world.auth(Role.SAFETY_OFFICER))
    connection.putrequest("POST", f"/api/v1/hazards/{hazard.id}/attachments")
    for name, value in headers.items():
        connection.putheader(name, value)
    connection.endheaders()
    sent = 0
    chunk = b"\xff" * (256 * 1024)
    try:
        for part in [head] + [chunk] * 64:
            connection.send(b"%x\r\n%s\r\n" % (len(part), part))
            sent += len(part)
        connection.send(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server answered and closed while we were still sending: what we want
    response = connection.getresponse()
    assert response.status == 413
    assert b"max_request_bytes" in response.read()
    assert sent >= limit  # it did stream past the limit before being stopped
    connection.close()
    db.expire_all()
    assert db.scalars(select(Attachment)).all() == []
