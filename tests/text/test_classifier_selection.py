"""Word features on/off, jieba words, nested selection, class offsets and calibrated confidence."""

import random

import numpy as np
import pytest

import hazardloop.text.classifier as classifier_module
from hazardloop.text.classifier import C_GRID, TextClassifier, fit_offsets, macro_f1
from hazardloop.text.errors import DatasetError

from .conftest import VOCAB, make_rows


def _xy(rows: list[tuple[str, str]]) -> tuple[list[str], list[str]]:
    return [t for t, _ in rows], [y for _, y in rows]


def _blocks(clf: TextClassifier) -> list[str]:
    return [name for name, _ in clf.features_.transformer_list]


def test_word_and_char_features_can_each_be_switched_off():
    texts, labels = _xy(make_rows(20, seed=2))
    both = TextClassifier().fit(texts, labels)
    chars = TextClassifier(word_ngrams=None).fit(texts, labels)
    words = TextClassifier(char_ngrams=None).fit(texts, labels)
    assert _blocks(both) == ["char", "word"] and both.word_tokenizer_ == "regex"
    assert _blocks(chars) == ["char"] and chars.word_tokenizer_ == "off"
    assert _blocks(words) == ["word"]
    assert all(name.startswith("word__") for name in words.feature_names_)
    assert words.score(texts, labels) > 0.9
    with pytest.raises(DatasetError, match="both off"):
        TextClassifier(char_ngrams=None, word_ngrams=None).fit(texts, labels)


def test_jieba_segments_chinese_words_where_the_regex_keeps_whole_clauses():
    pytest.importorskip("jieba")
    texts = ["配电箱未接地，电线老化", "配电箱门未关，插座破损", "灭火器过期，通道堵塞", "灭火器压力不足，消防栓"] * 6
    labels = ["electrical", "electrical", "fire", "fire"] * 6
    regex = TextClassifier(char_ngrams=None).fit(texts, labels)
    jieba = TextClassifier(char_ngrams=None, word_tokenizer="jieba").fit(texts, labels)
    assert (regex.word_tokenizer_, jieba.word_tokenizer_) == ("regex", "jieba")
    regex_words = {n.split("__", 1)[1] for n in regex.feature_names_}
    jieba_words = {n.split("__", 1)[1] for n in jieba.feature_names_}
    assert "配电箱未接地" in regex_words and "配电箱" not in regex_words
    assert "配电箱" in jieba_words and "灭火器" in jieba_words
    assert jieba.predict(["配电箱漏电"])[0] == "electrical"
    auto = TextClassifier(word_tokenizer="auto").fit(*_xy([(t, y) for t, y in make_rows(10) if t.isascii()]))
    assert auto.word_tokenizer_ == "regex"  # "auto" segments only when there is Chinese to segment


def test_jieba_asked_for_but_missing_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(classifier_module, "_jieba_available", lambda: False)
    texts, labels = _xy(make_rows(10))
    with pytest.raises(DatasetError, match="needs the jieba package"):
        TextClassifier(word_tokenizer="jieba").fit(texts, labels)
    assert TextClassifier(word_tokenizer="auto").fit(texts, labels).word_tokenizer_ == "regex"
    with pytest.raises(DatasetError, match="word_tokenizer must be one of"):
        TextClassifier(word_tokenizer="spacy").fit(texts, labels)


def test_c_is_chosen_from_held_out_scores_of_the_training_data():
    texts, labels = _xy(make_rows(30, seed=3))
    clf = TextClassifier().fit(texts, labels)
    assert set(clf.selection_) == set(C_GRID)
    assert clf.selection_[clf.C_] == max(clf.selection_.values()) == clf.inner_macro_f1_
    # With labels that have nothing to do with the texts, in-sample scores would look perfect;
    # out-of-fold scores stay near chance (1/3), so they are what selection and calibration see.
    shuffled = labels[:]
    random.Random(0).shuffle(shuffled)
    noise = TextClassifier().fit(texts, shuffled)
    assert noise.inner_macro_f1_ < 0.6
    assert noise.predict_proba(texts).max(axis=1).mean() < 0.8


def test_a_fixed_c_is_used_as_given():
    clf = TextClassifier(C=0.7).fit(*_xy(make_rows(15)))
    assert clf.C_ == 0.7 and list(clf.selection_) == [0.7]


def test_offsets_lift_a_class_whose_scores_are_shifted_down():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 900)
    scores = rng.normal(0, 0.3, (900, 3))
    scores[np.arange(900), y] += 1.0
    scores[:, 2] -= 1.2  # class 2 is always under-scored: rarely predicted
    before = macro_f1(y, scores.argmax(axis=1), 3)
    offsets = fit_offsets(scores, y)
    after = macro_f1(y, (scores + offsets).argmax(axis=1), 3)
    assert offsets[2] - offsets[[0, 1]].max() > 0.8
    assert after > before + 0.2


def test_offsets_can_be_switched_off():
    texts, labels = _xy(make_rows(20, seed=4))
    clf = TextClassifier(class_offsets=False).fit(texts, labels)
    assert not clf.offsets_.any()
    assert list(clf.classes_[clf.decision_function(texts).argmax(axis=1)]) == list(clf.predict(texts))


def test_macro_f1_agrees_with_scikit_learn():
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(1)
    y, pred = rng.integers(0, 4, 300), rng.integers(0, 4, 300)
    pred[pred == 3] = 0  # a class never predicted
    assert macro_f1(y, pred, 4) == pytest.approx(f1_score(y, pred, average="macro"))


def _reports(n: int, seed: int) -> tuple[list[str], list[str]]:
    """Half clean reports, half with a second category's words mixed in (either order): coin flips."""
    rng = random.Random(seed)
    cats = sorted(VOCAB)
    texts, labels = [], []
    for i in range(n):
        a, b = rng.sample(cats, 2)
        parts = [rng.choice(VOCAB[a]), rng.choice(VOCAB[b])] if i % 2 else [rng.choice(VOCAB[a])]
        rng.shuffle(parts)
        texts.append("，".join(parts))
        labels.append(a)
    return texts, labels


def test_confidence_is_a_probability_and_higher_when_the_suggestion_is_right():
    """Clean reports are easy, mixed ones are coin flips: calibrated confidence must tell them apart."""
    clf = TextClassifier().fit(*_reports(240, seed=5))
    probe, truth = _reports(300, seed=6)
    preds = clf.suggest(probe)
    conf = np.array([p.confidence for p in preds])
    right = np.array([p.label == t for p, t in zip(preds, truth, strict=True)])
    assert ((conf >= 0) & (conf <= 1)).all()
    assert 0.5 < right.mean() < 0.95
    assert conf[right].mean() > conf[~right].mean() + 0.05
    order = np.argsort(conf)
    low, high = right[order[: len(order) // 2]], right[order[len(order) // 2 :]]
    assert high.mean() > low.mean() + 0.1
    # Calibrated: on data like the training data, mean confidence is close to the hit rate.
    assert abs(conf.mean() - right.mean()) < 0.1
