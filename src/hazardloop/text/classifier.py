"""Category classifier: character + word n-gram TF-IDF, a class-balanced linear SVM, calibrated.

Why this shape (scikit-learn, CPU, seconds):

* Character n-grams (``char_wb``) work for Chinese without a word segmenter and survive the
  typos and abbreviations of phone-typed reports; word n-grams add the English phrase signal.
  Goh & Ubeynarayana (2017) and Qiao et al. (2022) found a linear SVM on TF-IDF to be the
  strongest shallow model on OSHA narratives.
* ``class_weight="balanced"``: hazard categories are very unequal (fire reports outnumber
  gas reports 500:1); without it the rare categories are never suggested.
* C is chosen by cross-validation *inside the training data* (macro-F1 over a small grid), a
  rule that holds for any labelled CSV; the same out-of-fold scores then fit the calibration.
* Calibration by temperature scaling (Guo et al. 2017, "On Calibration of Modern Neural
  Networks"): ``softmax(score / T)`` with T fitted on out-of-fold scores. One shared
  temperature keeps the arg-max, so the suggested label is always the most probable one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import sklearn
from scipy.optimize import minimize_scalar
from scipy.sparse import csr_matrix, hstack
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics import f1_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import FeatureUnion
from sklearn.svm import LinearSVC

from hazardloop import __version__
from hazardloop.text.errors import DatasetError
from hazardloop.text.normalize import check_text, normalize

MODEL_NAME = "hazardloop.text.tfidf-linear-svm"
#: Grid searched by inner cross-validation when C="auto"; SVM text models rarely gain outside it.
C_GRID = (0.3, 1.0)
_WORD = r"(?u)\b\w+\b"  # keeps one-letter words and digits ("3 m", "1#"): they matter in hazard text
_CJK = re.compile(r"[\u3400-\u9fff]")


@dataclass(frozen=True)
class Prediction:
    """One suggestion, with where it came from so a human decision can be traced to it."""

    label: str
    confidence: float | None  # calibrated probability of ``label``; None for rule suggestions
    model: str
    model_version: str
    explanation: tuple[str, ...] = field(default=())  # the n-grams or keywords that drove it


def _softmax(scores: np.ndarray) -> np.ndarray:
    z = scores - scores.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def fit_temperature(scores: np.ndarray, y_index: np.ndarray) -> float:
    """The T minimising the log-loss of softmax(scores / T) on held-out scores."""

    def nll(log_t: float) -> float:
        p = _softmax(scores / np.exp(log_t))
        return float(-np.mean(np.log(p[np.arange(len(y_index)), y_index] + 1e-12)))

    res = minimize_scalar(nll, bounds=(-5.0, 3.0), method="bounded")
    return float(np.exp(res.x))


class TextClassifier(ClassifierMixin, BaseEstimator):
    """Suggests a label for short or long free text, in any language; scikit-learn API.

    ``fit(texts, labels)``, ``predict(texts)``, ``predict_proba(texts)`` and
    ``suggest(texts)`` (which returns :class:`Prediction` objects carrying the model name,
    version and the n-grams behind each suggestion).
    """

    def __init__(
        self,
        *,
        char_ngrams: tuple[int, int] = (1, 4),
        word_ngrams: tuple[int, int] = (1, 2),
        min_df: int = 2,
        C: float | str = "auto",
        class_weight: str | None = "balanced",
        inner_folds: int = 3,
        random_state: int = 0,
    ) -> None:
        self.char_ngrams = char_ngrams
        self.word_ngrams = word_ngrams
        self.min_df = min_df
        self.C = C
        self.class_weight = class_weight
        self.inner_folds = inner_folds
        self.random_state = random_state

    # ---------------------------------------------------------------- fitting
    def _vectorizers(self, n_docs: int) -> list[tuple[str, TfidfVectorizer]]:
        # min_df=2 drops n-grams seen once (mostly typos and ids); on tiny sets keep everything.
        min_df = self.min_df if n_docs >= 20 * self.min_df else 1
        char = TfidfVectorizer(
            analyzer="char_wb", ngram_range=self.char_ngrams, min_df=min_df, sublinear_tf=True, dtype=np.float32
        )
        word = TfidfVectorizer(
            analyzer="word",
            token_pattern=_WORD,
            ngram_range=self.word_ngrams,
            min_df=min_df,
            sublinear_tf=True,
            dtype=np.float32,
        )
        return [("char", char), ("word", word)]

    def _fit_features(self, texts: list[str]) -> csr_matrix:
        """Fit each vectorizer; one that finds no terms is left out (e.g. word n-grams of unspaced Chinese)."""
        fitted, blocks, reasons = [], [], []
        for name, vec in self._vectorizers(len(texts)):
            try:
                blocks.append(vec.fit_transform(texts))
                fitted.append((name, vec))
            except ValueError as exc:  # scikit-learn's "empty vocabulary" / "no terms remain"
                reasons.append(f"{name}: {exc}")
        if not fitted:
            raise DatasetError(f"the training texts give no features ({'; '.join(reasons)})")
        self.features_ = FeatureUnion(fitted)
        return hstack(blocks, format="csr")

    def _svm(self, c: float) -> LinearSVC:
        return LinearSVC(C=c, class_weight=self.class_weight, random_state=self.random_state)

    def fit(self, X: Sequence[str], y: Sequence[str]) -> TextClassifier:
        texts = [normalize(check_text(t, where=f"training text {i}")) for i, t in enumerate(X)]
        labels = np.asarray([str(v) for v in y], dtype=object)
        if len(texts) != len(labels):
            raise DatasetError(f"{len(texts)} texts but {len(labels)} labels")
        self.classes_, y_index, counts = np.unique(labels, return_inverse=True, return_counts=True)
        if len(self.classes_) < 2:
            raise DatasetError(f"need at least 2 distinct labels to train, got {list(self.classes_)}")
        matrix = self._fit_features(texts)

        folds = min(self.inner_folds, int(counts.min()))
        candidates = list(C_GRID) if self.C == "auto" else [float(self.C)]
        self.temperature_ = 1.0
        self.C_ = candidates[0]
        if folds >= 2:
            # Out-of-fold scores on the training data only: they pick C and fit the temperature.
            best = -1.0
            for c in candidates:
                oof = self._out_of_fold_scores(matrix, y_index, c, folds)
                score = f1_score(y_index, oof.argmax(axis=1), average="macro")
                if score > best + 1e-9:
                    best, self.C_, best_oof = score, c, oof
            self.inner_macro_f1_ = best
            self.temperature_ = fit_temperature(best_oof, y_index)
        else:
            # A class with a single example: no held-out scores, so no calibration (T = 1).
            self.inner_macro_f1_ = float("nan")
        self.svm_ = self._svm(self.C_).fit(matrix, y_index)
        self.feature_names_ = self.features_.get_feature_names_out()
        self.n_train_ = len(texts)
        self.sklearn_version_ = sklearn.__version__
        self.hazardloop_version_ = __version__
        return self

    def _out_of_fold_scores(self, matrix: csr_matrix, y_index: np.ndarray, c: float, folds: int) -> np.ndarray:
        scores = np.zeros((matrix.shape[0], len(self.classes_)), dtype=np.float64)
        split = StratifiedKFold(folds, shuffle=True, random_state=self.random_state)
        for train, held in split.split(matrix, y_index):
            svm = self._svm(c).fit(matrix[train], y_index[train])
            part = _full_scores(svm, matrix[held], len(self.classes_))
            scores[held] = part
        return scores

    # ------------------------------------------------------------- predicting
    def _matrix(self, X: Sequence[str]) -> csr_matrix:
        return self.features_.transform([normalize(check_text(t, where=f"text {i}")) for i, t in enumerate(X)])

    def decision_function(self, X: Sequence[str]) -> np.ndarray:
        return _full_scores(self.svm_, self._matrix(X), len(self.classes_))

    def predict_proba(self, X: Sequence[str]) -> np.ndarray:
        """Calibrated class probabilities, columns in ``classes_`` order."""
        return _softmax(self.decision_function(X) / self.temperature_)

    def predict(self, X: Sequence[str]) -> np.ndarray:
        return self.classes_[self.decision_function(X).argmax(axis=1)]

    def suggest(self, X: Sequence[str], *, model_version: str = "", n_reasons: int = 4) -> list[Prediction]:
        """Label, calibrated confidence and the strongest n-grams behind it, for each text."""
        matrix = self._matrix(X)
        scores = _full_scores(self.svm_, matrix, len(self.classes_))
        proba = _softmax(scores / self.temperature_)
        best = scores.argmax(axis=1)
        out = []
        for row, k in enumerate(best):
            out.append(
                Prediction(
                    label=str(self.classes_[k]),
                    confidence=float(proba[row, k]),
                    model=MODEL_NAME,
                    model_version=model_version,
                    explanation=self._reasons(matrix[row], int(k), n_reasons),
                )
            )
        return out

    def _reasons(self, row: csr_matrix, k: int, n: int) -> tuple[str, ...]:
        """The features with the largest positive contribution (weight × tf-idf) to class ``k``."""
        coef = self.svm_.coef_[k if self.svm_.coef_.shape[0] > 1 else 0]
        sign = -1.0 if self.svm_.coef_.shape[0] == 1 and k == 0 else 1.0
        contrib = sign * coef[row.indices] * row.data
        order = np.argsort(-contrib)
        reasons: list[str] = []
        for j in order:
            if contrib[j] <= 0 or len(reasons) >= n:
                break
            name = str(self.feature_names_[row.indices[j]]).split("__", 1)[-1].strip()
            # Prefer readable pieces: skip single Latin letters and n-grams already inside a chosen one.
            if len(name) < 2 and not _CJK.search(name):
                continue
            if any(name in r for r in reasons):
                continue
            reasons.append(name)
        return tuple(reasons)


def _full_scores(svm: LinearSVC, matrix: csr_matrix, n_classes: int) -> np.ndarray:
    """Decision scores as (n_rows, n_classes), also for two classes and for folds missing a class."""
    raw = svm.decision_function(matrix)
    if raw.ndim == 1:
        raw = np.column_stack([-raw, raw])
    if raw.shape[1] == n_classes and np.array_equal(svm.classes_, np.arange(n_classes)):
        return raw
    full = np.full((matrix.shape[0], n_classes), -1e3)
    full[:, svm.classes_] = raw
    return full
