"""Human verdicts on suggestions, kept as labels for retraining and for an accuracy metric.

Every time a person confirms or changes a suggestion we keep (text, suggested, confirmed,
model_version, at). Until the hazard register stores them in its tables, they are appended to
a JSON Lines file under a data directory: one line per verdict, flushed and fsynced before
returning (ARCHITECTURE §7: no lost data), never rewritten.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from hazardloop.text.errors import DatasetError
from hazardloop.text.normalize import check_text

LABELS_FILE = "text_labels.jsonl"
FIELDS = ("category", "accident_type", "level")


@dataclass(frozen=True)
class Label:
    """One human verdict on one suggestion."""

    text: str
    suggested: str
    confirmed: str
    model_version: str
    at: datetime
    field: str = "category"  # which suggestion: category, accident_type or level
    hazard_id: str = ""
    person: str = ""

    @property
    def accepted(self) -> bool:
        return self.suggested == self.confirmed


def labels_path(data_dir: str | Path) -> Path:
    return Path(data_dir) / LABELS_FILE


def record_label(data_dir: str | Path, label: Label) -> Path:
    """Append ``label`` durably to the store under ``data_dir``; returns the file."""
    check_text(label.text, where="label text")
    if label.field not in FIELDS:
        raise ValueError(f"label field must be one of {', '.join(FIELDS)}, got {label.field!r}")
    if not label.confirmed.strip():
        raise ValueError("the confirmed value is empty; a verdict must name the right answer")
    path = labels_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps({**asdict(label), "at": label.at.isoformat()}, ensure_ascii=False)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(line + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    return path


def read_labels(path: str | Path, *, field: str | None = None) -> list[Label]:
    """All labels in a JSONL file (optionally of one field); bad lines are reported by number."""
    path = Path(path)
    if path.is_dir():
        path = labels_path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such labels file")
    out = []
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                rec["at"] = datetime.fromisoformat(rec["at"])
                label = Label(**rec)
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                raise DatasetError(f"{path}: line {n}: not a label record ({exc})") from exc
            if field is None or label.field == field:
                out.append(label)
    return out


@dataclass(frozen=True)
class AccuracyPoint:
    period: str  # "2024-03" for monthly
    model_version: str
    n: int
    accepted: int

    @property
    def accuracy(self) -> float:
        return self.accepted / self.n if self.n else float("nan")


def accuracy_over_time(
    labels: Iterable[Label], *, field: str = "category", period: str = "month", by_model: bool = True
) -> list[AccuracyPoint]:
    """Share of suggestions a person accepted unchanged, per period (and model version).

    This is the suggestion-accuracy metric the cockpit shows: it measures the model where it
    matters (on the hazards people actually report), and a drop tells when to retrain.
    """
    formats = {"day": "%Y-%m-%d", "week": "%G-W%V", "month": "%Y-%m", "quarter": None}
    if period not in formats:
        raise ValueError(f"period must be one of {', '.join(formats)}")
    counts: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for label in labels:
        if label.field != field:
            continue
        fmt = formats[period]
        key = label.at.strftime(fmt) if fmt else f"{label.at.year}-Q{(label.at.month - 1) // 3 + 1}"
        slot = counts[(key, label.model_version if by_model else "")]
        slot[0] += 1
        slot[1] += int(label.accepted)
    return [AccuracyPoint(p, v, n, a) for (p, v), (n, a) in sorted(counts.items())]
