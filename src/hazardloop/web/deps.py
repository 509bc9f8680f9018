"""Request-scoped dependencies: the database session and the acting user.

A user is recognised by the session cookie (people in a browser) or by an API token in the
Authorization header (machines). Requests that change something with a cookie must come from
our own origin; with SameSite=Lax this closes cross-site request forgery.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, HTTPException, Request
from sqlalchemy.orm import Session

from hazardloop.auth import service as auth_service
from hazardloop.auth.models import User

SESSION_COOKIE = "hl_session"
LANG_COOKIE = "hl_lang"
UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


def get_db(request: Request) -> Iterator[Session]:
    session = request.app.state.session_factory()
    try:
        yield session
    finally:
        session.close()


Db = Annotated[Session, Depends(get_db)]


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return None


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin") or request.headers.get("referer")
    if not origin:
        return True  # non-browser clients; browsers always send Origin on cross-site POSTs
    return urlsplit(origin).netloc == request.headers.get("host", "")


def optional_user(request: Request, db: Db) -> User | None:
    token = _bearer(request)
    if token:
        user = auth_service.resolve_token(db, secret=token)
        if user is None:
            raise HTTPException(status_code=401, detail="invalid or revoked API token")
        return user
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    user = auth_service.resolve_session(db, token=cookie)
    if user is not None and request.method in UNSAFE_METHODS and not _same_origin(request):
        raise HTTPException(status_code=403, detail="cross-site request refused")
    return user


def current_user(user: Annotated[User | None, Depends(optional_user)]) -> User:
    if user is None:
        raise HTTPException(status_code=401, detail="login required", headers={"WWW-Authenticate": "Bearer"})
    return user


Actor = Annotated[User, Depends(current_user)]


def set_session_cookie(request: Request, response, token: str) -> None:  # noqa: ANN001 - any Starlette response
    settings = request.app.state.settings
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=settings.session_hours * 3600,
        httponly=True,
        secure=settings.cookie_secure,
        samesite="lax",
        path="/",
    )
