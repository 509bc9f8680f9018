"""Roles and the permission table (auth/data/permissions.toml)."""

from __future__ import annotations

import enum
import tomllib
from functools import lru_cache
from importlib import resources


class Role(enum.StrEnum):
    ADMIN = "admin"
    SAFETY_MANAGER = "safety_manager"
    SAFETY_OFFICER = "safety_officer"
    RECTIFIER = "rectifier"
    OPERATOR = "operator"
    VIEWER = "viewer"


@lru_cache(maxsize=1)
def permission_table() -> dict[str, frozenset[Role]]:
    raw = tomllib.loads((resources.files("hazardloop.auth") / "data" / "permissions.toml").read_text("utf-8"))
    return {name: frozenset(Role(r) for r in roles) for name, roles in raw["permissions"].items()}


def roles_for(permission: str) -> frozenset[Role]:
    try:
        return permission_table()[permission]
    except KeyError:
        raise KeyError(f"unknown permission {permission!r}; add it to auth/data/permissions.toml") from None
