"""Explicit counterfeit wording in Chinese and English, negation-aware.

Two cheap, explainable signals next to the learned text score:

- ``blatant_title``: a listing says what it is ("replica", "1:1", "A货", "高仿", "原单", ...), unless the
  phrase is negated ("非高仿", "拒绝假货", "not a replica", "no fakes").
- ``says_fake``: a review says the goods were fake ("假货", "不是正品", "counterfeit", "not genuine", ...),
  unless negated ("不是假货", "not fake"); holiday words that contain 假 (放假, 假期) never count.

Both run on text already normalised by :func:`features.text.normalise_text` (NFKC + casefold), so
"ＲＥＰＬＩＣＡ", "Replica" and "replica" read the same.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from itertools import accumulate

from features.text import joined

_NEG = r"(?:不是|并非|绝非|绝不是|决不是|没有|拒绝|不卖|不售|非|无|不|not|no|never|non|isn't|wasn't|zero|anti)"

#: (pattern, a word without spaces that every match of the pattern contains: its hint)
_BLATANT_TERMS = (
    ("replica", "replica"),
    ("counterfeit", "counterfeit"),
    (r"\bfakes?\b", "fake"),
    (r"knock[- ]?offs?", "knock"),
    ("super ?copy", "super"),
    ("high ?copy", "high"),
    ("mirror (?:quality|grade|copy)", "mirror"),
    (r"\baaa+\b", "aaa"),
    (r"(?<![\d.])1\s*[:：比]\s*1(?![\d.])", "1"),
    *(
        (w, w)
        for w in [
            "一比一",
            "高仿",
            "a货",
            "原单",
            "复刻",
            "精仿",
            "超a",
            "仿品",
            "仿牌",
            "假货",
            "莆田",
            "尾单",
            "纯原",
            "顶级版",
            "同厂",
        ]
    ),
)
_BLATANT = "|".join(p for p, _ in _BLATANT_TERMS)
_BLATANT_WORDS = re.compile(_BLATANT)
#: a text none of these is in cannot be blatant: a cheap first pass (the word boundaries and look-behind of
#: ``_BLATANT`` make Python's regex engine try every branch at every character, ~100 ns a character)
_BLATANT_HINTS = re.compile("|".join(re.escape(h) for _, h in _BLATANT_TERMS))
_BLATANT_NEGATED = re.compile(_NEG + r"\s*(?:a\s+|是)?(?:" + _BLATANT + r")")

_FAKE_EXPLICIT = re.compile(
    r"不是正品|非正品|不是真的|不是原装|鉴定为假|鉴定是假|not genuine|not authentic|not original|not real\b"
)
_FAKE = (
    r"假货|假冒|是假的|买到假|收到假|发来假|假鞋|假包|假表|假酒|假烟|假的吧|仿品|高仿|盗版|山寨|冒牌|a货"
    r"|\bfakes?\b|counterfeit|replica|knock[- ]?offs?"
)
_FAKE_WORDS = re.compile(_FAKE)
_FAKE_NEGATED = re.compile(_NEG + r"\s*(?:a\s+|是)?(?:" + _FAKE + r")")
_HOLIDAY = re.compile(r"放假|请假|假期|暑假|寒假|假日|休假|度假")


def blatant_title(text: str) -> bool:
    """A listing text states it is a copy (negations removed first)."""
    return _BLATANT_WORDS.search(_BLATANT_NEGATED.sub(" ", text)) is not None


def says_fake(text: str) -> bool:
    """A review says the goods are fake (negations and holiday words removed first)."""
    if _FAKE_EXPLICIT.search(text):
        return True
    cleaned = _FAKE_NEGATED.sub(" ", _HOLIDAY.sub(" ", text))
    return _FAKE_WORDS.search(cleaned) is not None


# -- many texts in one pass ------------------------------------------------------------------------------


def blatant_titles(texts: list[str]) -> list[bool]:
    """``blatant_title`` of each text. One pass over all texts (joined by ``features.text.SEPARATOR``, which
    no hint holds) finds those holding a hint; only they are checked. A text without a hint is never
    blatant: removing a negation leaves a space, and every hint is a word without spaces, so a match after
    the removal holds a hint that was already in the text."""
    whole = joined(texts)
    if whole is None:
        return [blatant_title(t) for t in texts]
    starts = [0, *accumulate(len(t) + 1 for t in texts[:-1])]
    hinted = {bisect_right(starts, m.start()) - 1 for m in _BLATANT_HINTS.finditer(whole)}
    return [i in hinted and blatant_title(t) for i, t in enumerate(texts)]
