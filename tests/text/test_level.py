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
