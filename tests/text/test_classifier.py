import numpy as np
import pytest

from hazardloop.text.classifier import MODEL_NAME, TextClassifier, fit_temperature
from hazardloop.text.errors import DatasetError, TextInputError

from .conftest import make_rows


@pytest.fixture(scope="module")
def fitted() -> TextClassifier:
    rows = make_rows(30, seed=1)
    return TextClassifier().fit([t for t, _ in rows], [y for _, y in rows])


def test_learns_sloppy_chinese_and_english(fitted):
    preds = fitted.predict(["灭火器过期了3个", "二楼配电箱没接地", "Ladder used without harness"])
    assert list(preds) == ["fire", "electrical", "height"]


def test_probabilities_are_calibrated_distributions_agreeing_with_predict(fitted):
    texts = ["消防通道被货物堵塞", "电线私拉", "安全出口指示灯坏了"]
    proba = fitted.predict_proba(texts)
    assert proba.shape == (3, 3)
    assert np.allclose(proba.sum(axis=1), 1.0)
    assert list(fitted.classes_[proba.argmax(axis=1)]) == list(fitted.predict(texts))
    assert fitted.temperature_ > 0


def test_each_suggestion_carries_model_name_version_and_reasons(fitted):
    (p,) = fitted.suggest(["配电箱未接地"], model_version="v-test")
    assert (p.label, p.model, p.model_version) == ("electrical", MODEL_NAME, "v-test")
    assert 0.0 < p.confidence <= 1.0
    assert any("配电" in r or "接地" in r for r in p.explanation)


def test_two_classes_work_and_explain():
    texts = ["灭火器过期", "消防通道堵塞", "灭火器压力不足", "配电箱未接地", "电线老化", "插座破损"] * 3
    labels = ["fire", "fire", "fire", "electrical", "electrical", "electrical"] * 3
    clf = TextClassifier().fit(texts, labels)
    (p,) = clf.suggest(["灭火器过期两个"])
    assert p.label == "fire" and p.explanation


def test_a_class_with_one_example_still_trains_uncalibrated():
    clf = TextClassifier().fit(["灭火器过期", "灭火器坏", "配电箱未接地"], ["fire", "fire", "electrical"])
    assert clf.temperature_ == 1.0
    assert clf.predict(["配电箱未接地"])[0] == "electrical"


def test_one_label_is_refused():
    with pytest.raises(DatasetError, match="at least 2 distinct labels"):
        TextClassifier().fit(["a", "b"], ["x", "x"])


def test_empty_text_in_training_names_its_position():
    with pytest.raises(TextInputError, match="training text 1: text is empty"):
        TextClassifier().fit(["灭火器", " ", "电线"], ["f", "f", "e"])


def test_temperature_grows_for_overconfident_scores():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    scores = np.column_stack([np.zeros(400), np.where(rng.random(400) < 0.7, 1, -1) * (2 * y - 1) * 10.0])
    # right 70 % of the time but with huge margins: the calibrated temperature must soften them
    assert fit_temperature(scores, y) > 5


def test_unspaced_chinese_with_no_repeated_word_still_trains():
    """Every word token of unspaced Chinese is a whole clause; each seen once, min_df drops them all."""
    phrases = {"fire": "灭火器过期", "electrical": "配电箱未接地", "height": "脚手架无护栏"}
    texts = [f"{p}{i}号" for i in range(15) for p in phrases.values()]
    labels = [y for _ in range(15) for y in phrases]
    clf = TextClassifier().fit(texts, labels)
    assert [name for name, _ in clf.features_.transformer_list] == ["char"]
    assert clf.predict(["配电箱未接地"])[0] == "electrical"
