"""``hazardloop text …``: train and apply text models on any labelled CSV, and suggest for one text.

Thin by design (ARCHITECTURE §3): parse, call the text library, print with Rich. Errors in
the input are printed as one line naming the file/row/column, with exit code 2.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from hazardloop.text.errors import TextError

# The library (scikit-learn, pandas) is imported inside each command: the main `hazardloop`
# command registers this app, and `hazardloop db upgrade` should not wait for scikit-learn.

text_app = typer.Typer(
    help="Hazard text: category / accident type / level suggestions, train and predict.", no_args_is_help=True
)
out = Console()
err = Console(stderr=True)

P = ParamSpec("P")
R = TypeVar("R")


def _friendly(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn the text domain's errors into one red line and exit code 2, not a traceback."""

    @wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except TextError as exc:
            err.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(code=2) from None

    return run


Encoding = Annotated[str, typer.Option(help="Encoding of the CSV (e.g. gb18030 for files saved by Excel in China).")]


@text_app.command()
@_friendly
def train(
    data: Annotated[Path, typer.Option(help="Labelled CSV with a header row.")],
    text_col: Annotated[list[str], typer.Option(help="Text column; repeat to join several (title, narrative …).")],
    label_col: Annotated[str, typer.Option(help="Column holding the label to learn.")],
    model: Annotated[Path, typer.Option(help="Where to write the model file.")],
    encoding: Encoding = "utf-8",
) -> None:
    """Train a classifier on any labelled CSV and save it with its metadata header."""
    from hazardloop.text.classifier import TextClassifier
    from hazardloop.text.dataset import load_table
    from hazardloop.text.modelfile import build_model, save_model

    table = load_table(data, text_columns=text_col, label_column=label_col, encoding=encoding)
    assert table.labels is not None
    fitted = build_model(
        TextClassifier(), texts=table.texts, labels=table.labels, text_columns=list(text_col), label_column=label_col
    )
    save_model(fitted, model)
    clf = fitted.classifier
    out.print(
        f"trained {fitted.info.name} {fitted.info.version} on {fitted.info.n_train} rows, "
        f"{len(fitted.info.labels)} labels; word tokens: {clf.word_tokenizer_}; C={clf.C_}, "
        f"inner-CV macro-F1 {clf.inner_macro_f1_:.3f}, temperature {clf.temperature_:.3f} -> {model}",
        highlight=False,
        soft_wrap=True,
    )


@text_app.command()
@_friendly
def predict(
    model: Annotated[Path, typer.Option(help="Model file written by `hazardloop text train`.")],
    data: Annotated[Path, typer.Option(help="CSV with the model's text column(s).")],
    out_path: Annotated[Path, typer.Option("--out", help="Where to write the CSV with predictions.")],
    encoding: Encoding = "utf-8",
) -> None:
    """Add `predicted`, `confidence` and `model_version` columns to a CSV (written as UTF-8)."""
    from hazardloop.text.dataset import load_table
    from hazardloop.text.modelfile import load_model

    fitted = load_model(model)
    table = load_table(data, text_columns=list(fitted.info.text_columns), encoding=encoding)
    preds = fitted.suggest(table.texts)
    frame = table.frame.copy()
    frame["predicted"] = [p.label for p in preds]
    frame["confidence"] = [round(p.confidence or 0.0, 4) for p in preds]
    frame["model_version"] = fitted.info.version
    out_path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out_path, index=False, encoding="utf-8")
    out.print(
        f"{len(frame)} rows -> {out_path} ({fitted.info.name} {fitted.info.version})", highlight=False, soft_wrap=True
    )


