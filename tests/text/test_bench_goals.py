"""The text benchmark calls a task's goal met only when every goal of anchors.md holds."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "text_classification.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("text_classification_bench", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def outcome(bench, task, y, pred):
    y, pred = np.asarray(y, dtype=object), np.asarray(pred, dtype=object)
    return bench.Outcome(task, y, pred, np.full(len(y), 0.9), 0.0)


def test_oiics_tasks_carry_the_macro_f1_goal_of_the_anchors(bench):
    oiics = [t for t in bench.TASKS if t.key.startswith("oiics")]
    assert oiics and all(t.goals() == (("accuracy", 0.93), ("macro_f1", 0.85)) for t in oiics)
    assert bench.goal_text(oiics[0]) == "accuracy ≥ 0.93 and macro-f1 ≥ 0.85"


def test_accuracy_met_but_macro_f1_missed_is_missed(bench):
    task = next(t for t in bench.TASKS if t.key == "oiics_narr")
    # 19 of 20 right (accuracy 0.95), the one rare-class row wrong: macro-F1 about 0.49.
    y = ["a"] * 19 + ["b"]
    assert bench.verdict(outcome(bench, task, y, ["a"] * 20)) == "missed"
    assert bench.verdict(outcome(bench, task, y, y)) == "met"


def test_a_task_without_goal_has_no_verdict(bench):
    task = bench.Task("k", "t", "f.csv", ("c",), "l", "macro_f1", "—", "—", None)
    assert bench.verdict(outcome(bench, task, ["a", "b"], ["a", "b"])) == "—"
    assert bench.goal_text(task) == "—"
