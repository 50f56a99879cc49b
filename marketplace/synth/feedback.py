"""What buyers, brand owners and investigators say about a chunk's orders: complaints and reviews."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from marketplace.schema import COMPLAINT_KINDS, COMPLAINT_SOURCES
from marketplace.synth import strings as S
from marketplace.synth import vocab as V
from marketplace.synth.common import HOUR, Counters, after, choice_rows, inside
from marketplace.synth.listings import Listings
from marketplace.synth.orders import Orders
from marketplace.synth.plan import DAY, OUTCOME_COUNTERFEIT, SEC, Plan

# Per-archetype tables, rows in the order of plan.ARCHETYPES:
# honest, authorised, discounter, second_hand, grey_import, counterfeit_blatant, counterfeit_camouflaged,
# counterfeit_sideline (an honest shop with a few fakes: about 30% of the way from honest to camouflaged)

COMPLAINT_P = np.array([0.015, 0.010, 0.025, 0.035, 0.025, 0.030, 0.050, 0.026])
#: share of consumer complaints that say "counterfeit"
COMPLAINT_CF_SHARE = np.array([0.05, 0.03, 0.10, 0.15, 0.15, 0.35, 0.45, 0.17])
#: other complaint kinds (quality, not_delivered, description_mismatch, other) for ordinary / second-hand
OTHER_KIND_P = np.array([0.45, 0.20, 0.25, 0.10])
OTHER_KIND_P_SECOND_HAND = np.array([0.30, 0.10, 0.50, 0.10])
#: brand-owner notices per year of activity, for shops listing premium brands without authorisation
BRAND_OWNER_RATE = np.array([0.02, 0.0, 0.05, 0.08, 0.15, 0.50, 0.35, 0.12])
REVIEW_P = 0.3
#: a brushing order almost always leaves a glowing review
BRUSH_REVIEW_P = 0.9
RATING_P = np.array(
    [
        [0.03, 0.03, 0.08, 0.26, 0.60],
        [0.02, 0.02, 0.06, 0.25, 0.65],
        [0.05, 0.05, 0.12, 0.30, 0.48],
        [0.06, 0.06, 0.15, 0.30, 0.43],
        [0.04, 0.04, 0.10, 0.30, 0.52],
        [0.08, 0.07, 0.15, 0.30, 0.40],
        [0.14, 0.08, 0.13, 0.25, 0.40],
        [0.06, 0.045, 0.095, 0.257, 0.543],
    ]
)
FAKE_REVIEW_P = np.array([0.006, 0.003, 0.012, 0.02, 0.015, 0.05, 0.10, 0.034])
NOT_FAKE_REVIEW_P = np.array([0.03, 0.03, 0.04, 0.05, 0.05, 0.06, 0.10, 0.05])


def make_complaints(
    plan: Plan, rng: np.random.Generator, lo: int, hi: int, lst: Listings, orders: Orders, counters: Counters
) -> pd.DataFrame:
    m = hi - lo
    sl = slice(lo, hi)
    arche_shop = plan.archetype[sl].astype(np.int64)
    src_consumer = COMPLAINT_SOURCES.index("consumer")
    kind_cf = COMPLAINT_KINDS.index("counterfeit")

    # consumers complain about some orders
    n_o = len(orders.shop)
    o_arche = arche_shop[orders.shop]
    noise = rng.lognormal(0.0, 0.8, size=m)[orders.shop]
    c_ord = np.flatnonzero(~orders.brushed & (rng.random(n_o) < np.minimum(COMPLAINT_P[o_arche] * noise, 0.8)))
    c_arche = o_arche[c_ord]
    other_p = np.where((c_arche == 3)[:, None], OTHER_KIND_P_SECOND_HAND[None, :], OTHER_KIND_P[None, :])
    other_kind = 1 + choice_rows(rng, other_p)
    kind = np.where(rng.random(len(c_ord)) < COMPLAINT_CF_SHARE[c_arche], kind_cf, other_kind)
    filed = after(rng, orders.at[c_ord], HOUR, 8 * DAY)
    parts_shop = [orders.shop[c_ord]]
    parts_order = [c_ord]
    parts_at = [filed]
    parts_kind = [kind]
    parts_source = [np.full(len(c_ord), src_consumer)]

    # brand owners notice unauthorised premium listings (no order behind the notice)
    has_premium = np.bincount(lst.shop[lst.premium], minlength=m) > 0
    years = (plan.end[sl] - plan.first_listing[sl]) / (365 * DAY)
    n_bo = rng.poisson(BRAND_OWNER_RATE[arche_shop] * years * has_premium)
    bo_shop = np.repeat(np.arange(m), n_bo)
    parts_shop.append(bo_shop)
    parts_order.append(np.full(len(bo_shop), -1))
    parts_at.append(inside(rng, plan.first_listing[lo + bo_shop], plan.end[lo + bo_shop]))
    parts_kind.append(np.full(len(bo_shop), kind_cf))
    parts_source.append(np.full(len(bo_shop), COMPLAINT_SOURCES.index("brand_owner")))

    # the evidence behind investigations: a test buy, a brand owner's authentication, consumer reports
    inv_shop = np.flatnonzero(orders.judged >= 0)
    ev = plan.evidence[lo + inv_shop]
    cf_outcome = plan.outcome[lo + inv_shop] == OUTCOME_COUNTERFEIT
    ev_source = np.array([COMPLAINT_SOURCES.index(s) for s in ("test_buy", "brand_owner", "consumer", "consumer")])
    leaves_trace = np.where(cf_outcome, ev != 2, rng.random(len(inv_shop)) < 0.6)
    inv_shop, ev, cf_outcome = inv_shop[leaves_trace], ev[leaves_trace], cf_outcome[leaves_trace]
    source = np.where(cf_outcome, ev_source[ev], src_consumer)
    judged = orders.judged[inv_shop]
    parts_shop.append(inv_shop)
    parts_order.append(judged)
    parts_at.append(orders.at[judged] + DAY + (rng.random(len(inv_shop)) * 6 * DAY).astype(np.int64) // SEC * SEC)
    parts_kind.append(np.full(len(inv_shop), kind_cf))
    parts_source.append(source)

    shop = np.concatenate(parts_shop)
    order_ix = np.concatenate(parts_order)
    at = np.concatenate(parts_at)
    kind = np.concatenate(parts_kind)
    source = np.concatenate(parts_source)
    keep = at < plan.snapshot - SEC
    shop, order_ix, at, kind, source = shop[keep], order_ix[keep], at[keep], kind[keep], source[keep]
    order = np.lexsort((source, at, shop))
    shop, order_ix, at, kind, source = shop[order], order_ix[order], at[order], kind[order], source[order]
    n = len(shop)
    ids = S.ids("C", counters.complaints + np.arange(n), 10)
    counters.complaints += n
    return pd.DataFrame(
        {
            "complaint_id": S.series(ids),
            "shop_id": S.series(S.ids("S", lo + shop, 8)),
            "order_id": S.series(S.take(orders.ids, order_ix)),
            "filed_at": S.timestamps(at),
            "kind": S.series(S.take(pa.array(COMPLAINT_KINDS), kind)),
            "source": S.series(S.take(pa.array(COMPLAINT_SOURCES), source)),
        }
    )


def make_reviews(
    plan: Plan, vocab: V.Vocabulary, rng: np.random.Generator, lo: int, hi: int, orders: Orders, counters: Counters
) -> pd.DataFrame:
    m = hi - lo
    arche_shop = plan.archetype[lo:hi].astype(np.int64)
    n_o = len(orders.shop)
    judged = np.zeros(n_o, dtype=bool)
    judged[orders.judged[orders.judged >= 0]] = True
    p = np.minimum(REVIEW_P * rng.lognormal(0.0, 0.4, size=m)[orders.shop], 0.95)
    p = np.where(orders.brushed, BRUSH_REVIEW_P, p)
    r = np.flatnonzero(~judged & (rng.random(n_o) < p))
    shop = orders.shop[r]
    arche = arche_shop[shop]
    at = after(rng, orders.at[r], DAY, 4 * DAY)
    keep = at < plan.snapshot - SEC
    r, shop, arche, at = r[keep], shop[keep], arche[keep], at[keep]
    n = len(r)
    brushed = orders.brushed[r]

    rating = np.where(brushed, 5, 1 + choice_rows(rng, RATING_P[arche]))
    fake_noise = rng.lognormal(0.0, 0.5, size=m)[shop]
    fake = ~brushed & (rng.random(n) < np.minimum(FAKE_REVIEW_P[arche] * fake_noise, 0.6))
    rating = np.where(fake, 1 + (rng.random(n) < 0.3), rating)
    family = np.select(
        [fake, rating >= 4, rating == 3],
        [
            np.full(n, V.R_FAKE),
            np.where(
                rng.random(n) < NOT_FAKE_REVIEW_P[arche],
                V.R_NOT_FAKE,
                np.where(rng.random(n) < 0.15, V.R_EMPTY, V.R_POSITIVE),
            ),
            np.full(n, V.R_NEUTRAL),
        ],
        default=V.R_NEGATIVE,
    )
    text = S.trim(S.take(vocab.reviews.values, vocab.reviews.pick(family, orders.lang[r], rng.random(n))))
    order = np.lexsort((r, at, shop))
    ids = S.ids("R", counters.reviews + np.arange(n), 11)
    counters.reviews += n
    return pd.DataFrame(
        {
            "review_id": S.series(ids),
            "shop_id": S.series(S.ids("S", lo + shop[order], 8)),
            "order_id": S.series(orders.ids.take(pa.array(r[order], type=pa.int64()))),
            "created_at": S.timestamps(at[order]),
            "rating": rating[order].astype(np.int64),
            "text": S.series(text.take(pa.array(order, type=pa.int64()))),
        }
    )
