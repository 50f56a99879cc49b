"""Reasons that cite evidence: each reason of a flagged shop names the items behind it.

``ShopRiskModel.explain`` says *which feature* pushed a score up ("most counterfeit-like listing text
scores 1.00"); a reviewer needs to know *which listing, which words*. :func:`explain_with_evidence`
keeps the model's ranking of features (the Saabas credits) and, per reason, looks the evidence up in the
marketplace tables as of the scoring time:

* listing / review text (``listing_text_*``, ``review_text_*``, ``blatant_*``): the listing (id, title
  and a description excerpt) or review (id, excerpt) whose text the model's own text classifier scores
  highest, with the words that drove that score marked ``«…»`` (the classifier's character n-gram
  weights summed per word; the words with the largest positive sums);
* brand and price (``price_ratio_*``, ``low_price_*``, ``*unauthorised*``, ``*brand*``): the listing
  priced lowest against its brand's reference price (price, reference, ratio), unauthorised or not;
* complaints (``complaints_*``, ``counterfeit_complaint_rate_*``): the complaint kinds and counts in
  the feature's window, and the newest complaint of the kind that matters;
* linkage (``linked_*``): the shop with a counterfeit verdict that shares an identifier, and which kind;
* reviews and ratings (``fake_review*``, ``rating_*``, ``low_rating*``, ``reviews_*``): the lowest-rated
  recent review's excerpt;
* listing activity (``delist*``, ``listing_edits*``, ``edit*``, ``listings_*``): the newest edit or
  delisting (listing id, old → new title);
* orders (``orders_*``, ``gmv_*``, ``refund*``, ``avg_order*``, ``order_growth*``): counts in the window
  and the newest refunded order;
* the shop itself for the rest (``account_age_days``: when it opened).

Each evidence item is ``{"kind", "id", "text", …}``; ``kind`` in :data:`CONCRETE` names an item a reviewer
can open. Lookup costs milliseconds a shop: it runs only for the watch and suspected tiers, never on the
scoring hot path (the sweep's reasons stay words).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from marketplace.tables import Marketplace

#: evidence kinds that point at an item a reviewer can open
CONCRETE = frozenset({"listing", "review", "complaint", "linked_shop", "order", "listing_edit"})
_WINDOW = re.compile(r"_(\d+)d$")
_COMPLAINT_KINDS = ("counterfeit", "quality", "not_delivered", "description_mismatch")
_IDENTIFIERS = (
    "owner_phone",
    "owner_email",
    "id_number_hash",
    "bank_account_hash",
    "device_id",
    "owner_address",
)


@dataclass
class Reason:
    code: str
    text: str
    evidence: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "text": self.text, "evidence": self.evidence}


def _excerpt(text: str, marks: list[tuple[int, int]], width: int = 120) -> str:
    """``text`` with the ``marks`` spans wrapped in «», cut to about ``width`` characters around them."""
    if not marks:
        return text[:width] + ("…" if len(text) > width else "")
    lo = 0 if len(text) <= width * 1.5 else max(0, min(a for a, _ in marks) - width // 3)
    width = max(width, len(text)) if lo == 0 and len(text) <= width * 1.5 else width
    hi = min(len(text), max(lo + width, max(b for _, b in marks)))
    out, pos = [], lo
    for a, b in sorted(marks):
        if a < pos or b > hi:
            continue
        out.append(text[pos:a] + "«" + text[a:b] + "»")
        pos = b
    out.append(text[pos:hi])
    return ("…" if lo > 0 else "") + "".join(out) + ("…" if hi < len(text) else "")


class TextWeights:
    """The pipeline's fitted text classifier for one kind (listing / review), read per word."""

    def __init__(self, builder: Any, kind: str) -> None:
        from features.text import CharNgramHasher

        self.hasher = CharNgramHasher(builder.n_features, builder.ngram_range)
        full = builder.n_folds
        self.w = np.asarray(builder.coef_[kind][:, full], dtype=np.float64)
        self.b = float(builder.intercept_[kind][full])

    def score(self, texts: list[str]) -> np.ndarray:
        """The classifier's probability per text (one text part, as the feature scores a part)."""
        if not texts:
            return np.zeros(0)
        dots, n = self.hasher.dots(texts, self.w[:, None])
        return np.asarray(1.0 / (1.0 + np.exp(-(dots[:, 0] / np.sqrt(np.maximum(n, 1.0)) + self.b))))

    def driving_words(self, text: str, top: int = 3) -> list[tuple[int, int]]:
        """Spans of the ``top`` words whose character n-grams carry the most positive weight."""
        padded = f" {text} "
        L = len(padded)
        credit = np.zeros(L)
        _, cols = self.hasher.ngrams([text])
        lo, hi = self.hasher.ngram_range
        pos = 0
        for n in range(lo, hi + 1):
            m = max(0, L - n + 1)
            w = self.w[cols[pos : pos + m]]
            for k in range(n):  # spread each n-gram's weight over its characters
                credit[k : k + m] += w / n
            pos += m
        words = []
        for match in re.finditer(r"[\w'-]+|[^\s\w]", text):
            a, b = match.span()
            words.append((float(credit[a + 1 : b + 1].sum()), a, b))
        best: dict[str, float] = {}
        for c, a, b in words:
            w = text[a:b]
            best[w] = max(best.get(w, c), c)
        chosen = {w for w, c in sorted(best.items(), key=lambda kv: -kv[1])[:top] if c > 0}
        return [(a, b) for _, a, b in sorted(words, key=lambda t: t[1]) if text[a:b] in chosen]


