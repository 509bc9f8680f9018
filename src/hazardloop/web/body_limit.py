"""Refuse an oversized request body before it is read, not after it has been spooled to disk.

The per-file checks (`max_upload_bytes`) run inside the route, and by then Starlette has already
written the whole multipart body to a temporary file: a 5 GB "photo" fills the disk first and is
refused second. This middleware stops a request whose declared Content-Length is over the limit
at once, and one that streams more than the limit (chunked, or lying about its length) as soon as
the excess arrives. The limit is read from the app's settings on every request, so a test or an
operator changing it on a running app is obeyed.
"""

from __future__ import annotations

import json

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: room for multipart boundaries and the small form fields next to the files
MULTIPART_OVERHEAD_BYTES = 1024 * 1024


class RequestTooLarge(HTTPException):
    """HTTP 413. An HTTPException, so FastAPI's body parsing passes it through unchanged."""

    def __init__(self, limit: int):
        super().__init__(status_code=413, detail=too_large_message(limit))


def too_large_message(limit: int) -> str:
    return (
        f"request body larger than the {limit / (1024 * 1024):g} MiB limit "
        f"(max_request_bytes = {limit}); nothing was stored"
    )


def request_limit(scope: Scope) -> int:
    """The limit in force: max_request_bytes, never below one full-size file plus its form."""
    settings = scope["app"].state.settings
    return max(settings.max_request_bytes, settings.max_upload_bytes + MULTIPART_OVERHEAD_BYTES)


class BodyLimit:
    """Pure ASGI middleware (a BaseHTTPMiddleware would buffer the body it is meant to guard)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = request_limit(scope)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _refuse(send, limit)
            return

        received = 0
        response_started = False

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise RequestTooLarge(limit)
            return message

        async def watched_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except RequestTooLarge:
            # Raised where no exception handler sat between the reader and us (a raw stream read).
            if response_started:
                raise
            await _refuse(send, limit)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # malformed: the server rejects it; count the bytes instead
    return None


async def _refuse(send: Send, limit: int) -> None:
    body = json.dumps({"detail": too_large_message(limit)}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
