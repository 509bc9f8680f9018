"""The user-facing string catalogue: zh-CN by default, English complete.

Templates call t("key"); a key missing from a catalogue is a bug that the tests catch,
so the English UI never shows stray Chinese and vice versa.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

from hazardloop.config import SUPPORTED_LANGUAGES


@lru_cache(maxsize=len(SUPPORTED_LANGUAGES))
def catalogue(language: str) -> dict[str, str]:
    path = resources.files("hazardloop.web") / "i18n" / f"{language}.json"
    return json.loads(path.read_text("utf-8"))


def translate(key: str, language: str, **values: object) -> str:
    # An empty translation is a translation ("项" has no English unit); only a missing key falls back.
    text = catalogue(language).get(key)
    if text is None:
        text = catalogue("zh-CN").get(key, key)
    return text.format(**values) if values else text


def pick_language(requested: str | None, fallback: str) -> str:
    return requested if requested in SUPPORTED_LANGUAGES else fallback
