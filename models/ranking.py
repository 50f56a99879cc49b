"""Rank and percentile of a score in a reference population, ties broken.

A calibrated score is a probability; isotonic calibration maps whole ranges of raw scores to a few levels,
so many shops can share a score and "riskiest first" is then a tie. The rank answers "where does this shop
stand": position 1 is the riskiest shop of the reference population (the shops of the marketplace a
service scores, or the population sample a model was trained against). Ties in score are broken by shop id
(ascending), so every shop of the reference has its own rank.

Built once (two sorts when a model version is loaded); a request costs two ``np.searchsorted`` calls over
the batch, plus one over the sorted shop ids for the shops whose score other reference shops share.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray


@dataclass(frozen=True)
class Ranked:
    """Where one score stands: ``rank`` 1 = riskiest of ``of`` reference shops (``of + 1``: below them all);
    ``percentile`` the share (0-100) of the reference ranked at or below it."""

    rank: int
    percentile: float


#: batches up to this size are ranked one score at a time (``ScoreRanking._rank_few``)
FEW = 8


class ScoreRanking:
    """A sorted reference of scores (riskiest first) and, given its shop ids, each shop's own rank.

    ``source`` says what the reference is (``marketplace``: the loaded marketplace's shops as of its snapshot;
    ``training_population``: the model's population sample)."""

    def __init__(self, scores: ArrayLike, shop_ids: Sequence[str] | None = None, source: str = "marketplace") -> None:
        s = np.asarray(scores, dtype=np.float64).ravel()
        if np.isnan(s).any():
            raise ValueError("reference scores hold NaN; a rank needs comparable scores")
        if shop_ids is not None and len(shop_ids) != len(s):
            raise ValueError(f"reference: {len(s)} scores but {len(shop_ids)} shop ids")
        if shop_ids is None:
            order = np.argsort(-s, kind="stable")
            self.ids_: NDArray[np.str_] | None = None
        else:
            ids = np.asarray([str(v) for v in shop_ids], dtype=np.str_)
            order = np.lexsort((ids, -s))  # score descending, then shop id ascending
            by_id = np.argsort(ids, kind="stable")
            #: the reference's shop ids sorted, with each one's score and 0-based position in rank order
            self.ids_ = ids[by_id]
            position = np.empty(len(s), dtype=np.int64)
            position[order] = np.arange(len(s))
            self.position_: NDArray[np.int64] = position[by_id]
            self.score_: NDArray[np.float64] = s[by_id]
        #: the negated scores in rank order (ascending, so ``searchsorted`` counts the shops scoring higher)
        self.neg_: NDArray[np.float64] = np.ascontiguousarray(-s[order])
        self.size = len(s)
        self.source = source

    def rank(self, scores: ArrayLike, shop_ids: Sequence[str] | None = None) -> tuple[list[int], list[float]]:
        """(ranks, percentiles) of ``scores``. A shop of the reference scored as in the reference gets its own
        rank (ties in score broken by shop id); any other score ranks ahead of the reference shops that share
        it: 1 + the number of reference shops scoring higher."""
        n = self.size
        given = np.asarray(scores, dtype=np.float64).ravel()
        if n == 0:
            return [1] * len(given), [100.0] * len(given)
        if len(given) <= FEW:
            return self._rank_few(given.tolist(), shop_ids)
        neg = -given
        left = np.searchsorted(self.neg_, neg, side="left")
        rank = left + 1
        ids = self.ids_
        if ids is not None and shop_ids is not None and len(neg):
            right = np.searchsorted(self.neg_, neg, side="right")
            tied = np.flatnonzero(right - left > 1)  # scores other reference shops share: order by shop id
            if len(tied):
                asked = np.asarray([str(shop_ids[i]) for i in tied.tolist()], dtype=np.str_)
                j = np.minimum(np.searchsorted(ids, asked), len(ids) - 1)
                own = (ids[j] == asked) & (self.score_[j] == -neg[tied])  # a reference shop, scored as there
                rank[tied[own]] = self.position_[j[own]] + 1
        pct = np.rint(100_000.0 * (n - rank + 1) / n) / 1000.0  # three decimals (np.round costs 30 us a call)
        return rank.tolist(), pct.tolist()

    def _rank_few(self, values: list[float], shop_ids: Sequence[str] | None) -> tuple[list[int], list[float]]:
        """``rank`` for a handful of scores, one at a time: numpy's per-call overhead on tiny arrays would
        cost ten times the look-ups (the by-id hot path scores one shop a request)."""
        n, neg, ids = self.size, self.neg_, self.ids_
        ranks: list[int] = []
        pcts: list[float] = []
        for i, v in enumerate(values):
            lo = int(neg.searchsorted(-v))
            r = lo + 1
            if ids is not None and shop_ids is not None and int(neg.searchsorted(-v, "right")) - lo > 1:
                sid = str(shop_ids[i])
                j = int(ids.searchsorted(sid))
                if j < len(ids) and ids[j] == sid and self.score_[j] == v:
                    r = int(self.position_[j]) + 1
            ranks.append(r)
            pcts.append(round(100_000.0 * (n - r + 1) / n) / 1000.0)
        return ranks, pcts

    def one(self, score: float, shop_id: str | None = None) -> Ranked:
        ranks, pcts = self.rank([score], None if shop_id is None else [shop_id])
        return Ranked(ranks[0], pcts[0])
