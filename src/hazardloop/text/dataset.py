"""Read labelled (or unlabelled) CSV files for training and prediction, checking them first.

Any enterprise export may arrive: GB18030 from an old Excel, a renamed column, a label left
blank. Each problem raises :class:`DatasetError` naming the file, the row (as numbered in a
spreadsheet: header is row 1) and the column, so the person can fix the file.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from hazardloop.text.errors import DatasetError
from hazardloop.text.normalize import MAX_TEXT_CHARS
from hazardloop.text.records import HazardText

#: Joins several text columns into one document; a newline keeps n-grams from spanning columns.
COLUMN_SEPARATOR = "\n"


@dataclass(frozen=True)
class TextTable:
    """The rows of a CSV as documents (text columns joined), with labels where asked for."""

    frame: pd.DataFrame
    texts: list[str]
    labels: list[str] | None


def read_csv(path: str | Path, *, encoding: str = "utf-8") -> pd.DataFrame:
    """Every column as strings, empty cells as ''; raises DatasetError if unreadable."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such file")
    try:
        # utf-8-sig also swallows the BOM that Excel writes in front of UTF-8 CSV files.
        enc = "utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding
        return pd.read_csv(path, dtype=str, keep_default_na=False, encoding=enc)
    except UnicodeDecodeError as exc:
        line = _line_of_offset(path, exc.start)
        raise DatasetError(
            f"{path}: not valid {encoding} text (line {line}, byte {exc.start}); "
            "if it was saved by Excel in China, try --encoding gb18030"
        ) from exc
    except pd.errors.EmptyDataError as exc:
        raise DatasetError(f"{path}: the file is empty (no header row)") from exc
    except (pd.errors.ParserError, csv.Error) as exc:
        raise DatasetError(f"{path}: not a readable CSV file: {exc}") from exc
    except LookupError as exc:
        raise DatasetError(f"unknown encoding {encoding!r}") from exc


def _line_of_offset(path: Path, offset: int) -> int:
    with path.open("rb") as fh:
        return fh.read(offset).count(b"\n") + 1


def load_table(
    path: str | Path,
    *,
    text_columns: Sequence[str],
    label_column: str | None = None,
    encoding: str = "utf-8",
    min_classes: int = 2,
) -> TextTable:
    """Read ``path`` and return its documents (and labels when ``label_column`` is given)."""
    frame = read_csv(path, encoding=encoding)
    return table_from_frame(
        frame, text_columns=text_columns, label_column=label_column, source=str(path), min_classes=min_classes
    )


def table_from_frame(
    frame: pd.DataFrame,
    *,
    text_columns: Sequence[str],
    label_column: str | None = None,
    source: str = "data",
    min_classes: int = 2,
) -> TextTable:
    """Check a frame of strings and build documents; the error messages use ``source`` as the file name."""
    if not text_columns:
        raise DatasetError(f"{source}: name at least one text column")
    wanted = [*text_columns, *([label_column] if label_column else [])]
    missing = [c for c in wanted if c not in frame.columns]
    if missing:
        raise DatasetError(
            f"{source}: missing column(s) {', '.join(missing)}; the file has {', '.join(map(str, frame.columns))}"
        )
    if frame.empty:
        raise DatasetError(f"{source}: the file has a header but no rows")
    parts = frame[list(text_columns)].astype(str)
    texts = parts.agg(COLUMN_SEPARATOR.join, axis=1).tolist() if len(text_columns) > 1 else parts.iloc[:, 0].tolist()
    cols = ", ".join(text_columns)
    for i, text in enumerate(texts):
        if not text.strip():
            raise DatasetError(f"{source}: row {i + 2}: the text column(s) {cols} are empty")
        if len(text) > MAX_TEXT_CHARS:
            raise DatasetError(
                f"{source}: row {i + 2}: text has {len(text)} characters in {cols}; the limit is {MAX_TEXT_CHARS}"
            )
    labels = None
    if label_column:
        labels = [s.strip() for s in frame[label_column].astype(str)]
        for i, label in enumerate(labels):
            if not label:
                raise DatasetError(f"{source}: row {i + 2}: column {label_column} (the label) is empty")
        distinct = sorted(set(labels))
        if len(distinct) < min_classes:
            raise DatasetError(
                f"{source}: column {label_column} has {len(distinct)} distinct label(s) ({', '.join(distinct)}); "
                f"a classifier needs at least {min_classes}"
            )
    return TextTable(frame=frame, texts=texts, labels=labels)


def load_records(
    path: str | Path,
    *,
    text_column: str,
    area_column: str,
    time_column: str,
    id_column: str | None = None,
    encoding: str = "utf-8",
) -> list[HazardText]:
    """Rows of a hazard ledger export as plain records for the duplicate finder and the clusterer.

    ``id_column`` defaults to the spreadsheet row number. Times may be any format pandas reads
    ("2024-03-01", "2024/3/1 08:30"); a row whose time cannot be read is named.
    """
    frame = read_csv(path, encoding=encoding)
    table_from_frame(frame, text_columns=[text_column], source=str(path))
    wanted = [c for c in (area_column, time_column, id_column) if c]
    missing = [c for c in wanted if c not in frame.columns]
    if missing:
        raise DatasetError(
            f"{path}: missing column(s) {', '.join(missing)}; the file has {', '.join(map(str, frame.columns))}"
        )
    records = []
    ids = frame[id_column] if id_column else pd.Series([str(n + 2) for n in range(len(frame))])
    for i, (rid, area, text, raw_time) in enumerate(
        zip(ids, frame[area_column], frame[text_column], frame[time_column], strict=True)
    ):
        if not raw_time.strip():
            raise DatasetError(f"{path}: row {i + 2}: column {time_column} is empty")
        try:
            moment = pd.Timestamp(raw_time.strip()).to_pydatetime()
        except (ValueError, TypeError) as exc:
            raise DatasetError(
                f"{path}: row {i + 2}: column {time_column}: cannot read {raw_time!r} as a time"
            ) from exc
        records.append(HazardText(id=str(rid), area_id=str(area), text=text, reported_at=moment))
    return records
