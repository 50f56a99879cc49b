"""Per-text results kept across transforms (``features.text.TextMemo``): normalised texts, lexicon flags and
the text model's dot products. A kept value must be exactly the fresh one: rows are identical with the
memos empty, warm, or filled by other shops; memos are never pickled and a refit forgets them."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd

from features import listings
from features.pipeline import ShopFeaturePipeline
from features.shop_text import ShopTextFeatures
from features.text import CharNgramHasher, TextMemo
from tests.features.factory import AS_OF, examples_for, make_marketplace


def test_memo_returns_what_compute_returns_and_stays_bounded() -> None:
    calls: list[list[object]] = []

    def upper(texts: list[object]) -> list[object]:
        calls.append(list(texts))
        return [t.upper() if isinstance(t, str) else t for t in texts]

    memo = TextMemo(max_chars=10)
    assert memo.map(["ab", "cd", "ab"], upper) == ["AB", "CD", "AB"]
    assert calls == [["ab", "cd", "ab"]]  # both "ab" were unknown when asked
    assert memo.map(["cd", None, "ef"], upper) == ["CD", None, "EF"]
    assert calls[-1] == [None, "ef"]  # "cd" kept; non-texts are never kept
    assert memo.map(["abcdefgh"], upper) == ["ABCDEFGH"]  # over the bound: emptied, then kept
    assert len(memo) == 1
    assert memo.map(["x" * 11], upper) == ["X" * 11]  # larger than the bound alone: not kept
    assert len(memo) == 1


def test_kept_dot_products_equal_fresh_ones_whatever_else_was_hashed() -> None:
    hasher = CharNgramHasher(2**12, (1, 3))
    W = np.random.default_rng(0).normal(size=(2**12, 1)).astype(np.float32)
    texts = ["高仿 1:1 包包", "genuine leather bag", "", "a", "replica AAA bag 😀"]
    alone = [hasher.dots([t], W) for t in texts]
    together_dots, together_n = hasher.dots(texts, W)
    for i, (d, n) in enumerate(alone):
        assert d[0, 0] == together_dots[i, 0] and n[0] == together_n[i]  # bit-identical


def _forget_texts() -> None:
    for memo in (listings._NORMALISED, listings._BLATANT, listings._SAYS_FAKE):
        memo.clear()


def test_rows_are_identical_with_cold_warm_and_foreign_memos() -> None:
    mp, truth = make_marketplace(30, seed=9)
    pipe = ShopFeaturePipeline(text_n_features=2**12, text_folds=3).fit(mp, examples_for(truth))
    text = next(b for b in pipe.builders_ if isinstance(b, ShopTextFeatures))
    _forget_texts()
    text.__dict__.pop("_dot_memos", None)
    shops = mp.shops["shop_id"]
    cold = pipe.transform(mp, AS_OF, shops.iloc[::2])  # memos filled by half the shops
    assert len(text._memo("listing")) > 0 and len(listings._NORMALISED) > 0
    full = pipe.transform(mp, AS_OF)  # the rest hashed now, the first half read back
    again = pipe.transform(mp, AS_OF)  # everything read back
    pd.testing.assert_frame_equal(full.loc[cold.index], cold, check_exact=True)
    pd.testing.assert_frame_equal(again, full, check_exact=True)
    # a pipeline that never saw a memo (unpickled: memos are not pickled) gives the same rows
    copy = pickle.loads(pickle.dumps(pipe))
    assert "_dot_memos" not in vars(next(b for b in copy.builders_ if isinstance(b, ShopTextFeatures)))
    _forget_texts()
    pd.testing.assert_frame_equal(copy.transform(mp, AS_OF), full, check_exact=True)


def test_a_refit_forgets_the_kept_dot_products() -> None:
    mp, truth = make_marketplace(20, seed=3)
    examples = examples_for(truth)
    builder = ShopTextFeatures(n_features=2**10, n_folds=3).fit(mp, examples)
    builder.transform(mp, AS_OF)
    assert len(builder._memo("listing")) > 0
    flipped = examples.assign(label=1 - examples["label"])
    refit = builder.fit(mp, flipped).transform(mp, AS_OF)
    fresh = ShopTextFeatures(n_features=2**10, n_folds=3).fit(mp, flipped).transform(mp, AS_OF)
    pd.testing.assert_frame_equal(refit, fresh, check_exact=True)
