import pickle
from pathlib import Path

import joblib
import pytest

from hazardloop.text.classifier import TextClassifier
from hazardloop.text.errors import ModelFileError
from hazardloop.text.modelfile import build_model, load_model, save_model

from .conftest import make_rows


def test_round_trip_keeps_header_and_predictions(tmp_path: Path):
    rows = make_rows(15)
    texts, labels = [t for t, _ in rows], [y for _, y in rows]
    model = build_model(TextClassifier(), texts=texts, labels=labels, text_columns=["content"], label_column="cat")
    path = save_model(model, tmp_path / "m.joblib")
    again = load_model(path)
    assert again.info.labels == ("electrical", "fire", "height")
    assert again.info.text_columns == ("content",)
    assert again.info.n_train == len(texts)
    assert again.info.version == model.info.version
    assert [p.label for p in again.suggest(texts[:5])] == [p.label for p in model.suggest(texts[:5])]
    assert {p.model_version for p in again.suggest(texts[:5])} == {model.info.version}


def test_a_foreign_pickle_is_refused(tmp_path: Path):
    path = tmp_path / "other.joblib"
    joblib.dump({"weights": [1, 2, 3]}, path)
    with pytest.raises(ModelFileError, match="not a HazardLoop text model file"):
        load_model(path)


def test_garbage_and_missing_files_are_refused(tmp_path: Path):
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00not a pickle at all")
    with pytest.raises(ModelFileError, match="not a HazardLoop text model file"):
        load_model(junk)
    with pytest.raises(ModelFileError, match="no such model file"):
        load_model(tmp_path / "absent.joblib")


def test_a_newer_format_is_refused(tmp_path: Path):
    path = tmp_path / "future.joblib"
    with path.open("wb") as fh:
        pickle.dump({"magic": "hazardloop-text-model", "format": 99}, fh)
    with pytest.raises(ModelFileError, match="format 99"):
        load_model(path)
