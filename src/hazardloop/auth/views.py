"""HTTP routes of people and trust: login, users, API tokens, the audit log."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Query, Request, Response

from hazardloop.auth import audit, service
from hazardloop.auth.models import (
    AuditEventRead,
    LoginRequest,
    TokenCreate,
    TokenRead,
    UserCreate,
    UserRead,
    UserUpdate,
)
from hazardloop.web.deps import SESSION_COOKIE, Actor, Db, set_session_cookie

router = APIRouter(prefix="/api/v1", tags=["auth"])


def _read(user) -> UserRead:  # noqa: ANN001
    return UserRead.model_validate({**audit.snapshot(user), "area_ids": sorted(user.area_ids)})


@router.post("/auth/login", response_model=UserRead)
def login(body: LoginRequest, request: Request, response: Response, db: Db) -> UserRead:
    user = service.authenticate(db, username=body.username, password=body.password)
    if user is None:
        raise HTTPException(status_code=401, detail="wrong username or password")
    token = service.open_session(
        db, user=user, hours=request.app.state.settings.session_hours, user_agent=request.headers.get("user-agent")
    )
    set_session_cookie(request, response, token)
    return _read(user)


@router.post("/auth/logout", status_code=204)
def logout(request: Request, response: Response, db: Db) -> None:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        service.close_session(db, token=token)
    response.delete_cookie(SESSION_COOKIE, path="/")


@router.get("/auth/me", response_model=UserRead)
def me(actor: Actor) -> UserRead:
    return _read(actor)


@router.get("/users", response_model=list[UserRead])
def list_users(actor: Actor, db: Db) -> list[UserRead]:
    return [_read(u) for u in service.list_users(db, actor=actor)]


@router.post("/users", response_model=UserRead, status_code=201)
def create_user(body: UserCreate, actor: Actor, db: Db) -> UserRead:
    return _read(service.create_user(db, actor=actor, data=body))


@router.get("/users/{user_id}", response_model=UserRead)
def get_user(user_id: int, actor: Actor, db: Db) -> UserRead:
    return _read(service.get_user(db, actor=actor, user_id=user_id))


@router.patch("/users/{user_id}", response_model=UserRead)
def update_user(user_id: int, body: UserUpdate, actor: Actor, db: Db) -> UserRead:
    return _read(service.update_user(db, actor=actor, user_id=user_id, data=body))


@router.get("/tokens", response_model=list[TokenRead])
def list_tokens(actor: Actor, db: Db) -> list[TokenRead]:
    return [TokenRead.model_validate(t) for t in service.list_tokens(db, actor=actor)]


@router.post("/tokens", status_code=201)
def create_token(body: TokenCreate, actor: Actor, db: Db) -> dict:
    token, secret = service.create_token(db, actor=actor, user_id=body.user_id, name=body.name)
    return {
        **TokenRead.model_validate(token).model_dump(mode="json"),
        "token": secret,
        "note": "shown once; store it now",
    }


@router.delete("/tokens/{token_id}", response_model=TokenRead)
def revoke_token(token_id: int, actor: Actor, db: Db) -> TokenRead:
    return TokenRead.model_validate(service.revoke_token(db, actor=actor, token_id=token_id))


@router.get("/audit", response_model=list[AuditEventRead])
def list_audit(
    actor: Actor, db: Db, limit: int = Query(100, ge=1, le=1000), before_seq: int | None = Query(None, ge=1)
) -> list[AuditEventRead]:
    events = audit.list_events(db, actor=actor, limit=limit, before_seq=before_seq)
    return [AuditEventRead.model_validate(e) for e in events]


@router.get("/audit/verify")
def verify_audit(actor: Actor, db: Db) -> dict:
    report = audit.verify(db, actor=actor)
    return {"ok": report.ok, "checked": report.checked, "problems": report.problems}
