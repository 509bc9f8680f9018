from datetime import datetime, timedelta

from hazardloop.text.clusters import cluster_hazards, cluster_terms, recurrence
from hazardloop.text.records import HazardText

T0 = datetime(2024, 1, 5, 10, 0)


def monthly_extinguishers(area: str, n: int = 6) -> list[HazardText]:
    texts = ["灭火器过期", "灭火器过期两个", "灭火器过期，已更换", "仓库灭火器过期", "灭火器过期未换", "灭火器过期3个"]
    return [HazardText(f"{area}-{i}", area, texts[i % len(texts)], T0 + timedelta(days=30 * i)) for i in range(n)]


def test_monthly_recurring_reports_form_one_named_cluster():
    noise = [
        HazardText(f"n{i}", "WH", t, T0 + timedelta(days=i))
        for i, t in enumerate(["配电箱未接地", "叉车超速", "通道堆放杂物"])
    ]
    (cluster,) = cluster_hazards(monthly_extinguishers("WH") + noise, area_names={"WH": "仓储区"})
    assert cluster.name == "灭火器过期 — 仓储区 — 每月复发"
    assert len(cluster.ids) == 6 and not set(cluster.ids) & {"n0", "n1", "n2"}
    assert cluster.recurrence == "每月复发"


def test_clusters_do_not_cross_areas():
    clusters = cluster_hazards(monthly_extinguishers("A", 3) + monthly_extinguishers("B", 3))
    assert sorted(c.area_id for c in clusters) == ["A", "B"]
    assert all({i.split("-")[0] for i in c.ids} == {c.area_id} for c in clusters)


def test_too_few_reports_make_no_cluster():
    assert cluster_hazards(monthly_extinguishers("A", 2)) == []


def test_recurrence_words():
    day = timedelta(days=1)
    assert recurrence([T0, T0 + day, T0 + 2 * day]) == "每日复发"
    assert recurrence([T0, T0 + 7 * day, T0 + 14 * day]) == "每周复发"
    assert recurrence([T0, T0 + 200 * day]) == "偶发"
    assert recurrence([T0, T0]) == "单日集中"


def test_terms_prefer_the_longest_shared_piece():
    assert cluster_terms(["消防通道堵塞", "消防通道堵塞了", "一楼消防通道堵塞"])[0] == "消防通道堵塞"
