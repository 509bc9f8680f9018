"""Saving and loading trained text models, with a header that says what the file is.

The file is a joblib pickle (the scikit-learn convention) of a dict whose ``magic`` and
``format`` keys are checked on load, so that a stray pickle or a model of another tool is
refused with a clear message. Pickles run code when loaded: load only model files your own
HazardLoop wrote (the same caveat scikit-learn gives for its models).
"""

from __future__ import annotations

import hashlib
import pickle
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import joblib

from hazardloop.text.classifier import MODEL_NAME, Prediction, TextClassifier
from hazardloop.text.errors import ModelFileError

MAGIC = "hazardloop-text-model"
FORMAT = 1


@dataclass(frozen=True)
class ModelInfo:
    """The metadata header of a model file."""

    name: str
    version: str  # unique per training run: UTC time + hash of the training data
    labels: tuple[str, ...]
    text_columns: tuple[str, ...]
    label_column: str
    trained_at: str  # ISO 8601, UTC
    n_train: int
    params: dict[str, object]
    hazardloop_version: str
    sklearn_version: str


@dataclass
class TextModel:
    """A fitted classifier together with its header; what ``train`` writes and ``predict`` reads."""

    info: ModelInfo
    classifier: TextClassifier

    def suggest(self, texts: list[str]) -> list[Prediction]:
        return self.classifier.suggest(texts, model_version=self.info.version)


def data_fingerprint(texts: list[str], labels: list[str]) -> str:
    digest = hashlib.sha256()
    for text, label in zip(texts, labels, strict=True):
        digest.update(text.encode("utf-8") + b"\x1f" + label.encode("utf-8") + b"\x1e")
    return digest.hexdigest()[:8]


def build_model(
    classifier: TextClassifier, *, texts: list[str], labels: list[str], text_columns: list[str], label_column: str
) -> TextModel:
    """Fit ``classifier`` and wrap it with a header; the version ties predictions to this run."""
    classifier.fit(texts, labels)
    now = datetime.now(UTC)
    info = ModelInfo(
        name=MODEL_NAME,
        version=f"{now:%Y%m%d%H%M%S}-{data_fingerprint(texts, labels)}",
        labels=tuple(str(c) for c in classifier.classes_),
        text_columns=tuple(text_columns),
        label_column=label_column,
        trained_at=now.isoformat(timespec="seconds"),
        n_train=len(texts),
        params={
            **classifier.get_params(),
            "C_chosen": classifier.C_,
            "temperature": classifier.temperature_,
            "word_tokenizer_used": classifier.word_tokenizer_,
            "class_offsets_fitted": [round(float(v), 3) for v in classifier.offsets_],
        },
        hazardloop_version=classifier.hazardloop_version_,
        sklearn_version=classifier.sklearn_version_,
    )
    return TextModel(info=info, classifier=classifier)


def save_model(model: TextModel, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump({"magic": MAGIC, "format": FORMAT, "info": asdict(model.info), "classifier": model.classifier}, path)
    return path


def load_model(path: str | Path) -> TextModel:
    """Load a model file written by :func:`save_model`; refuse anything else by name."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file")
    try:
        payload = joblib.load(path)
    except (pickle.UnpicklingError, EOFError, ValueError, KeyError, IndexError, AttributeError, ImportError) as exc:
        raise ModelFileError(f"{path}: not a HazardLoop text model file ({type(exc).__name__})") from exc
    if not isinstance(payload, dict) or payload.get("magic") != MAGIC:
        raise ModelFileError(f"{path}: not a HazardLoop text model file (no '{MAGIC}' header)")
    if payload.get("format") != FORMAT:
        raise ModelFileError(f"{path}: model file format {payload.get('format')!r}; this HazardLoop reads {FORMAT}")
    info = payload["info"]
    info["labels"] = tuple(info["labels"])
    info["text_columns"] = tuple(info["text_columns"])
    classifier = payload["classifier"]
    if not isinstance(classifier, TextClassifier):
        raise ModelFileError(f"{path}: the header is right but the content is not a TextClassifier")
    return TextModel(info=ModelInfo(**info), classifier=classifier)
