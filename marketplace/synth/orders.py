"""Orders of one chunk: heavy-tailed volumes, festival peaks, shopping hours, brushing, refunds."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from marketplace.synth import strings as S
from marketplace.synth.common import HOUR, Counters, after, inside, langs
from marketplace.synth.listings import Listings
from marketplace.synth.plan import BRUSH_ACCOUNTS_PER_SERVICE, DAY, SEC, Plan

# Per-archetype tables, rows in the order of plan.ARCHETYPES:
# honest, authorised, discounter, second_hand, grey_import, counterfeit_blatant, counterfeit_camouflaged,
# counterfeit_sideline (an honest shop with a few fakes: about 30% of the way from honest to camouflaged)

REFUND_P = np.array([0.04, 0.03, 0.06, 0.08, 0.07, 0.08, 0.13, 0.067])
FESTIVAL_DAYS = ((6, 18), (11, 11), (12, 12))
FESTIVAL_SHARE = 0.1
#: relative order volume per hour of the day, Beijing time (evening peak, quiet nights)
BEIJING_HOUR_WEIGHTS = np.array(
    [3, 2, 1, 0.5, 0.5, 0.5, 1, 2, 3.5, 4.5, 5, 5, 5, 4.5, 4.5, 4.5, 4.5, 4.5, 5, 6, 7.5, 8, 7.5, 5]
)


@dataclass
class Orders:
    frame: pd.DataFrame
    shop: np.ndarray
    at: np.ndarray
    ids: pa.Array
    #: the order an investigation judged (chunk-local order index per chunk-local shop, -1 none)
    judged: np.ndarray
    #: brushing orders (fake orders placed by hired accounts)
    brushed: np.ndarray
    lang: np.ndarray


def make_orders(plan: Plan, rng: np.random.Generator, lo: int, hi: int, lst: Listings, counters: Counters) -> Orders:
    m = hi - lo
    sl = slice(lo, hi)
    window = (plan.end[sl] - plan.first_listing[sl]) / DAY
    n_regular = rng.poisson(plan.rate[sl] * window)
    judged_shop = plan.investigated[sl] >= 0
    shop = np.concatenate([np.repeat(np.arange(m), n_regular), np.flatnonzero(judged_shop)])
    n_reg = int(n_regular.sum())
    is_judged = np.arange(len(shop)) >= n_reg
    pick = (lst.count[shop] * rng.random(len(shop)) ** 1.6).astype(np.int64)
    pick = np.where(is_judged, 0, np.minimum(pick, lst.count[shop] - 1))
    listing = lst.start[shop] + pick
    at = inside(rng, lst.created[listing], lst.end[listing])
    # shopping festivals (双11, 618, 双12): a share of orders crowd into the days around them
    festivals = festivals_of(plan)
    near = festivals[rng.integers(0, len(festivals), size=len(at))] - 2 * DAY
    near = near + (rng.random(len(at)) * 3 * DAY).astype(np.int64) // SEC * SEC
    festive = (rng.random(len(at)) < FESTIVAL_SHARE) & (near > lst.created[listing]) & (near < lst.end[listing])
    at = np.where(festive, near, at)
    # brushing: fake orders placed by a brushing service's accounts (never refunded or complained about)
    brushed = ~is_judged & (rng.random(len(shop)) < plan.brush_share[lo + shop])
    # real buyers shop in the (Beijing) evening and hardly at night; brushing accounts at any hour
    day = at // DAY * DAY
    moved = day + diurnal_offsets(rng, len(at))
    diurnal = ~brushed & (moved > lst.created[listing]) & (moved < lst.end[listing])
    at = np.where(diurnal, moved, at)
    at = np.where(is_judged, plan.investigated[lo + shop], at)
    order = np.lexsort((listing, at, shop))
    shop, listing, at, is_judged, brushed = shop[order], listing[order], at[order], is_judged[order], brushed[order]
    n = len(shop)
    g = lo + shop
    arche = plan.archetype[g].astype(np.int64)
    buyer = np.where(
        brushed,
        plan.n_buyers
        + plan.brush_service[g] * BRUSH_ACCOUNTS_PER_SERVICE
        + rng.integers(0, BRUSH_ACCOUNTS_PER_SERVICE, size=n),
        rng.integers(0, plan.n_buyers, size=n),
    )

    qty = 1 + (rng.random(n) < 0.08) + (rng.random(n) < 0.02)
    paid = lst.price_at(listing, at)
    amount = np.maximum(np.round(paid * qty * rng.uniform(0.9, 1.0, size=n), 2), 0.01)
    refund_noise = rng.lognormal(0.0, 0.7, size=m)[shop]
    refund = ~is_judged & ~brushed & (rng.random(n) < np.minimum(REFUND_P[arche] * refund_noise, 0.9))
    refunded = after(rng, at, HOUR, 5 * DAY)
    refunded = np.where(refund & (refunded < plan.snapshot - SEC), refunded, -1)
    ids = S.ids("O", counters.orders + np.arange(n), 11)
    counters.orders += n
    frame = pd.DataFrame(
        {
            "order_id": S.series(ids),
            "shop_id": S.series(S.ids("S", g, 8)),
            "listing_id": S.series(lst.ids.take(pa.array(listing, type=pa.int64()))),
            "buyer_id": S.series(S.ids("U", buyer, 9)),
            "ordered_at": S.timestamps(at),
            "amount": amount,
            "refunded_at": S.timestamps(refunded),
        }
    )
    judged = np.full(m, -1, dtype=np.int64)
    judged[shop[is_judged]] = np.flatnonzero(is_judged)
    lang = langs(rng, plan.lang[g])
    return Orders(frame=frame, shop=shop, at=at, ids=ids, judged=judged, brushed=brushed, lang=lang)


def diurnal_offsets(rng: np.random.Generator, n: int) -> np.ndarray:
    """Whole-second offsets into a UTC day, following shoppers' hours in Beijing (UTC+8)."""
    weights = BEIJING_HOUR_WEIGHTS / BEIJING_HOUR_WEIGHTS.sum()
    utc_hour = (rng.choice(24, size=n, p=weights) - 8) % 24
    return utc_hour * HOUR + rng.integers(0, 3600, size=n) * SEC


def festivals_of(plan: Plan) -> np.ndarray:
    """11 November, 18 June and 12 December of every year of the history (µs)."""
    first = pd.Timestamp(plan.start, unit="us").year
    last = pd.Timestamp(plan.snapshot, unit="us").year
    days = [pd.Timestamp(year=y, month=mo, day=d) for y in range(first, last + 1) for mo, d in FESTIVAL_DAYS]
    return np.array([int(t.value // 1000) for t in days], dtype=np.int64)
