"""Listing and review text: a hashed char-n-gram logistic model per text kind, trained out of fold.

``fit`` labels every listing text (title as of the example's ``as_of`` + description) and every review
text of an example shop with that shop's label, and trains, for each text kind, one model per fold
(folds by a stable hash of ``shop_id``: crc32 modulo ``n_folds``, so a shop is in the same fold whatever
its as-of) plus one model on everything. ``transform(..., oof=True)`` scores the texts of a shop seen in
fit with the model of the fold that left that shop out, so no shop's text score has seen its own label;
every other shop (and ``oof=False``) gets the full model. Aggregated per shop: max, mean and share of
texts above ``threshold``, for listings and reviews separately, plus the explicit counterfeit-wording
counts of :mod:`features.lexicon`.
"""

from __future__ import annotations

import zlib
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import scipy.sparse as sp

from features.base import MarketplaceFeatureBuilder, stack
from features.context import Snapshot, group_max
from features.docs import FeatureDoc
from features.listings import Texts, blatant_title_flags, description_texts, listing_state, review_texts, title_texts
from features.text import CharNgramHasher, TextMemo, fit_hashed_logistic, sigmoid, unit_rows
from marketplace.tables import Marketplace

KINDS = ("listing", "review")


def shop_folds(shop_ids: np.ndarray | pd.Index | list[str], n_folds: int) -> np.ndarray:
    """The fold of each shop: crc32 of its UTF-8 id modulo ``n_folds`` (stable across runs and machines)."""
    return np.fromiter(
        (zlib.crc32(str(s).encode("utf-8")) % n_folds for s in shop_ids), dtype=np.intp, count=len(shop_ids)
    )


def _dot_pairs(hasher: CharNgramHasher, texts: list[str], W: np.ndarray) -> list[tuple[float, float]]:
    """(counts . w, n-grams) of each text for a one-column ``W`` (each text's own n-grams only)."""
    dots, n = hasher.dots(texts, W)
    return list(zip(dots[:, 0].tolist(), n.tolist(), strict=True))


def _documents(snap: Snapshot, kind: str) -> tuple[np.ndarray, list[Texts]]:
    """The documents of one kind: their shop rows and their text parts (a listing is its title as of
    ``as_of`` plus its description; a review is its text)."""
    if kind == "listing":
        return listing_state(snap).codes, [title_texts(snap), description_texts(snap)]
    return snap.codes("reviews")[snap.before("reviews", "created_at")], [review_texts(snap)]


