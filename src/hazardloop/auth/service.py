"""Users, login sessions and API tokens. The only code that touches these tables."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hazardloop.auth import audit, authz
from hazardloop.auth.models import ApiToken, AreaGrant, LoginSession, User, UserCreate, UserUpdate
from hazardloop.auth.passwords import hash_password, needs_rehash, verify_password
from hazardloop.db import utcnow
from hazardloop.errors import Conflict, InvalidInput, NotFound

TOKEN_PREFIX = "hl_"
# A fixed argon2 hash to verify against when the user does not exist, so that a login for an
# unknown name costs the same time as one for a known name (no user enumeration by timing).
_DUMMY_HASH = hash_password("not-a-real-password-0")


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


# ---------------------------------------------------------------- users


def get_user(db: Session, *, actor: User, user_id: int) -> User:
    authz.require(actor, "user.read")
    user = db.get(User, user_id)
    if user is None:
        raise NotFound(f"user {user_id} not found")
    return user


def list_users(db: Session, *, actor: User) -> list[User]:
    authz.require(actor, "user.read")
    return list(db.scalars(select(User).order_by(User.username)))


def people_by_id(db: Session, ids: set[int | None]) -> dict[int, User]:
    """The people a record refers to (responsible person, acceptor…), for showing their names.

    No permission check: whoever may see a hazard may see who is responsible for it, while
    list_users (user.read) stays for administrators.
    """
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    return {u.id: u for u in db.scalars(select(User).where(User.id.in_(wanted)))}


def users_for(db: Session, *, roles: list[str], area_id: int | None) -> list[User]:
    """Active people with one of `roles` who cover `area_id` (all-area users and admins cover every area).

    A read for notify/ to resolve recipients; no actor, because it is the system deciding whom to tell.
    area_id=None asks for everyone with the roles.
    """
    query = select(User).where(User.role.in_(roles), User.is_active.is_(True), User.is_machine.is_(False))
    users = db.scalars(query.order_by(User.id)).all()
    return [u for u in users if area_id is None or authz.can_see_area(u, area_id)]


def _check_area_ids(db: Session, area_ids: list[int]) -> None:
    from hazardloop.plant.models import Area  # plant owns areas; only their ids are checked here

    found = set(db.scalars(select(Area.id).where(Area.id.in_(area_ids))))
    missing = sorted(set(area_ids) - found)
    if missing:
        raise InvalidInput("area_ids", f"unknown area id(s): {', '.join(map(str, missing))}")


def create_user(db: Session, *, actor: User | None, data: UserCreate) -> User:
    """Create a user. actor=None is the bootstrap path (first admin from the CLI or the demo)."""
    if actor is not None:
        authz.require(actor, "user.write")
    if db.scalar(select(User.id).where(User.username == data.username)) is not None:
        raise Conflict(f"username '{data.username}' is taken")
    if not data.is_machine and not data.password:
        raise InvalidInput("password", "a person needs a password (at least 8 characters)")
    _check_area_ids(db, data.area_ids)
    user = User(
        username=data.username,
        display_name=data.display_name,
        role=data.role.value,
        password_hash=hash_password(data.password) if data.password else None,
        all_areas=data.all_areas,
        is_machine=data.is_machine,
        department=data.department,
        is_department_head=data.is_department_head,
        email=data.email,
        mobile=data.mobile,
        wecom_userid=data.wecom_userid,
        feishu_open_id=data.feishu_open_id,
        grants=[AreaGrant(area_id=a) for a in sorted(set(data.area_ids))],
    )
    db.add(user)
    db.flush()
    audit.record(
        db, actor=actor, action="user.create", target_type="user", target_id=user.id, after=_user_snapshot(user)
    )
    db.commit()
    return user


def _user_snapshot(user: User) -> dict:
    data = audit.snapshot(user)
    data["area_ids"] = sorted(user.area_ids)
    return data


def update_user(db: Session, *, actor: User, user_id: int, data: UserUpdate) -> User:
    authz.require(actor, "user.write")
    user = db.get(User, user_id)
    if user is None:
        raise NotFound(f"user {user_id} not found")
    before = _user_snapshot(user)
    changes = data.model_dump(exclude_unset=True)
    if "password" in changes:
        password = changes.pop("password")
        if password:
            user.password_hash = hash_password(password)
    if "area_ids" in changes:
        area_ids = sorted(set(changes.pop("area_ids") or []))
        _check_area_ids(db, area_ids)
        user.grants = [AreaGrant(area_id=a) for a in area_ids]
    if "role" in changes and changes["role"] is not None:
        changes["role"] = changes["role"].value
    if user.id == actor.id and (changes.get("is_active") is False or changes.get("role", user.role) != user.role):
        raise Conflict("you cannot deactivate yourself or change your own role")
    for key, value in changes.items():
        setattr(user, key, value)
    db.flush()
    audit.record(
        db,
        actor=actor,
        action="user.update",
        target_type="user",
        target_id=user.id,
        before=before,
        after=_user_snapshot(user),
    )
    if user.is_active is False:
        for session in db.scalars(select(LoginSession).where(LoginSession.user_id == user.id)):
            db.delete(session)
    db.commit()
    return user


# ---------------------------------------------------------------- login sessions


def authenticate(db: Session, *, username: str, password: str) -> User | None:
    user = db.scalar(select(User).where(User.username == username))
    if user is None or not user.password_hash:
        verify_password(_DUMMY_HASH, password)
        return None
    if not verify_password(user.password_hash, password) or not user.is_active:
        return None
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
        db.commit()
    return user


def open_session(db: Session, *, user: User, hours: int, user_agent: str | None = None) -> str:
    """Start a browser session and return the cookie value (shown once, stored hashed)."""
    token = secrets.token_urlsafe(32)
    db.add(
        LoginSession(
            token_hash=_sha256(token),
            user_id=user.id,
            expires_at=utcnow() + dt.timedelta(hours=hours),
            user_agent=(user_agent or "")[:255],
        )
    )
    audit.record(db, actor=user, action="auth.login", target_type="user", target_id=user.id)
    db.commit()
    return token


def resolve_session(db: Session, *, token: str) -> User | None:
    session = db.scalar(select(LoginSession).where(LoginSession.token_hash == _sha256(token)))
    if session is None:
        return None
    if session.expires_at <= utcnow():
        db.delete(session)
        db.commit()
        return None
    user = db.get(User, session.user_id)
    return user if user is not None and user.is_active else None


def close_session(db: Session, *, token: str) -> None:
    session = db.scalar(select(LoginSession).where(LoginSession.token_hash == _sha256(token)))
    if session is not None:
        user = db.get(User, session.user_id)
        db.delete(session)
        audit.record(db, actor=user, action="auth.logout", target_type="user", target_id=session.user_id)
        db.commit()


# ---------------------------------------------------------------- API tokens


def create_token(db: Session, *, actor: User, user_id: int, name: str) -> tuple[ApiToken, str]:
    """Create a bearer token for a user (usually a machine user); the secret is returned once."""
    authz.require(actor, "token.write")
    user = db.get(User, user_id)
    if user is None:
        raise NotFound(f"user {user_id} not found")
    prefix = secrets.token_hex(4)
    secret = f"{TOKEN_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    token = ApiToken(user_id=user.id, name=name, prefix=prefix, token_hash=_sha256(secret))
    db.add(token)
    try:
        db.flush()
    except IntegrityError as exc:  # a 256-bit collision; report rather than hide
        db.rollback()
        raise Conflict("token collision, try again") from exc
    audit.record(
        db,
        actor=actor,
        action="token.create",
        target_type="api_token",
        target_id=token.id,
        after={"user_id": user.id, "name": name, "prefix": prefix},
    )
    db.commit()
    return token, secret


def list_tokens(db: Session, *, actor: User) -> list[ApiToken]:
    authz.require(actor, "token.write")
    return list(db.scalars(select(ApiToken).order_by(ApiToken.id)))


def revoke_token(db: Session, *, actor: User, token_id: int) -> ApiToken:
    authz.require(actor, "token.write")
    token = db.get(ApiToken, token_id)
    if token is None:
        raise NotFound(f"token {token_id} not found")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        audit.record(db, actor=actor, action="token.revoke", target_type="api_token", target_id=token.id)
        db.commit()
    return token


def resolve_token(db: Session, *, secret: str) -> User | None:
    if not secret.startswith(TOKEN_PREFIX):
        return None
    token = db.scalar(select(ApiToken).where(ApiToken.token_hash == _sha256(secret)))
    if token is None or token.revoked_at is not None:
        return None
    user = db.get(User, token.user_id)
    if user is None or not user.is_active:
        return None
    now = utcnow()
    if token.last_used_at is None or now - token.last_used_at > dt.timedelta(minutes=5):
        token.last_used_at = now  # coarse, so that a busy connector does not write on every request
        db.commit()
    return user
