import pytest

from hazardloop.text.errors import TextInputError
from hazardloop.text.normalize import MAX_TEXT_CHARS, char_shingles, check_text, duplicate_key, normalize


def test_full_width_and_spacing_fold_to_the_same_duplicate_key():
    assert duplicate_key("灭火器过期两个，重新置换 ") == duplicate_key("灭火器过期两个,重新置换")
    assert duplicate_key("１号配电箱  未接地！") == duplicate_key("1号配电箱未接地")


def test_different_words_give_different_keys():
    assert duplicate_key("配电箱未接地") != duplicate_key("配电柜未接地")


def test_normalize_lowercases_and_collapses_space():
    assert normalize("  Fire   EXIT\tblocked ") == "fire exit blocked"


@pytest.mark.parametrize("bad", ["", "   ", "\n\t"])
def test_empty_text_is_refused_with_its_place(bad):
    with pytest.raises(TextInputError, match="row 7: text is empty"):
        check_text(bad, where="row 7")


def test_huge_text_is_refused():
    with pytest.raises(TextInputError, match="limit"):
        check_text("火" * (MAX_TEXT_CHARS + 1))


def test_non_string_is_refused():
    with pytest.raises(TextInputError, match="expected a string, got int"):
        check_text(42)


def test_short_text_shingles_are_the_text_itself():
    assert char_shingles("已改") == {"已改"}
    assert char_shingles("消防通道", k=3) == {"消防通", "防通道"}


def test_shingles_are_pairs_for_chinese_and_fours_for_latin():
    assert char_shingles("消防通道") == {"消防", "防通", "通道"}
    assert char_shingles("Exit!") == {"exit"}