class ShopTextFeatures(MarketplaceFeatureBuilder):
    """Per shop: out-of-fold text-model scores of its listings and reviews, and counterfeit wording."""

    group = "text"
    needs: ClassVar[dict[str, tuple[str, ...]]] = {
        "listings": ("listing_id", "shop_id", "created_at", "title", "description"),
        "listing_edits": ("edit_id", "listing_id", "edited_at", "title", "price"),
        "reviews": ("shop_id", "created_at", "text"),
    }

    def __init__(
        self,
        n_features: int = 2**18,
        ngram_range: tuple[int, int] = (1, 3),
        n_folds: int = 5,
        alpha: float = 1e-5,
        max_iter: int = 10,
        threshold: float = 0.5,
        max_train_texts: int = 200_000,
        random_state: int = 0,
        solver: str = "idf_logistic",
        C: float = 0.25,
    ) -> None:
        self.n_features = n_features
        self.ngram_range = ngram_range
        self.n_folds = n_folds
        self.alpha = alpha
        self.max_iter = max_iter
        self.threshold = threshold
        self.max_train_texts = max_train_texts
        self.random_state = random_state
        self.solver = solver
        self.C = C

    # -- fit -----------------------------------------------------------------------------------------------
    def _fit(self, mp: Marketplace, examples: pd.DataFrame | None) -> None:
        self.__dict__.pop("_dot_memos", None)  # kept dots belong to the coefficients being replaced
        if self.n_folds < 2:
            raise ValueError(f"n_folds must be >= 2, got {self.n_folds}")
        if examples is None or len(examples) == 0 or examples["label"].nunique() < 2:
            # unsupervised use (no labels, or one class only): no text model; scores read NaN
            self.coef_: dict[str, np.ndarray] | None = None
            self.intercept_: dict[str, np.ndarray] | None = None
            self.train_texts_: dict[str, int] = dict.fromkeys(KINDS, 0)
            self.fitted_shops_ = pd.Index([], dtype="string", name="shop_id")
            return
        latest = examples.assign(as_of=pd.to_datetime(examples["as_of"])).sort_values(["shop_id", "as_of"])
        latest = latest.drop_duplicates("shop_id", keep="last")
        labels = np.asarray(latest["label"], dtype=np.int64)
        if not np.isin(labels, [0, 1]).all():
            raise ValueError("example labels must be 0/1 (or booleans)")
        hasher = CharNgramHasher(self.n_features, self.ngram_range)
        metas: dict[str, list[np.ndarray]] = {k: [] for k in KINDS}
        matrices: dict[str, list[sp.csr_matrix]] = {k: [] for k in KINDS}
        for as_of, group in latest.groupby("as_of", sort=True):
            snap = Snapshot.build(mp, pd.Timestamp(str(as_of)), group["shop_id"].astype("str").to_numpy())
            y = np.asarray(group["label"], dtype=np.int64)
            folds = shop_folds(snap.index.to_numpy(dtype=object), self.n_folds)
            for kind in KINDS:
                owner, parts = _documents(snap, kind)
                if len(owner) == 0:
                    continue
                # one training document per (shop, distinct text combination)
                combo = np.unique(np.column_stack([owner, *[p.inverse for p in parts]]), axis=0)
                X, n = None, np.zeros(len(combo))
                for k, part in enumerate(parts):
                    counts, lengths = hasher.counts(part.unique)
                    rows = counts[combo[:, k + 1]]
                    X = rows if X is None else X + rows
                    n += lengths[combo[:, k + 1]]
                assert X is not None
                matrices[kind].append(unit_rows(X, n))
                metas[kind].append(np.column_stack([y[combo[:, 0]], folds[combo[:, 0]]]))
        coefs: dict[str, np.ndarray] = {}
        intercepts: dict[str, np.ndarray] = {}
        self.train_texts_ = {}
        for kind in KINDS:
            meta = np.concatenate(metas[kind]) if metas[kind] else np.empty((0, 2), np.int64)
            X_all = sp.vstack(matrices[kind]).tocsr() if matrices[kind] else sp.csr_matrix((0, self.n_features))
            if len(meta) > self.max_train_texts:
                keep = np.sort(np.random.default_rng(self.random_state).permutation(len(meta))[: self.max_train_texts])
                meta, X_all = meta[keep], X_all[keep]
            self.train_texts_[kind] = len(meta)
            W = np.zeros((self.n_features, self.n_folds + 1), dtype=np.float32)
            b = np.zeros(self.n_folds + 1)
            for f in range(self.n_folds + 1):
                train = meta[:, 1] != f if f < self.n_folds else np.ones(len(meta), dtype=bool)
                W[:, f], b[f] = fit_hashed_logistic(
                    X_all[train],
                    meta[train, 0],
                    alpha=self.alpha,
                    max_iter=self.max_iter,
                    class_weight="balanced",
                    random_state=self.random_state,
                    solver=self.solver,
                    C=self.C,
                )
            coefs[kind], intercepts[kind] = W, b
        self.coef_ = coefs
        self.intercept_ = intercepts
        self.fitted_shops_ = pd.Index(latest["shop_id"].astype("string").to_numpy(), name="shop_id")

    # -- names ------------------------------------------------------------------------------------------------
    def _docs(self) -> list[FeatureDoc]:
        g = self.group
        thr = f"{self.threshold:.0%}"
        docs: list[FeatureDoc] = []
        for kind in KINDS:
            plural = f"{kind}s"
            docs += [
                FeatureDoc(f"{kind}_text_max", f"most counterfeit-like {kind} text scores {{value:.2f}}", True, g),
                FeatureDoc(f"{kind}_text_mean", f"{plural} read counterfeit-like at {{value:.2f}} on average", True, g),
                FeatureDoc(
                    f"{kind}_text_share_high",
                    f"{{value:.0%}} of {plural} read counterfeit-like (score > {thr})",
                    True,
                    g,
                ),
            ]
        docs += [
            FeatureDoc("blatant_titles", "{value:.0f} listing titles say replica/1:1/高仿/A货", True, g),
            FeatureDoc("blatant_title_share", "{value:.0%} of listing titles say replica/1:1/高仿/A货", True, g),
        ]
        return docs

    # -- transform -----------------------------------------------------------------------------------------
    def _column(self, snap: Snapshot, owner: np.ndarray) -> np.ndarray:
        """The model column for each text's shop: its fold (oof, shop seen in fit) or the full model."""
        full = np.full(len(owner), self.n_folds, dtype=np.intp)
        if not snap.oof or len(owner) == 0:
            return full
        seen = np.asarray(self.fitted_shops_.get_indexer(snap.index), dtype=np.intp) >= 0
        fold = np.full(snap.n, self.n_folds, dtype=np.intp)
        fold[seen] = shop_folds(snap.index[seen].to_numpy(dtype=object), self.n_folds)
        col: np.ndarray = fold[owner]
        return col

    def _scores(self, snap: Snapshot, kind: str, owner: np.ndarray, parts: list[Texts]) -> np.ndarray:
        """Per document: sigmoid(sum over parts of counts . w / sqrt(n-grams) + b), w of its column."""
        if len(owner) == 0:
            return np.empty(0)
        if self.coef_ is None or self.intercept_ is None:
            return np.full(len(owner), np.nan)
        hasher = CharNgramHasher(self.n_features, self.ngram_range)
        col = self._column(snap, owner)
        W, b = self.coef_[kind], self.intercept_[kind]
        full_only = bool((col == self.n_folds).all())
        Wc = W[:, self.n_folds : self.n_folds + 1] if full_only else W
        dots = np.zeros((len(owner), Wc.shape[1]))
        n = np.zeros(len(owner))
        for part in parts:
            if full_only:  # the full model's (dot, n-grams) of a text never change: kept per text
                pairs = self._memo(kind).map(part.unique, lambda texts: _dot_pairs(hasher, texts, Wc))
                part_dots = np.fromiter((p[0] for p in pairs), dtype=np.float64, count=len(pairs))[:, None]
                lengths = np.fromiter((p[1] for p in pairs), dtype=np.float64, count=len(pairs))
            else:
                part_dots, lengths = hasher.dots(part.unique, Wc)
            dots += part_dots[part.inverse]
            n += lengths[part.inverse]
        z = dots / np.sqrt(np.maximum(n, 1.0))[:, None]
        if full_only:
            out: np.ndarray = sigmoid(z[:, 0] + b[self.n_folds])
            return out
        rows = np.arange(len(owner))
        return sigmoid(z[rows, col] + b[col])

    def _memo(self, kind: str) -> TextMemo:
        """The kept full-model (dot, n-grams) per text of ``kind`` (not pickled: see ``__getstate__``)."""
        memos: dict[str, TextMemo] = self.__dict__.setdefault("_dot_memos", {})
        return memos.setdefault(kind, TextMemo())

    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())
        state.pop("_dot_memos", None)
        return state

    def block(self, snap: Snapshot) -> np.ndarray:
        n = snap.n
        cols: list[np.ndarray] = []
        state = listing_state(snap)
        for kind in KINDS:
            if self.coef_ is None:  # no text model (fitted without labels): the scores are NaN
                cols += [np.full(n, np.nan)] * 3
                continue
            owner, parts = _documents(snap, kind)
            s = self._scores(snap, kind, owner, parts)
            count = snap.count(owner)
            high = snap.count(owner[s > self.threshold])
            cols += [
                group_max(owner, s, n),
                np.where(count > 0, snap.ordered_sum(owner, s) / np.maximum(count, 1), np.nan),
                np.where(count > 0, high / np.maximum(count, 1), 0.0),
            ]
        blatant = blatant_title_flags(snap)
        listings = snap.count(state.codes)
        b = snap.count(state.codes[blatant])
        cols += [b, np.where(listings > 0, b / np.maximum(listings, 1), 0.0)]
        return stack(cols, n)
