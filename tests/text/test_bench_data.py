"""A quick check on real inspector text, when the benchmark data folder is present (it is in CI)."""

import os
from pathlib import Path

import pandas as pd
import pytest

from hazardloop.text.classifier import TextClassifier
from hazardloop.text.duplicates import exact_duplicate_groups
from hazardloop.text.normalize import duplicate_key
from hazardloop.text.records import HazardText

DATA = Path(os.environ.get("HAZARDLOOP_BENCH_DATA", "/work/shared/data")) / "hazard-text"
ZH = DATA / "zh_selfcheck_sodic.train.csv"
pytestmark = pytest.mark.skipif(not ZH.is_file(), reason="benchmark data not present")


@pytest.fixture(scope="module")
def zh() -> pd.DataFrame:
    return pd.read_csv(ZH, dtype=str, keep_default_na=False).sample(3000, random_state=0)


def test_classifier_beats_the_majority_class_on_real_reports(zh):
    train, test = zh.iloc[:2400], zh.iloc[2400:]
    clf = TextClassifier(C=0.3).fit(list(train.content), list(train.category))
    acc = (clf.predict(list(test.content)) == test.category.to_numpy()).mean()
    majority = (test.category == train.category.mode()[0]).mean()
    assert acc > majority + 0.1


def test_our_duplicate_key_agrees_with_the_data_sets_dup_groups(zh):
    """The file's dup_group removes whitespace and punctuation, like our key: same grouping."""
    groups = exact_duplicate_groups(
        [HazardText(str(i), "", t, pd.Timestamp(0).to_pydatetime()) for i, t in enumerate(zh.content)], same_area=False
    )
    theirs = zh.dup_group.to_numpy()
    for ids in groups:
        assert len({theirs[int(i)] for i in ids}) == 1
    ours = zh.content.map(duplicate_key)
    assert ours.nunique() == pytest.approx(zh.dup_group.nunique(), rel=0.02)
