from pathlib import Path

import pytest

from hazardloop.text.errors import RuleTableError
from hazardloop.text.level import Level, combine_levels, load_major_pack, major_pack, suggest_level


def test_confined_space_without_watcher_is_major_and_cites_its_item():
    s = suggest_level("有限空间作业没设监护人")
    assert s.level is Level.MAJOR
    assert s.matches[0].citation == "《工贸企业重大事故隐患判定标准》第十三条第(二)项"
    assert "有限空间" in s.matches[0].matched
    assert "第十三条第(二)项" in s.explanation


def test_dust_collector_without_explosion_venting_is_major():
    s = suggest_level("除尘器泄爆片损坏未更换")
    assert any("第十一条第(三)项" in m.citation for m in s.matches)


def test_an_ordinary_report_is_general():
    assert suggest_level("灭火器过期两个，重新置换").level is Level.GENERAL


def test_pack_items_are_numbered_and_verified_only_with_a_source():
    pack = major_pack()
    refs = [(i.article, i.item) for i in pack.items]
    assert len(refs) == len(set(refs))
    assert (3, 1) in refs and (13, 2) in refs
    verified = [i for i in pack.items if i.verified]
    assert verified, "items checked against a published source are marked verified"
    assert any(not i.verified for i in pack.items), "unchecked items stay marked unverified"
    for item in verified:
        assert item.sources and all(u.startswith(("http://", "https://")) for u in item.sources), item.citation


def test_machinery_items_carry_the_numbers_of_the_published_standard():
    """第七条 has 7 items; the cooling-water alarm is (四) and the paint room (七), as cited in enforcement cases."""
    items = {(i.article, i.item): i for i in major_pack().items}
    assert [n for a, n in items if a == 7] == [1, 2, 3, 4, 5, 6, 7]
    assert "冷却水" in items[(7, 4)].text and items[(7, 4)].verified
    assert "紧急排放" in items[(7, 2)].text
    assert "喷漆室" in items[(7, 7)].text
    s = suggest_level("中频炉冷却水系统未设置出水温度报警")
    assert [m.citation for m in s.matches] == ["《工贸企业重大事故隐患判定标准》第七条第(四)项"]
    assert s.matches[0].verified and s.matches[0].sources


def test_verified_without_a_source_is_refused(tmp_path: Path):
    pack = tmp_path / "p.toml"
    pack.write_text(
        '[standard]\ntitle = "T"\n[[item]]\narticle = 1\nitem = 1\ntext = "t"\nmatch = [["a"]]\nverified = true\n',
        encoding="utf-8",
    )
    with pytest.raises(RuleTableError, match="item #1: verified = true needs a source"):
        load_major_pack(pack)
    pack.write_text(
        '[standard]\ntitle = "T"\n[[item]]\narticle = 1\nitem = 1\ntext = "t"\nmatch = [["a"]]\n'
        'verified = true\nsource = ["memory"]\n',
        encoding="utf-8",
    )
    with pytest.raises(RuleTableError, match="not an http"):
        load_major_pack(pack)
    pack.write_text(
        '[standard]\ntitle = "T"\n[[item]]\narticle = 1\nitem = 1\ntext = "t"\nmatch = [["a"]]\n'
        'verified = true\nsource = "https://example.org/std"\n',
        encoding="utf-8",
    )
    assert load_major_pack(pack).items[0].sources == ("https://example.org/std",)


def test_a_model_never_downgrades_a_rule_major():
    rule = suggest_level("有限空间作业未通风检测")
    merged = combine_levels(rule, "一般", 0.97)
    assert merged.level is Level.MAJOR
    assert merged.matches == rule.matches


def test_a_model_may_raise_a_general_report():
    merged = combine_levels(suggest_level("车间地面油污"), "重大", 0.8)
    assert merged.level is Level.MAJOR and merged.source == "model"


def test_unknown_model_level_is_a_clear_error():
    with pytest.raises(RuleTableError, match="level labels must be one of"):
        combine_levels(suggest_level("x"), "high")