@text_app.command()
@_friendly
def retrain(
    labels: Annotated[Path, typer.Option(help="Labels file (JSONL) written by the feedback store, or its folder.")],
    model: Annotated[Path, typer.Option(help="The current model: its text columns and label column are reused.")],
    data: Annotated[Path | None, typer.Option(help="The original training CSV, to learn from both.")] = None,
    field: Annotated[str, typer.Option(help="Which verdicts to learn: category, accident_type or level.")] = "category",
    out_path: Annotated[Path | None, typer.Option("--out", help="New model file (default: replace MODEL).")] = None,
    encoding: Encoding = "utf-8",
) -> None:
    """Retrain from people's confirmed labels (plus, optionally, the original training CSV)."""
    from hazardloop.text.classifier import TextClassifier
    from hazardloop.text.dataset import load_table
    from hazardloop.text.feedback import read_labels
    from hazardloop.text.modelfile import build_model, load_model, save_model

    old = load_model(model)
    verdicts = read_labels(labels, field=field)
    texts = [v.text for v in verdicts]
    targets = [v.confirmed for v in verdicts]
    if data is not None:
        table = load_table(
            data,
            text_columns=list(old.info.text_columns),
            label_column=old.info.label_column,
            encoding=encoding,
            min_classes=1,
        )
        assert table.labels is not None
        texts, targets = table.texts + texts, table.labels + targets
    if not texts:
        raise TextError(f"{labels}: no {field} labels to learn from")
    if len(set(targets)) < 2:
        raise TextError(f"{labels}: the {field} labels hold only {sorted(set(targets))}; need at least 2 distinct")
    fitted = build_model(
        TextClassifier(**old.classifier.get_params()),
        texts=texts,
        labels=targets,
        text_columns=list(old.info.text_columns),
        label_column=old.info.label_column,
    )
    target = out_path or model
    save_model(fitted, target)
    out.print(
        f"retrained {old.info.version} -> {fitted.info.version} on {len(texts)} rows "
        f"({len(verdicts)} from people) -> {target}",
        highlight=False,
        soft_wrap=True,
    )


