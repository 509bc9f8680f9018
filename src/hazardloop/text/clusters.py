"""Recurring hazards: group reports by text within an area and name each group for the cockpit.

"消防器材过期 — 仓储区 — 每月复发" tells a manager that a fix is not holding, which a list of
forty separate reports does not. Per area, texts become character 2-4-gram TF-IDF vectors and
DBSCAN (cosine) groups those that sit close together; DBSCAN needs no cluster count and
leaves one-off reports unclustered. The name is the most shared n-grams of the group; the
recurrence comes from the typical gap between reports.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from sklearn.cluster import DBSCAN
from sklearn.feature_extraction.text import TfidfVectorizer

from hazardloop.text.normalize import compact
from hazardloop.text.records import HazardText, checked


@dataclass(frozen=True)
class HazardCluster:
    name: str  # "灭火器过期 — 仓储区 — 每月复发"
    terms: tuple[str, ...]
    area_id: str
    ids: tuple[str, ...]
    first: datetime
    last: datetime
    recurrence: str  # 每日 / 每周 / 每月 / 每季度 / 偶发 (zh) — see :func:`recurrence`


def recurrence(times: list[datetime]) -> str:
    """A word for how often reports come back: the median gap between distinct report days."""
    days = sorted({t.date() for t in times})
    if len(days) < 2:
        return "单日集中"
    gap = float(np.median(np.diff([d.toordinal() for d in days])))
    if gap <= 1.5:
        return "每日复发"
    if gap <= 10:
        return "每周复发"
    if gap <= 45:
        return "每月复发"
    if gap <= 120:
        return "每季度复发"
    return "偶发"


def cluster_terms(texts: list[str], n_terms: int = 2) -> tuple[str, ...]:
    """Character n-grams (2-6) shared by most texts; longer ones win, their pieces are dropped."""
    df: Counter[str] = Counter()
    for text in texts:
        body = compact(text)
        df.update({body[i : i + n] for n in range(2, 7) for i in range(len(body) - n + 1)})
    if not df:
        return ()
    floor = max(2, int(0.4 * len(texts)))
    common = [(g, c) for g, c in df.items() if c >= floor] or df.most_common(1)
    ranked = sorted(common, key=lambda gc: (-gc[1] * len(gc[0]) ** 1.5, gc[0]))
    chosen: list[str] = []
    for gram, _ in ranked:
        if any(gram in c or c in gram for c in chosen):
            continue
        chosen.append(gram)
        if len(chosen) == n_terms:
            break
    return tuple(chosen)


def cluster_hazards(
    records: Iterable[HazardText],
    *,
    area_names: dict[str, str] | None = None,
    min_size: int = 3,
    max_distance: float = 0.6,
) -> list[HazardCluster]:
    """Named clusters of at least ``min_size`` similar reports per area, largest first."""
    area_names = area_names or {}
    by_area: dict[str, list[HazardText]] = defaultdict(list)
    for r in checked(records):
        by_area[r.area_id].append(r)
    out: list[HazardCluster] = []
    for area, group in by_area.items():
        if len(group) < min_size:
            continue
        vec = TfidfVectorizer(analyzer="char", ngram_range=(2, 4), sublinear_tf=True, preprocessor=compact)
        try:
            matrix = vec.fit_transform([r.text for r in group])
        except ValueError:  # every text shorter than 2 characters: nothing to compare
            continue
        labels = DBSCAN(eps=max_distance, min_samples=min_size, metric="cosine").fit_predict(matrix)
        for label in sorted(set(labels) - {-1}):
            members = [r for r, lab in zip(group, labels, strict=True) if lab == label]
            terms = cluster_terms([r.text for r in members])
            times = [r.reported_at for r in members]
            rec = recurrence(times)
            place = area_names.get(area, area)
            out.append(
                HazardCluster(
                    name=f"{''.join(terms[:1]) + ('·' + terms[1] if len(terms) > 1 else '')} — {place} — {rec}",
                    terms=terms,
                    area_id=area,
                    ids=tuple(r.id for r in members),
                    first=min(times),
                    last=max(times),
                    recurrence=rec,
                )
            )
    return sorted(out, key=lambda c: (-len(c.ids), c.name))
