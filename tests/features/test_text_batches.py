"""The one-pass text steps (texts joined by ``features.text.SEPARATOR``) give each text exactly what the
one-text functions give it: normalisation and the blatant-title flag. Texts are drawn from the characters
where a joined pass could differ: combining marks, Hangul jamo, final sigma, full-width and Unicode
spaces (and the separators ``str.split`` counts as spaces), digits and colons beside the lexicon's
look-arounds, word boundaries, and the words and negations of the lexicon themselves."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from features.lexicon import blatant_title, blatant_titles
from features.text import SEPARATOR, normalise_many, normalise_text

PIECES = [
    "replica", "Replica", "ＲＥＰＬＩＣＡ", "fake", "fakes", "not", "no", "a ", "1:1", "1：1", "1比1", "aaa", "AAA",
    "高仿", "非", "不是", "A货", "a货", "假货", "假期", "放假", "not genuine", "not real", "counterfeit",
    "knock-off", "super copy", "mirror grade", "原单", "是", "假的吧", "super", "copy", "knock", "off", "mirror ",
    "\u0301", "\u0327", "e\u0301", "\u1100", "\u1161", "\u11a8", "Σ", "ς", "ß", "ﬁ", "\u3000", "\u00a0", "\u2028",
    "\x1c", "\x1f", "\x85", "\u200b",
    " ", "  ", "\t", "\n", ".", "0", "9", ":", "x", "中", "①", "㍿", "",
]  # fmt: skip
TEXT = st.lists(st.sampled_from(PIECES), max_size=8).map("".join)
ANY_TEXT = st.one_of(TEXT, st.text(max_size=20))


@settings(max_examples=500, deadline=None)
@given(st.lists(st.one_of(ANY_TEXT, st.none(), st.floats(), st.integers()), max_size=12))
def test_normalise_many_equals_normalise_text_one_by_one(texts: list[object]) -> None:
    assert normalise_many(texts) == [normalise_text(t) for t in texts]


@settings(max_examples=500, deadline=None)
@given(st.lists(TEXT, max_size=12))
def test_blatant_flags_in_one_pass_equal_the_one_text_flags(raw: list[str]) -> None:
    texts = normalise_many(raw)
    assert blatant_titles(texts) == [blatant_title(t) for t in texts]


def test_texts_holding_the_separator_go_one_by_one() -> None:
    texts = [f"replica{SEPARATOR}x", "fine", f"{SEPARATOR}"]
    assert normalise_many(texts) == [normalise_text(t) for t in texts]
    assert blatant_titles(texts) == [True, False, False]


def test_the_flags_are_not_vacuous() -> None:
    texts = normalise_many(
        ["Gucci 高仿 包", "非高仿 正品", "ＡＡＡ 1：1 watch", "2024 1:10 model", "假期 放假", "买到假货了"]
    )
    assert blatant_titles(texts) == [True, False, True, False, False, True]