@text_app.command()
@_friendly
def suggest(
    text: Annotated[str, typer.Argument(help="One hazard description, e.g. 配电箱未接地.")],
    model: Annotated[Path | None, typer.Option(help="Category model (else the keyword table).")] = None,
    level_model: Annotated[Path | None, typer.Option(help="Optional 一般/重大 model; it can only raise.")] = None,
    categories: Annotated[Path | None, typer.Option(help="Own keyword→category CSV.")] = None,
    accident_types: Annotated[Path | None, typer.Option(help="Own GB 6441 keyword CSV.")] = None,
    rules: Annotated[Path | None, typer.Option(help="Own 重大事故隐患 rule pack (TOML).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Suggest category, GB 6441 accident type and level for one text, with the reasons."""
    from hazardloop.text.level import major_pack
    from hazardloop.text.modelfile import load_model
    from hazardloop.text.rules import accident_type_rules, category_rules
    from hazardloop.text.suggest import suggest as suggest_one

    s = suggest_one(
        text,
        model=load_model(model) if model else None,
        level_model=load_model(level_model) if level_model else None,
        categories=category_rules(str(categories)) if categories else None,
        accident_types=accident_type_rules(str(accident_types)) if accident_types else None,
        pack=major_pack(str(rules)) if rules else None,
    )
    cat, acc, lvl = s.category, s.accident_type, s.level
    if as_json:
        payload = {
            "text": s.text,
            "category": cat.label if cat else None,
            "category_confidence": cat.confidence if cat else None,
            "category_model": f"{cat.model} {cat.model_version}" if cat else None,
            "category_reasons": list(cat.explanation) if cat else [],
            "accident_type": acc.label if acc else None,
            "accident_type_name": s.accident_type_name,
            "accident_type_reasons": list(acc.explanation) if acc else [],
            "level": lvl.level.value,
            "level_basis": [
                {"citation": m.citation, "matched": list(m.matched), "verified": m.verified} for m in lvl.matches
            ],
        }
        typer.echo(json.dumps(payload, ensure_ascii=False, indent=2))
        return
    table = Table(title=s.text, show_header=True)
    for col in ("suggestion", "value", "why"):
        table.add_column(col)
    if cat:
        conf = f" ({cat.confidence:.0%})" if cat.confidence is not None else ""
        table.add_row("category", f"{cat.label}{conf}", f"matched: {', '.join(cat.explanation)}  [{cat.model}]")
    else:
        table.add_row("category", "—", "no keyword matched; train a model on confirmed hazards")
    if s.category_rules and cat is not s.category_rules:
        table.add_row("  keyword table", s.category_rules.label, f"matched: {', '.join(s.category_rules.explanation)}")
    if acc:
        table.add_row("GB 6441 type", f"{acc.label} {s.accident_type_name}", f"matched: {', '.join(acc.explanation)}")
    else:
        table.add_row("GB 6441 type", "—", "no keyword matched")
    table.add_row("level", lvl.level.value, lvl.explanation)
    out.print(table)


LedgerText = Annotated[str, typer.Option(help="Column with the hazard description.")]
LedgerArea = Annotated[str, typer.Option(help="Column with the area (duplicates and clusters stay within one).")]
LedgerTime = Annotated[str, typer.Option(help="Column with the report time (2024-03-01, 2024/3/1 08:30 …).")]
LedgerId = Annotated[str | None, typer.Option(help="Column with the hazard id (default: the row number).")]


@text_app.command()
@_friendly
def duplicates(
    data: Annotated[Path, typer.Option(help="Hazard ledger export (CSV).")],
    text_col: LedgerText,
    area_col: LedgerArea,
    time_col: LedgerTime,
    id_col: LedgerId = None,
    threshold: Annotated[float, typer.Option(help="Least character-shingle Jaccard similarity.")] = 0.5,
    window_days: Annotated[float, typer.Option(help="Only reports this close in time.")] = 30,
    out_path: Annotated[Path | None, typer.Option("--out", help="Write the pairs as CSV.")] = None,
    encoding: Encoding = "utf-8",
) -> None:
    """List exact and near-duplicate reports (same area, within the time window)."""
    from datetime import timedelta

    from hazardloop.text.dataset import load_records
    from hazardloop.text.duplicates import near_duplicates

    records = load_records(
        data, text_column=text_col, area_column=area_col, time_column=time_col, id_column=id_col, encoding=encoding
    )
    if not 0.0 < threshold <= 1.0:
        raise TextError(f"--threshold must be in (0, 1], got {threshold}")
    pairs = near_duplicates(records, threshold=threshold, window=timedelta(days=window_days))
    texts = {r.id: r.text for r in records}
    if out_path is not None:
        import csv

        with out_path.open("w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["id", "other_id", "kind", "similarity", "text", "other_text"])
            writer.writerows([p.id, p.other_id, p.kind, p.similarity, texts[p.id], texts[p.other_id]] for p in pairs)
    table = Table(title=f"{len(pairs)} duplicate pair(s) in {len(records)} reports")
    for col in ("id", "other", "kind", "similarity", "text", "other text"):
        table.add_column(col)
    for p in pairs[:50]:
        table.add_row(p.id, p.other_id, p.kind, f"{p.similarity:.2f}", texts[p.id], texts[p.other_id])
    out.print(table)


@text_app.command()
@_friendly
def clusters(
    data: Annotated[Path, typer.Option(help="Hazard ledger export (CSV).")],
    text_col: LedgerText,
    area_col: LedgerArea,
    time_col: LedgerTime,
    id_col: LedgerId = None,
    min_size: Annotated[int, typer.Option(help="Fewest reports that make a pattern.")] = 3,
    encoding: Encoding = "utf-8",
) -> None:
    """Name the recurring patterns: similar reports in one area, and how often they come back."""
    from hazardloop.text.clusters import cluster_hazards
    from hazardloop.text.dataset import load_records

    if min_size < 2:
        raise TextError(f"--min-size must be at least 2, got {min_size}")
    records = load_records(
        data, text_column=text_col, area_column=area_col, time_column=time_col, id_column=id_col, encoding=encoding
    )
    found = cluster_hazards(records, min_size=min_size)
    table = Table(title=f"{len(found)} recurring pattern(s) in {len(records)} reports")
    for col in ("pattern", "reports", "first", "last"):
        table.add_column(col)
    for c in found:
        table.add_row(c.name, str(len(c.ids)), f"{c.first:%Y-%m-%d}", f"{c.last:%Y-%m-%d}")
    out.print(table)


if __name__ == "__main__":
    text_app()
