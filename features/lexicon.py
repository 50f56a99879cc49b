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

_NEG = r"(?:不是|并非|绝非|绝不是|决不是|没有|拒绝|不卖|不售|非|无|不|not|no|never|non|isn't|wasn't|zero|anti)"

_BLATANT = (
    r"replica|counterfeit|\bfakes?\b|knock[- ]?offs?|super ?copy|high ?copy|mirror (?:quality|grade|copy)"
    r"|\baaa+\b|(?<![\d.])1\s*[:：比]\s*1(?![\d.])|一比一"
    r"|高仿|a货|原单|复刻|精仿|超a|仿品|仿牌|假货|莆田|尾单|纯原|顶级版|同厂"
)
_BLATANT_WORDS = re.compile(_BLATANT)
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
