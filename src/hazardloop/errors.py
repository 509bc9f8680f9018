"""Errors that services raise and the web layer turns into HTTP answers.

Each carries a message a user can act on; row-level import problems carry every bad row,
so a person fixes the whole file in one pass instead of one error at a time.
"""

from __future__ import annotations

from dataclasses import dataclass


class NotFound(LookupError):
    """HTTP 404."""


class Conflict(Exception):
    """HTTP 409: the request contradicts stored state (duplicate key, wrong state)."""


class InvalidInput(ValueError):
    """HTTP 422 with a field name."""

    def __init__(self, field: str, message: str):
        self.field, self.message = field, message
        super().__init__(f"{field}: {message}")


@dataclass(frozen=True)
class RowError:
    row: int  # 1-based row number as the user sees it in the file (header is row 1)
    field: str
    message: str

    def __str__(self) -> str:
        return f"row {self.row}, {self.field}: {self.message}"


class ImportRejected(ValueError):
    """A file import where some rows are bad; nothing was stored."""

    def __init__(self, errors: list[RowError]):
        self.errors = errors
        shown = "; ".join(str(e) for e in errors[:5])
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        super().__init__(f"{len(errors)} bad row(s), nothing imported: {shown}{more}")
