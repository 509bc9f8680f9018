"""Text normalisation shared by the classifier, the duplicate finder and the clusterer.

Inspectors type on phones: full-width digits and letters, stray spaces, mixed punctuation
("灭火器过期两个，重新置换 " vs "灭火器过期两个,重新置换"). NFKC folds full-width forms into
their ASCII twins, so the same hazard typed twice gives the same key.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

from hazardloop.text.errors import TextInputError

#: Longest text accepted. A hazard description is a few hundred characters; an OSHA
#: narrative a few thousand. Anything beyond this is almost certainly a pasted file.
MAX_TEXT_CHARS = 20_000

_SPACE = re.compile(r"\s+")
_CJK = re.compile(r"[\u3400-\u9fff]")
# Unicode categories P* (punctuation) and S* (symbols) are removed from the duplicate key.
_DROP_CATEGORIES = ("P", "S")


def check_text(text: object, *, where: str = "text") -> str:
    """Return ``text`` if it is usable, else raise :class:`TextInputError` naming ``where``."""
    if not isinstance(text, str):
        raise TextInputError(f"{where}: expected a string, got {type(text).__name__}")
    if len(text) > MAX_TEXT_CHARS:
        raise TextInputError(f"{where}: text has {len(text)} characters; the limit is {MAX_TEXT_CHARS}")
    if not text.strip():
        raise TextInputError(f"{where}: text is empty")
    return text


def normalize(text: str) -> str:
    """NFKC-fold, lower-case and collapse whitespace; keeps punctuation (it carries meaning for models)."""
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", text)).strip().lower()


def compact(text: str) -> str:
    """Normalised text without whitespace, punctuation or symbols: what stays when typing noise goes."""
    folded = normalize(text)
    return "".join(ch for ch in folded if not ch.isspace() and unicodedata.category(ch)[0] not in _DROP_CATEGORIES)


def duplicate_key(text: str) -> str:
    """A short stable hash of :func:`compact` text: equal keys mean the same words typed twice."""
    return hashlib.sha1(compact(text).encode("utf-8")).hexdigest()[:16]


def shingle_size(text: str) -> int:
    """2 for text with Chinese characters (a 2-character piece is already a word), else 4."""
    return 2 if _CJK.search(text) else 4


def char_shingles(text: str, k: int | None = None) -> set[str]:
    """The set of overlapping k-character pieces of the compact text (whole text if shorter).

    ``k=None`` picks :func:`shingle_size`: short Chinese reports differ by one or two
    characters ("未接地" / "没有接地"), and 3-grams would make such retypes look unrelated.
    """
    body = compact(text)
    k = k or shingle_size(body)
    if len(body) <= k:
        return {body} if body else set()
    return {body[i : i + k] for i in range(len(body) - k + 1)}
