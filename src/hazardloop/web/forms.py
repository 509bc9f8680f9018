"""Plain HTML forms for the admin screens: a field list as data, read back into values and errors.

A form is described once (FormField) and used twice: the template draws each field with its label
bound to the input and its error beside it, and `read` turns the posted form into the values a
service schema takes. Errors are "i18n-key|detail" strings (as the alarm console's refusals), so
the lead sentence is translated and the service's own precise message (which names the field and
the limit) is shown after it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from hazardloop.errors import InvalidInput

FORM_ERROR = "_form"  # errors that belong to no single field


@dataclass(frozen=True)
class FormField:
    name: str
    label: str  # i18n key
    kind: str = "text"  # text | number | select | checkbox | checkboxes | textarea | password | email | url
    required: bool = False
    options: tuple[tuple[str, str], ...] = ()  # (value, label): an i18n key if `translate`, else shown as is
    translate: bool = False
    step: str = "any"
    help: str | None = None  # i18n key
    secret: bool = False  # never shown back; left blank it keeps the stored value
    attrs: Mapping[str, str] = field(default_factory=dict)  # e.g. maxlength, autocomplete


def _number(raw: str) -> float:
    value = float(raw)
    if not math.isfinite(value):
        raise ValueError(raw)
    return value


def read(fields: Iterable[FormField], form: Any) -> tuple[dict[str, Any], dict[str, str]]:  # noqa: ANN401 - FormData
    """The posted values by field (blank → None, numbers as floats) and the errors found so far."""
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for f in fields:
        if f.kind == "checkbox":
            values[f.name] = form.get(f.name) in ("on", "true", "1")
            continue
        if f.kind == "checkboxes":
            values[f.name] = [int(v) for v in form.getlist(f.name) if str(v).isdigit()]
            continue
        raw = str(form.get(f.name) or "").strip()
        if not raw:
            values[f.name] = None
            if f.required and not f.secret:
                errors[f.name] = "form.required|"
            continue
        if f.kind == "number":
            try:
                values[f.name] = _number(raw)
            except ValueError:
                values[f.name] = raw
                errors[f.name] = "form.not_a_number|"
            continue
        values[f.name] = raw
    return values, errors


def pydantic_errors(exc: ValidationError) -> dict[str, str]:
    """A schema's refusals by field; the first one per field is enough to fix it."""
    errors: dict[str, str] = {}
    for e in exc.errors():
        loc = [str(part) for part in e.get("loc", ())]
        name = loc[0] if loc else FORM_ERROR
        errors.setdefault(name, f"form.invalid|{e.get('msg', '')}")
    return errors


def service_error(exc: InvalidInput) -> dict[str, str]:
    return {exc.field: f"form.invalid|{exc.message}"}


def shown(values: Mapping[str, Any], name: str) -> str:
    """A value as it goes back into an input: blank for None, 5 rather than 5.0."""
    value = values.get(name)
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
