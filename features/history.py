"""Seller history, point in time: orders, GMV, refunds, complaints, ratings, fake-saying reviews, churn.

Every count is over a window of 7/30/90/365 days ending just before ``as_of`` (events at or after
``as_of`` are invisible). Rates are smoothed toward the population rate learned in ``fit``
(additive smoothing, ``prior_strength`` pseudo-events), so a shop with 2 orders and 2 refunds reads
as a little above average, not as "100% refunds".
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import ClassVar

import numpy as np
import pandas as pd

from features.base import MarketplaceFeatureBuilder, fit_cutoff, stack
from features.context import DAY_US, Snapshot, group_max, to_us
from features.docs import FeatureDoc
from features.listings import fake_review_flags, listing_state
from features.smoothing import smooth_rate
from marketplace.schema import COMPLAINT_KINDS, COMPLAINT_SOURCES
from marketplace.tables import Marketplace

WINDOWS = (7, 30, 90, 365)

_KIND_WORDS = {
    "counterfeit": "counterfeit complaints",
    "quality": "quality complaints",
    "not_delivered": "not-delivered complaints",
    "description_mismatch": "description-mismatch complaints",
    "other": "other complaints",
}
_SOURCE_WORDS = {"consumer": "consumers", "brand_owner": "brand owners", "test_buy": "test buys"}


@dataclass(frozen=True)
class PopulationCounts:
    """The event counts the population rates are ratios of. They add up over disjoint sets of shops,
    so a marketplace too large to hold can be counted partition by partition and summed: the rates
    are then the ones the whole marketplace gives (integers: the sums are exact in any order)."""

    orders: int = 0
    refunded: int = 0
    counterfeit_complaints: int = 0
    reviews: int = 0
    rating_sum: float = 0.0
    low_ratings: int = 0
    fake_reviews: int = 0
    listings: int = 0
    delisted: int = 0

    def __add__(self, other: PopulationCounts) -> PopulationCounts:
        return PopulationCounts(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))


def population_counts(mp: Marketplace, cutoff: pd.Timestamp) -> PopulationCounts:
    """The counts over every shop of ``mp`` from events strictly before ``cutoff`` (what ``fit`` learns)."""
    snap = Snapshot.build(mp, cutoff, None)
    o = snap.before("orders", "ordered_at")
    refunded = snap.times("orders", "refunded_at")[o] < snap.as_of_us
    c = snap.before("complaints", "filed_at")
    kinds = snap.category_codes("complaints", "kind", COMPLAINT_KINDS)[c]
    r = snap.before("reviews", "created_at")
    ratings = snap.values("reviews", "rating", np.float64)[r]
    state = listing_state(snap)
    return PopulationCounts(
        orders=len(o),
        refunded=int(refunded.sum()),
        counterfeit_complaints=int((kinds == 0).sum()),
        reviews=len(r),
        rating_sum=float(ratings.sum()),
        low_ratings=int((ratings <= 2).sum()),
        fake_reviews=int(fake_review_flags(snap).sum()) if len(r) else 0,
        listings=len(state.pos),
        delisted=int(state.delisted.sum()),
    )


class SellerHistoryFeatures(MarketplaceFeatureBuilder):
    """Windowed order/refund/complaint/review/listing-churn statistics of each shop."""

    group = "history"
    needs: ClassVar[dict[str, tuple[str, ...]]] = {
        "shops": ("shop_id", "opened_at"),
        "orders": ("shop_id", "ordered_at", "amount", "refunded_at"),
        "complaints": ("shop_id", "filed_at", "kind", "source"),
        "reviews": ("shop_id", "created_at", "rating", "text"),
        "listings": ("listing_id", "shop_id", "created_at", "delisted_at", "title", "price"),
        "listing_edits": ("edit_id", "listing_id", "edited_at", "title", "price"),
    }

    def __init__(self, windows: tuple[int, ...] = WINDOWS, prior_strength: float = 10.0) -> None:
        self.windows = windows
        self.prior_strength = prior_strength

    # -- fit: population rates the smoothed rates shrink toward --------------------------------
    def fit(
        self, mp: Marketplace, examples: pd.DataFrame | None = None, population: PopulationCounts | None = None
    ) -> SellerHistoryFeatures:
        """As every builder; ``population``: the population counts already summed over the whole
        marketplace (streamed fits, :func:`population_counts` per partition), used instead of ``mp``'s."""
        self._population = population
        try:
            super().fit(mp, examples)
        finally:
            del self._population
        return self

    def _fit(self, mp: Marketplace, examples: pd.DataFrame | None) -> None:
        if self.prior_strength < 0:
            raise ValueError(f"prior_strength must be >= 0, got {self.prior_strength}")
        if not self.windows or len(self.windows) > 100 or any(int(w) <= 0 for w in self.windows):
            raise ValueError(f"windows must be 1 to 100 positive day counts, got {self.windows}")
        cutoff = fit_cutoff(mp, examples)
        counts = getattr(self, "_population", None) or population_counts(mp, cutoff)
        self.refund_rate_ = counts.refunded / counts.orders if counts.orders else 0.05
        self.counterfeit_complaint_rate_ = counts.counterfeit_complaints / counts.orders if counts.orders else 0.01
        self.rating_mean_ = counts.rating_sum / counts.reviews if counts.reviews else 4.5
        self.low_rating_share_ = counts.low_ratings / counts.reviews if counts.reviews else 0.05
        self.fake_review_share_ = counts.fake_reviews / counts.reviews if counts.reviews else 0.01
        self.delisted_share_ = counts.delisted / counts.listings if counts.listings else 0.05
        self.fit_cutoff_ = cutoff

    def _smooth(self, hits: np.ndarray, total: np.ndarray, prior: float) -> np.ndarray:
        return smooth_rate(hits, total, prior, float(self.prior_strength))

    # -- names and reasons -------------------------------------------------------------------------
    def _docs(self) -> list[FeatureDoc]:
        g = self.group
        docs: list[FeatureDoc] = []
        for w in self.windows:
            d = f"{w} days"
            docs += [
                FeatureDoc(f"orders_{w}d", f"{{value:.0f}} orders in {d}", False, g),
                FeatureDoc(f"gmv_{w}d", f"GMV of {{value:,.0f}} yuan in {d}", False, g),
                FeatureDoc(f"refunds_{w}d", f"{{value:.0f}} refunds in {d}", True, g),
                FeatureDoc(f"refund_rate_{w}d", f"{{value:.0%}} of orders in {d} refunded (smoothed)", True, g),
                FeatureDoc(f"complaints_{w}d", f"{{value:.0f}} complaints in {d}", True, g),
            ]
            docs += [
                FeatureDoc(f"complaints_{k}_{w}d", f"{{value:.0f}} {_KIND_WORDS[k]} in {d}", True, g)
                for k in COMPLAINT_KINDS
            ]
            docs += [
                FeatureDoc(
                    f"complaints_by_{s}_{w}d", f"{{value:.0f}} complaints from {_SOURCE_WORDS[s]} in {d}", True, g
                )
                for s in COMPLAINT_SOURCES
            ]
            docs += [
                FeatureDoc(
                    f"counterfeit_complaint_rate_{w}d",
                    f"{{value:.1%}} counterfeit complaints per order in {d} (smoothed)",
                    True,
                    g,
                ),
                FeatureDoc(f"reviews_{w}d", f"{{value:.0f}} reviews in {d}", False, g),
                FeatureDoc(f"rating_mean_{w}d", f"average rating {{value:.2f}} in {d} (smoothed)", False, g),
                FeatureDoc(f"low_rating_share_{w}d", f"{{value:.0%}} of reviews in {d} rate 1-2 stars", True, g),
                FeatureDoc(f"fake_reviews_{w}d", f"{{value:.0f}} reviews in {d} say the goods are fake", True, g),
                FeatureDoc(
                    f"fake_review_share_{w}d", f"{{value:.0%}} of reviews in {d} say the goods are fake", True, g
                ),
                FeatureDoc(f"listings_created_{w}d", f"{{value:.0f}} listings created in {d}", True, g),
                FeatureDoc(f"delistings_{w}d", f"{{value:.0f}} listings removed in {d}", True, g),
                FeatureDoc(f"listing_edits_{w}d", f"{{value:.0f}} listing edits in {d}", True, g),
            ]
        docs += [
            FeatureDoc("complaints_counterfeit_all", "{value:.0f} counterfeit complaints in total", True, g),
            FeatureDoc("fake_reviews_all", "{value:.0f} reviews in total say the goods are fake", True, g),
            FeatureDoc("account_age_days", "shop opened {value:.0f} days ago", False, g),
            FeatureDoc("days_since_last_order", "last order {value:.0f} days ago", False, g),
            FeatureDoc("orders_per_day_365d", "{value:.1f} orders a day over the last year", False, g),
            FeatureDoc("order_growth_30d", "orders in the last 30 days are {value:.1f}x the 30 days before", True, g),
            FeatureDoc("gmv_growth_30d", "GMV in the last 30 days is {value:.1f}x the 30 days before", True, g),
            FeatureDoc("avg_order_amount_90d", "average order {value:,.0f} yuan in 90 days", False, g),
            FeatureDoc("listings_total", "{value:.0f} listings ever created", False, g),
            FeatureDoc("active_listings", "{value:.0f} listings online", False, g),
            FeatureDoc("delisted_share", "{value:.0%} of listings removed by the seller (smoothed)", True, g),
            FeatureDoc("edited_listing_share", "{value:.0%} of listings edited after creation", True, g),
            FeatureDoc("edits_per_listing", "{value:.1f} edits per listing", True, g),
        ]
        return docs

    # -- transform ------------------------------------------------------------------------------------
    def block(self, snap: Snapshot) -> np.ndarray:
        n = snap.n
        now = snap.as_of_us
        cols: list[np.ndarray] = []

        o = snap.before("orders", "ordered_at")
        oc = snap.codes("orders")[o]
        ot = snap.times("orders", "ordered_at")[o]
        # whole cents: integer-valued float sums are exact, so GMV never depends on the row order
        amount = np.round(snap.values("orders", "amount", np.float64)[o] * 100.0)
        refunded_at = snap.times("orders", "refunded_at")[o]
        refunded = refunded_at < now

        c = snap.before("complaints", "filed_at")
        cc = snap.codes("complaints")[c]
        ct = snap.times("complaints", "filed_at")[c]
        kind = snap.category_codes("complaints", "kind", COMPLAINT_KINDS)[c]
        source = snap.category_codes("complaints", "source", COMPLAINT_SOURCES)[c]

        r = snap.before("reviews", "created_at")
        rc = snap.codes("reviews")[r]
        rt = snap.times("reviews", "created_at")[r]
        rating = snap.values("reviews", "rating", np.float64)[r]
        fake = fake_review_flags(snap)

        state = listing_state(snap)
        lc = state.codes
        ec = lc[state.edit_listing]
        dl = state.delisted

        nk, ns = len(COMPLAINT_KINDS), len(COMPLAINT_SOURCES)
        win = _Windows(snap, self.windows)
        # each event's window index once per time column, shared by every statistic over it
        jo, jc, jr = win.index(ot), win.index(ct), win.index(rt)
        orders_w = win.counts(oc, jo)
        gmv_w = win.counts(oc, jo, amount) / 100.0
        refunds_w = win.counts(oc[refunded], win.index(refunded_at[refunded]))
        refunded_w = win.counts(oc, jo, refunded.astype(np.float64))
        kind_ok, source_ok = kind >= 0, source >= 0
        kinds_w = win.counts(cc[kind_ok], jc[kind_ok], sub=kind[kind_ok], k=nk)
        sources_w = win.counts(cc[source_ok], jc[source_ok], sub=source[source_ok], k=ns)
        complaints_w = win.counts(cc, jc)
        reviews_w = win.counts(rc, jr)
        rating_w = win.counts(rc, jr, rating)
        low_w = win.counts(rc, jr, (rating <= 2).astype(np.float64))
        fake_w = win.counts(rc, jr, fake.astype(np.float64))
        del jo, jc, jr
        created_w = win.counts(lc, win.index(state.created_at))
        delisted_w = win.counts(lc[dl], win.index(state.delisted_at[dl]))
        edits_w = win.counts(ec, win.index(state.edit_at))
        for w in range(len(self.windows)):
            orders = orders_w[w]
            reviews = reviews_w[w]
            cols += [
                orders,
                gmv_w[w],
                refunds_w[w],
                self._smooth(refunded_w[w], orders, self.refund_rate_),
                complaints_w[w],
                *(kinds_w[w, k] for k in range(nk)),
                *(sources_w[w, k] for k in range(ns)),
                self._smooth(kinds_w[w, 0], orders, self.counterfeit_complaint_rate_),
                reviews,
                self._smooth(rating_w[w], reviews, self.rating_mean_),
                self._smooth(low_w[w], reviews, self.low_rating_share_),
                fake_w[w],
                self._smooth(fake_w[w], reviews, self.fake_review_share_),
                created_w[w],
                delisted_w[w],
                edits_w[w],
            ]

        cols.append(snap.count(cc[kind == 0]))
        cols.append(snap.count(rc[fake]))
        age = self._account_age(snap)
        cols.append(age)
        last = group_max(oc, ot.astype(np.float64), n)
        cols.append((now - last) / DAY_US)
        cols.append(snap.count(oc[ot >= now - 365 * DAY_US]) / np.clip(age, 1.0, 365.0))
        cols += self._growth(snap, oc, ot, amount)
        cols.append(
            _safe_div(
                snap.count(oc[ot >= now - 90 * DAY_US], amount[ot >= now - 90 * DAY_US]) / 100.0,
                snap.count(oc[ot >= now - 90 * DAY_US]),
            )
        )
        total = snap.count(lc)
        cols += [total, total - snap.count(lc[dl]), self._smooth(snap.count(lc[dl]), total, self.delisted_share_)]
        edited = np.zeros(len(lc), dtype=bool)
        edited[state.edit_listing] = True
        cols += [_safe_div(snap.count(lc[edited]), total, 0.0), _safe_div(snap.count(ec), total, 0.0)]
        return stack(cols, n)

    def _account_age(self, snap: Snapshot) -> np.ndarray:
        codes = snap.codes("shops")
        opened = snap.times("shops", "opened_at")
        age = np.zeros(snap.n)
        has = codes >= 0
        # an opening at or after as_of reads as age 0, whatever its exact time
        age[codes[has]] = np.maximum(0.0, (snap.as_of_us - opened[has]) / DAY_US)
        return age

    def _growth(self, snap: Snapshot, oc: np.ndarray, ot: np.ndarray, amount: np.ndarray) -> list[np.ndarray]:
        now = snap.as_of_us
        last = ot >= now - 30 * DAY_US
        prev = (ot >= now - 60 * DAY_US) & ~last
        o1, o0 = snap.count(oc[last]), snap.count(oc[prev])
        g1, g0 = snap.count(oc[last], amount[last]), snap.count(oc[prev], amount[prev])
        return [(o1 + 1.0) / (o0 + 1.0), (g1 + 10_000.0) / (g0 + 10_000.0)]


