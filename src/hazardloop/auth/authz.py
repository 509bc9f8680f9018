"""Authorisation checks, called by services (not only routes) so that every entry point is covered."""

from __future__ import annotations

from hazardloop.auth.models import User
from hazardloop.auth.roles import Role, roles_for


class PermissionDenied(Exception):
    """The actor's role may not do this at all (HTTP 403)."""

    def __init__(self, permission: str, role: str):
        self.permission, self.role = permission, role
        allowed = ", ".join(sorted(r.value for r in roles_for(permission)))
        super().__init__(f"role '{role}' may not {permission}; allowed roles: {allowed}")


class OutOfScope(LookupError):
    """The object lies in an area the actor was not granted. Answered as 'not found' so nothing leaks."""


def has_permission(actor: User, permission: str) -> bool:
    return actor.is_active and Role(actor.role) in roles_for(permission)


def require(actor: User, permission: str) -> None:
    if not has_permission(actor, permission):
        raise PermissionDenied(permission, actor.role)


def can_see_area(actor: User, area_id: int | None) -> bool:
    if actor.sees_all_areas:
        return True
    return area_id is not None and area_id in actor.area_ids


def require_area(actor: User, area_id: int | None, what: str = "object") -> None:
    if not can_see_area(actor, area_id):
        raise OutOfScope(f"{what} not found")


def visible_area_ids(actor: User) -> set[int] | None:
    """None means every area; otherwise the granted ones."""
    return None if actor.sees_all_areas else actor.area_ids
