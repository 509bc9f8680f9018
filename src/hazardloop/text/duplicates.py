"""Exact and near-duplicate hazards, for the duplicate guard of the hazard register.

* Exact: the same words typed twice — equal :func:`~hazardloop.text.normalize.duplicate_key`
  (NFKC, lower case, no spaces/punctuation), in the same area.
* Near: Jaccard similarity of character-shingle sets (2-grams for Chinese, 4-grams otherwise)
  ≥ ``threshold``, same area, reported
  within ``window`` of each other. Character shingles need no word segmentation and tolerate
  the small edits of retyping ("消防通道堵塞" / "消防通道被堵塞了").

Within an area the similarities come from one sparse product (intersection counts), which is
exact and fast for the few thousand open hazards an area holds; MinHash/LSH would be the next
step for hundreds of thousands per area.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
from scipy.sparse import csr_matrix

from hazardloop.text.normalize import char_shingles, duplicate_key
from hazardloop.text.records import HazardText, as_utc, checked

DEFAULT_THRESHOLD = 0.5
DEFAULT_WINDOW = timedelta(days=30)


@dataclass(frozen=True)
class DuplicateMatch:
    """``other_id`` looks like a duplicate of ``id``; ``kind`` is "exact" or "near"."""

    id: str
    other_id: str
    kind: str
    similarity: float


def exact_duplicate_groups(records: Iterable[HazardText], *, same_area: bool = True) -> list[list[str]]:
    """Groups (of two or more ids, in input order) whose texts have the same duplicate key."""
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for r in checked(records):
        groups[(r.area_id if same_area else "", duplicate_key(r.text))].append(r.id)
    return [ids for ids in groups.values() if len(ids) > 1]


def _shingle_matrix(texts: list[str], k: int | None) -> csr_matrix:
    vocab: dict[str, int] = {}
    rows, cols = [], []
    for i, text in enumerate(texts):
        for s in char_shingles(text, k):
            rows.append(i)
            cols.append(vocab.setdefault(s, len(vocab)))
    data = np.ones(len(rows), dtype=np.float32)
    return csr_matrix((data, (rows, cols)), shape=(len(texts), max(len(vocab), 1)))


def near_duplicates(
    records: Iterable[HazardText],
    *,
    threshold: float = DEFAULT_THRESHOLD,
    window: timedelta = DEFAULT_WINDOW,
    k: int | None = None,
) -> list[DuplicateMatch]:
    """Pairs in the same area within ``window`` whose shingle Jaccard is ≥ ``threshold``, best first."""
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    by_area: dict[str, list[HazardText]] = defaultdict(list)
    for r in checked(records):
        by_area[r.area_id].append(r)
    out: list[DuplicateMatch] = []
    for group in by_area.values():
        if len(group) < 2:
            continue
        keys = [duplicate_key(r.text) for r in group]
        m = _shingle_matrix([r.text for r in group], k)
        sizes = np.asarray(m.sum(axis=1)).ravel()
        inter = (m @ m.T).tocoo()
        for i, j, n in zip(inter.row, inter.col, inter.data, strict=True):
            if i >= j:
                continue
            a, b = group[i], group[j]
            if abs(as_utc(a.reported_at) - as_utc(b.reported_at)) > window:
                continue
            jac = float(n / (sizes[i] + sizes[j] - n))
            if jac >= threshold:
                kind = "exact" if keys[i] == keys[j] else "near"
                out.append(DuplicateMatch(a.id, b.id, kind, 1.0 if kind == "exact" else round(jac, 3)))
    return sorted(out, key=lambda d: (-d.similarity, d.id, d.other_id))


def duplicate_guard(
    new: HazardText,
    existing: Iterable[HazardText],
    *,
    threshold: float = DEFAULT_THRESHOLD,
    window: timedelta = DEFAULT_WINDOW,
) -> list[DuplicateMatch]:
    """Existing hazards that the new report probably repeats: what to show before saving it.

    The register asks a person "this looks like H-123, same area, 3 days ago — the same
    hazard?" rather than refusing: two real hazards may read alike.
    """
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    (new,) = checked([new])
    new_key, new_shingles = duplicate_key(new.text), char_shingles(new.text)
    out = []
    # One new report against the area's backlog: n comparisons, not the n² of near_duplicates.
    for old in checked(r for r in existing if r.area_id == new.area_id and r.id != new.id):
        if abs(as_utc(old.reported_at) - as_utc(new.reported_at)) > window:
            continue
        if duplicate_key(old.text) == new_key:
            out.append(DuplicateMatch(new.id, old.id, "exact", 1.0))
            continue
        old_shingles = char_shingles(old.text)
        jac = len(new_shingles & old_shingles) / max(len(new_shingles | old_shingles), 1)
        if jac >= threshold:
            out.append(DuplicateMatch(new.id, old.id, "near", round(jac, 3)))
    return sorted(out, key=lambda d: (-d.similarity, d.other_id))
