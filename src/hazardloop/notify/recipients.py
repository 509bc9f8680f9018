"""Turn roles, area scopes and named people into channel recipients.

Users are read through auth's service (users_for); only their reachable identifiers are kept
on the outbox row, so a message goes to whom it was meant for at enqueue time.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy.orm import Session

from hazardloop.auth import service as auth_service
from hazardloop.auth.models import User
from hazardloop.notify.channels.base import Recipient


def as_recipient(user: User) -> Recipient:
    return Recipient(name=user.display_name, user_id=user.id, mobile=user.mobile, email=user.email,
                     wecom_userid=user.wecom_userid, feishu_open_id=user.feishu_open_id)


def resolve(db: Session, *, roles: Iterable[str], area_id: int | None, user_ids: Iterable[int] = ()) -> list[Recipient]:
    """Named users first (the responsible person), then everyone with one of `roles` who covers the area."""
    people: dict[int, User] = {}
    for user_id in user_ids:
        user = db.get(User, user_id)
        if user is not None and user.is_active:
            people[user.id] = user
    role_list = sorted(set(roles))
    if role_list:
        for user in auth_service.users_for(db, roles=role_list, area_id=area_id):
            people.setdefault(user.id, user)
    return [as_recipient(u) for u in people.values()]