class _Windows:
    """Counts in nested windows ending at ``as_of`` with one ``bincount`` per statistic.

    Each event falls in the smallest window that holds it (or none); per-shop counts by that window
    index, summed cumulatively over the windows sorted by length, give every window at once.
    """

    def __init__(self, snap: Snapshot, windows: tuple[int, ...]) -> None:
        self.snap = snap
        self.order = np.argsort(np.asarray(windows))
        self.bounds = np.asarray(windows, dtype=np.int64)[self.order] * DAY_US
        back = np.argsort(self.order)
        #: None when the windows are already sorted (the usual case: no reordering per call)
        self.back = None if (back == np.arange(len(back))).all() else back

    def index(self, t: np.ndarray) -> np.ndarray:
        """Per event: the smallest window holding it (len(windows): none), as int8."""
        return np.searchsorted(self.bounds, self.snap.as_of_us - t, side="left").astype(np.int8)

    def counts(
        self,
        codes: np.ndarray,
        j: np.ndarray,
        weights: np.ndarray | None = None,
        sub: np.ndarray | None = None,
        k: int = 1,
    ) -> np.ndarray:
        """(windows, n) sums, or (windows, k, n) by the category ``sub`` in [0, k): shops last, so each
        feature is one contiguous row (stacking the feature matrix is then plain copies)."""
        n, nw = self.snap.n, len(self.bounds)
        if len(codes) == 0:
            out = np.zeros((nw, k, n))
        else:
            flat = (j.astype(np.int64) * k + (sub if sub is not None else 0)) * n + codes
            raw = np.bincount(flat, weights=weights, minlength=(nw + 1) * k * n).astype(np.float64, copy=False)
            out = raw.reshape(nw + 1, k, n)[:nw].cumsum(axis=0)
        if self.back is not None:
            out = out[self.back]
        return out if sub is not None else out[:, 0, :]


def _safe_div(a: np.ndarray, b: np.ndarray, empty: float = np.nan) -> np.ndarray:
    out = np.full(len(a), empty, dtype=np.float64)
    ok = b > 0
    out[ok] = a[ok] / b[ok]
    return out


__all__ = ["WINDOWS", "SellerHistoryFeatures", "to_us"]
