"""Small synthetic hazard texts: three categories in Chinese and English, typed sloppily."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import pytest

VOCAB = {
    "fire": [
        "灭火器过期",
        "消防通道堵塞",
        "安全出口上锁",
        "fire extinguisher expired",
        "emergency exit blocked",
        "疏散指示灯不亮",
        "消火栓被遮挡",
    ],
    "electrical": [
        "配电箱未接地",
        "电线私拉乱接",
        "插座破损",
        "exposed live wire",
        "socket cover broken",
        "配电柜门未关",
        "电缆老化",
    ],
    "height": [
        "脚手架无护栏",
        "高处作业未系安全带",
        "梯子损坏",
        "worker on ladder without harness",
        "scaffold guardrail missing",
        "临边洞口无防护",
        "屋面作业无防护",
    ],
}
FILLER = ["", "，已整改", " 立即处理", "，两处", " in workshop 2", "，仓库", " 三楼", "!!"]


def make_rows(n_per_class: int = 30, seed: int = 0) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    rows = []
    for label, phrases in VOCAB.items():
        for _ in range(n_per_class):
            rows.append((rng.choice(phrases) + rng.choice(FILLER), label))
    rng.shuffle(rows)
    return rows


def write_csv(path: Path, header: list[str], rows: list[list[str]], encoding: str = "utf-8") -> Path:
    with path.open("w", encoding=encoding, newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture
def rows() -> list[tuple[str, str]]:
    return make_rows()


@pytest.fixture
def train_csv(tmp_path: Path, rows: list[tuple[str, str]]) -> Path:
    return write_csv(
        tmp_path / "train.csv",
        ["id", "content", "category"],
        [[str(i), text, label] for i, (text, label) in enumerate(rows)],
    )