def _text_builder(model: Any) -> Any:
    pipeline = getattr(model, "pipeline", None)
    for builder in getattr(pipeline, "builders_", []) or []:
        if getattr(builder, "coef_", None) is not None and hasattr(builder, "n_folds"):
            return builder
    return None


class EvidenceFinder:
    """Looks up the evidence of a reason in one marketplace (indexes built once)."""

    def __init__(self, model: Any, mp: Marketplace) -> None:
        from features.text import normalise_text

        self.mp = mp
        self._norm = normalise_text
        builder = _text_builder(model)
        self.text = {k: TextWeights(builder, k) for k in ("listing", "review")} if builder is not None else {}
        self._by_shop: dict[str, dict[str, pd.DataFrame]] = {}
        self._groups = {
            t: getattr(mp, t).groupby(getattr(mp, t)["shop_id"].astype(str), sort=False).indices
            for t in ("listings", "complaints", "reviews", "orders")
        }
        self._listing_shop = dict(
            zip(mp.listings["listing_id"].astype(str), mp.listings["shop_id"].astype(str), strict=True)
        )
        edits = mp.listing_edits
        self._edits = edits.groupby(edits["listing_id"].astype(str).map(self._listing_shop), sort=False).indices
        self._ref_price = dict(
            zip(mp.brands["brand"].astype(str), mp.brands["reference_price"].astype(float), strict=True)
        )
        self._shops = mp.shops.set_index(mp.shops["shop_id"].astype(str))
        self._recent: dict[tuple[str, str], pd.DataFrame] = {}

    def _rows(self, table: str, shop_id: str) -> pd.DataFrame:
        """The shop's rows of ``table`` (kept for the last few shops: a shop's reasons share them)."""
        key = (table, shop_id)
        hit = self._recent.get(key)
        if hit is not None:
            return hit
        frame: pd.DataFrame = getattr(self.mp, table)
        idx = (self._edits if table == "listing_edits" else self._groups[table]).get(shop_id)
        rows = frame.iloc[idx] if idx is not None else frame.iloc[:0]
        if len(self._recent) >= 64:
            self._recent.pop(next(iter(self._recent)))
        self._recent[key] = rows
        return rows

    # -- one family each ------------------------------------------------------------------------------------
    def _listing_text(self, shop_id: str, as_of: pd.Timestamp) -> list[dict[str, Any]]:
        li = self._rows("listings", shop_id)
        li = li[li["created_at"] < as_of]
        if len(li) == 0:
            return []
        titles = [self._norm(t) for t in li["title"]]
        # a listing's text is its title and its description, scored together as the feature scores them
        docs = [f"{t} | {self._norm(d)}" for t, d in zip(titles, li["description"], strict=True)]
        weights = self.text.get("listing")
        marks: list[tuple[int, int]] = []
        if weights is not None:
            s = weights.score(docs)
            best = int(np.argmax(s))
            marks = weights.driving_words(docs[best])
            score: float | None = round(float(s[best]), 3)
        else:  # a model without a text classifier: the keyword rule's words
            from features.lexicon import blatant_title

            best, score = int(np.argmax([blatant_title(t) for t in titles])), None
        row = li.iloc[best]
        return [
            {
                "kind": "listing",
                "id": str(row["listing_id"]),
                "text": _excerpt(docs[best], marks, 160),
                "marked": [docs[best][a:b] for a, b in marks],
                "text_score": score,
            }
        ]

    def _review_text(self, shop_id: str, as_of: pd.Timestamp, lowest_rating: bool = False) -> list[dict[str, Any]]:
        rv = self._rows("reviews", shop_id)
        rv = rv[rv["created_at"] < as_of]
        if len(rv) == 0:
            return []
        texts = [self._norm(t) for t in rv["text"]]
        weights = self.text.get("review")
        marks: list[tuple[int, int]] = []
        if weights is not None and not lowest_rating:
            best = int(np.argmax(weights.score(texts)))
            marks = weights.driving_words(texts[best])
        else:
            order = np.lexsort((-rv["created_at"].astype("int64").to_numpy(), rv["rating"].to_numpy()))
            best = int(order[0])
        row = rv.iloc[best]
        return [
            {
                "kind": "review",
                "id": str(row["review_id"]),
                "text": _excerpt(texts[best], marks),
                "marked": [texts[best][a:b] for a, b in marks],
                "rating": int(row["rating"]),
                "at": str(pd.Timestamp(row["created_at"]).date()),
            }
        ]

    def _price(self, shop_id: str, as_of: pd.Timestamp, unauthorised_only: bool) -> list[dict[str, Any]]:
        li = self._rows("listings", shop_id)
        li = li[(li["created_at"] < as_of) & li["brand"].notna()]
        if unauthorised_only:
            au = self.mp.authorisations
            ok = set(au.loc[(au["shop_id"].astype(str) == shop_id) & (au["granted_at"] < as_of), "brand"].astype(str))
            li = li[~li["brand"].astype(str).isin(ok)]
        if len(li) == 0:
            return []
        ref = li["brand"].astype(str).map(self._ref_price).astype(float)
        ratio = li["price"].astype(float) / ref
        i = int(np.nanargmin(ratio.to_numpy())) if ratio.notna().any() else 0
        row = li.iloc[i]
        r = float(ratio.iloc[i])
        text = f"{row['brand']} at {float(row['price']):.2f} vs reference {float(ref.iloc[i]):.2f} ({r:.0%})"
        return [
            {
                "kind": "listing",
                "id": str(row["listing_id"]),
                "text": f"{self._norm(row['title'])[:80]} — {text}",
                "brand": str(row["brand"]),
                "price": float(row["price"]),
                "reference_price": float(ref.iloc[i]),
                "price_ratio": round(r, 4),
                "authorised": not unauthorised_only,
            }
        ]

    def _complaints(
        self, shop_id: str, as_of: pd.Timestamp, days: int | None, kind: str | None
    ) -> list[dict[str, Any]]:
        co = self._rows("complaints", shop_id)
        co = co[co["filed_at"] < as_of]
        if days is not None:
            co = co[co["filed_at"] >= as_of - pd.Timedelta(days=days)]
        if len(co) == 0:
            return []
        counts = co["kind"].astype(str).value_counts()
        pick = co[co["kind"].astype(str) == kind] if kind is not None and kind in counts else co
        newest = pick.sort_values("filed_at").iloc[-1]
        window = f"in {days} days" if days else "in all"
        return [
            {
                "kind": "complaint",
                "id": str(newest["complaint_id"]),
                "text": f"{len(co)} complaints {window}: "
                + ", ".join(f"{k} {v}" for k, v in counts.items())
                + f"; newest {newest['kind']} by {newest['source']} on {pd.Timestamp(newest['filed_at']).date()}",
                "counts": {str(k): int(v) for k, v in counts.items()},
            }
        ]

    def _linked(self, shop_id: str, as_of: pd.Timestamp, only: str | None) -> list[dict[str, Any]]:
        v = self.mp.verdicts
        bad = set(v.loc[(v["outcome"] == "counterfeit") & (v["decided_at"] < as_of), "shop_id"].astype(str))
        bad.discard(shop_id)
        if not bad or shop_id not in self._shops.index:
            return []
        me = self._shops.loc[shop_id]
        others = self._shops[self._shops.index.isin(list(bad))]
        out = []
        for ident in [only] if only else _IDENTIFIERS:
            value = me.get(ident)
            if value is None or (isinstance(value, float) and np.isnan(value)) or str(value) == "":
                continue
            hit = others[others[ident].astype(str) == str(value)]
            if len(hit):
                other = str(hit.index[0])
                out.append(
                    {
                        "kind": "linked_shop",
                        "id": other,
                        "text": f"shares its {ident.replace('_hash', '').replace('_', ' ')} with {other}, "
                        "found selling counterfeits",
                        "identifier": ident,
                    }
                )
        return out[:3]

    def _listing_activity(self, shop_id: str, as_of: pd.Timestamp, days: int | None) -> list[dict[str, Any]]:
        since = as_of - pd.Timedelta(days=days) if days else pd.Timestamp.min
        ed = self._rows("listing_edits", shop_id)
        ed = ed[(ed["edited_at"] < as_of) & (ed["edited_at"] >= since)]
        li = self._rows("listings", shop_id)
        gone = li[li["delisted_at"].notna() & (li["delisted_at"] < as_of) & (li["delisted_at"] >= since)]
        out: list[dict[str, Any]] = []
        if len(ed):
            e = ed.sort_values("edited_at").iloc[-1]
            lid = str(e["listing_id"])
            before = li.loc[li["listing_id"].astype(str) == lid, "title"]
            was = self._norm(before.iloc[0])[:60] if len(before) else "?"
            out.append(
                {
                    "kind": "listing_edit",
                    "id": str(e["edit_id"]),
                    "listing_id": lid,
                    "text": f"{len(ed)} edits; newest on {pd.Timestamp(e['edited_at']).date()}: "
                    f"“{was}” → “{self._norm(e['title'])[:60]}”",
                }
            )
        if len(gone):
            g = gone.sort_values("delisted_at").iloc[-1]
            out.append(
                {
                    "kind": "listing",
                    "id": str(g["listing_id"]),
                    "text": f"{len(gone)} listings delisted; newest “{self._norm(g['title'])[:60]}” on "
                    f"{pd.Timestamp(g['delisted_at']).date()}",
                }
            )
        if not out:
            li = li[li["created_at"] < as_of]
            if len(li):
                n = li.sort_values("created_at").iloc[-1]
                out.append(
                    {
                        "kind": "listing",
                        "id": str(n["listing_id"]),
                        "text": f"{len(li)} listings; newest “{self._norm(n['title'])[:60]}”",
                    }
                )
        return out

    def _orders(self, shop_id: str, as_of: pd.Timestamp, days: int | None) -> list[dict[str, Any]]:
        od = self._rows("orders", shop_id)
        od = od[od["ordered_at"] < as_of]
        if days:
            od = od[od["ordered_at"] >= as_of - pd.Timedelta(days=days)]
        if len(od) == 0:
            return []
        refunded = od[od["refunded_at"].notna()]
        pick = (refunded if len(refunded) else od).sort_values("ordered_at").iloc[-1]
        window = f"in {days} days" if days else ""
        return [
            {
                "kind": "order",
                "id": str(pick["order_id"]),
                "text": f"{len(od)} orders {window} ({len(refunded)} refunded, {float(od['amount'].sum()):.0f} in "
                f"total); {'newest refunded' if len(refunded) else 'newest'} order {pick['order_id']}",
            }
        ]

    def _shop(self, shop_id: str) -> list[dict[str, Any]]:
        if shop_id not in self._shops.index:
            return []
        opened = pd.Timestamp(str(self._shops.loc[shop_id, "opened_at"])).date()
        return [{"kind": "shop", "id": shop_id, "text": f"shop opened {opened}"}]

    # -- dispatch ------------------------------------------------------------------------------------------
    def cite(self, feature: str, shop_id: str, as_of: pd.Timestamp) -> list[dict[str, Any]]:
        """The evidence of one feature's reason for one shop as of ``as_of`` (empty when there is none)."""
        m = _WINDOW.search(feature)
        days = int(m.group(1)) if m else None
        f = feature
        if f.startswith("review_text"):
            return self._review_text(shop_id, as_of)
        if f.startswith(("listing_text", "blatant")):
            return self._listing_text(shop_id, as_of)
        if "price" in f or "unauthorised" in f or "brand" in f or f.startswith(("premium", "branded")):
            return self._price(shop_id, as_of, unauthorised_only="unauthorised" in f)
        if f.startswith("linked_by_"):
            return self._linked(shop_id, as_of, f.removeprefix("linked_by_"))
        if f.startswith(("linked", "days_since_linked")):
            return self._linked(shop_id, as_of, None)
        if "complaint" in f:
            kind = next(
                (k for k in ("counterfeit", "quality", "not_delivered", "description_mismatch") if k in f), None
            )
            return self._complaints(shop_id, as_of, days, kind)
        if "review" in f or "rating" in f:
            return self._review_text(shop_id, as_of, lowest_rating=True)
        if "delist" in f or "edit" in f or f.startswith(("listings_", "active_listings")):
            return self._listing_activity(shop_id, as_of, days)
        if "order" in f or "gmv" in f or "refund" in f:
            return self._orders(shop_id, as_of, days)
        return self._shop(shop_id)


def explain_with_evidence(
    model: Any, finder: EvidenceFinder, X: pd.DataFrame, as_of: pd.Timestamp, top: int = 3
) -> list[list[Reason]]:
    """Per row of ``X`` (index: shop ids): the ``top`` reasons in words, each with the evidence it cites.
    The reasons are the model's own (``explain``: the features that pushed the score up most)."""
    names = list(model.feature_names)
    m = np.ascontiguousarray(X[names].to_numpy(dtype=np.float64))
    contrib = model.explainer.contributions(model.booster, m, model.num_threads)
    out: list[list[Reason]] = []
    for i, shop_id in enumerate(X.index.astype(str)):
        row = contrib[i]
        order = [int(j) for j in np.argsort(-row, kind="stable")[:top] if row[j] > 0]
        reasons = []
        for j in order:
            text = model.explainer.sentence(names[j], j, float(m[i, j]))
            reasons.append(Reason(names[j], text, finder.cite(names[j], shop_id, as_of)))
        out.append(reasons)
    return out