def test_malformed_pack_names_the_item(tmp_path: Path):
    bad = tmp_path / "p.toml"
    bad.write_text('[standard]\ntitle = "T"\n[[item]]\narticle = 1\ntext = "t"\nmatch = [["a"]]\n', encoding="utf-8")
    with pytest.raises(RuleTableError, match="item #1"):
        load_major_pack(bad)
    empty_group = tmp_path / "q.toml"
    empty_group.write_text(
        '[standard]\ntitle = "T"\n[[item]]\narticle = 1\nitem = 1\ntext = "t"\nmatch = [[]]\n', encoding="utf-8"
    )
    with pytest.raises(RuleTableError, match="at least one keyword"):
        load_major_pack(empty_group)


def test_metallurgy_and_building_material_items_are_encoded_from_the_published_text():
    """第四条(一)-(四) (冶金) and 第六条(一)-(八) (建材) were added with the sources they were checked against."""
    items = {(i.article, i.item): i for i in major_pack().items}
    assert [n for a, n in items if a == 4] == [1, 2, 3, 4]
    assert [n for a, n in items if a == 6] == [1, 2, 3, 4, 5, 6, 7, 8]
    for ref in [(4, n) for n in range(1, 5)] + [(6, n) for n in range(1, 9)]:
        assert items[ref].verified and items[ref].sources, ref
    assert "升起装置联锁" in items[(4, 4)].text
    assert "电石渣" in items[(6, 3)].text


@pytest.mark.parametrize(
    ("text", "citation"),
    [
        ("转炉水冷元件未设置出水温度报警", "第四条第(四)项"),
        ("炉下渣坑有积水", "第四条第(二)项"),
        ("连铸事故钢水罐内有杂物", "第四条第(三)项"),
        ("煤磨袋式收尘器未设置一氧化碳浓度报警", "第六条第(一)项"),
        ("进入篦冷机检修未断电挂牌", "第六条第(四)项"),
        ("制氢站未设置氢气报警器", "第六条第(六)项"),
        ("熏蒸作业未配备磷化氢报警仪", "第十条第(一)项"),
        ("膨胀烟丝生产线二氧化碳报警装置未与事故通风联锁", "第十条第(二)项"),
        ("木质粉尘干式除尘器未设置锁气卸灰装置", "第十一条第(六)项"),
    ],
)
def test_new_items_propose_major_and_cite_a_verified_item(text: str, citation: str):
    s = suggest_level(text)
    assert s.level is Level.MAJOR
    hit = [m for m in s.matches if m.citation.endswith(citation)]
    assert hit and hit[0].verified and hit[0].sources, s.explanation


@pytest.mark.parametrize(
    "text",
    [
        "灭火器过期",
        "配电箱未接地",
        "地面有油污",
        "车间地面有积水",
        "厂房内吊运通道地面有积水，易滑倒",
        "二氧化碳灭火系统报警装置损坏",  # 消防: 第二条 leaves it to other rules
        "熏蒸前已确认无关人员全部撤离",
        "破碎机防护罩缺失",
        "冷却水管漏水",
        "车间电机外壳积尘未及时清理",
    ],
)
def test_ordinary_reports_are_not_proposed_as_major(text: str):
    s = suggest_level(text)
    assert s.level is Level.GENERAL, s.explanation


def test_tobacco_items_carry_the_2023_wording_not_the_superseded_2017_one():
    items = {(i.article, i.item): i for i in major_pack().items}
    assert "撤离熏蒸作业场所" in items[(10, 1)].text and "培训" not in items[(10, 1)].text
    assert "事故通风设施联锁" in items[(10, 2)].text and "燃气" not in items[(10, 2)].text


def test_verified_wording_is_simplified_chinese_without_a_trailing_de():
    """Several sources are traditional-character reprints; the pack stores the simplified text."""
    traditional = set("條項應當業設監測報裝聯鎖爐鋼鐵區積車間護廠與進們為關檢備")
    for item in major_pack().items:
        if item.verified:
            assert not traditional & set(item.text), item.citation
            assert not item.text.endswith(("的", "；", ";", "。")), item.citation
