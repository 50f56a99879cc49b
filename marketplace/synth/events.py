"""One chunk of shops: their shop rows, listings, edits, orders, complaints and reviews.

Everything is vectorised over the chunk (numpy for numbers and times, Arrow kernels for text),
so a chunk of 50,000 shops and its ~1 million orders takes a few seconds. Each chunk draws from
its own random stream (seed, chunk start), so the output depends only on the config.

Causality holds by construction: a listing is created after its shop opened; an order falls
inside its listing's live window; refunds, complaints and reviews come after their order; every
time is a whole second strictly before the snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from marketplace.schema import CATEGORIES, COMPLAINT_KINDS, COMPLAINT_SOURCES
from marketplace.synth import strings as S
from marketplace.synth import vocab as V
from marketplace.synth.plan import (
    BRUSH_ACCOUNTS_PER_SERVICE,
    CF_BLATANT,
    CF_CAMO,
    DAY,
    OUTCOME_COUNTERFEIT,
    PULL_AFTER_TEST_BUY_P,
    SEC,
    Plan,
)

HOUR = 3600 * SEC

# Per-archetype tables, rows in the order of plan.ARCHETYPES:
# honest, authorised, discounter, second_hand, grey_import, counterfeit_blatant, counterfeit_camouflaged

#: listing brand mode: unbranded, regular brand, premium brand, one of the shop's authorised brands
BRAND_MODE_P = np.array(
    [
        [0.42, 0.50, 0.08, 0.00],
        [0.10, 0.20, 0.00, 0.70],
        [0.20, 0.55, 0.25, 0.00],
        [0.00, 0.30, 0.70, 0.00],
        [0.05, 0.10, 0.85, 0.00],
        [0.15, 0.20, 0.65, 0.00],
        [0.20, 0.30, 0.50, 0.00],
    ]
)
M_UNBRANDED, M_REGULAR, M_PREMIUM, M_AUTHORISED = range(4)
#: price / brand reference price: log-uniform [lo, hi] for (premium, regular) brands
RATIO_PREMIUM = np.array(
    [[0.70, 1.05], [0.90, 1.00], [0.35, 0.75], [0.15, 0.60], [0.65, 0.92], [0.04, 0.30], [0.10, 0.45]]
)
#: camouflaged counterfeiters that sell "super fakes" close to the real price (share, ratio range)
HIGH_END_FAKE_SHARE = 0.4
RATIO_HIGH_END_FAKE = np.array([0.45, 0.90])
#: a brand's reference price is for its typical product; a wallet or a lipstick costs less, a
#: limited edition more: every branded listing gets a product factor (log-normal)
PRODUCT_FACTOR_MU, PRODUCT_FACTOR_SIGMA = -0.2, 0.65
RATIO_REGULAR = np.array(
    [[0.80, 1.10], [0.85, 1.05], [0.45, 0.80], [0.20, 0.60], [0.70, 0.95], [0.25, 0.70], [0.35, 0.80]]
)

#: title prefix family (V.NONE .. V.DISCOUNT) before the crackdown
PREFIX_P = np.array(
    [
        # none blat euph  neg  2nd  grey genu auth disc
        [0.75, 0.00, 0.05, 0.00, 0.00, 0.00, 0.15, 0.00, 0.05],
        [0.20, 0.00, 0.00, 0.00, 0.00, 0.00, 0.30, 0.50, 0.00],
        [0.25, 0.00, 0.00, 0.00, 0.00, 0.00, 0.15, 0.00, 0.60],
        [0.15, 0.00, 0.00, 0.00, 0.85, 0.00, 0.00, 0.00, 0.00],
        [0.10, 0.00, 0.00, 0.00, 0.00, 0.80, 0.10, 0.00, 0.00],
        [0.13, 0.62, 0.15, 0.00, 0.00, 0.00, 0.10, 0.00, 0.00],
        [0.45, 0.00, 0.12, 0.00, 0.07, 0.08, 0.28, 0.00, 0.00],
    ]
)
#: blatant counterfeiters after the crackdown: the blatant words give way to euphemisms
PREFIX_P_BLATANT_AFTER = np.array([0.14, 0.06, 0.60, 0.00, 0.00, 0.00, 0.20, 0.00, 0.00])
SUFFIX_GENUINE_P = np.array([0.08, 0.15, 0.05, 0.03, 0.10, 0.10, 0.25])
BRAND_STYLE_P = np.array([0.01, 0.0, 0.01, 0.0, 0.0, 0.10, 0.12])

#: description middle sentence family (V.D_*), before / after the crackdown for blatant shops
DESC_P = np.array(
    [
        # plain genu auth disc 2nd  grey blat euph offp
        [0.60, 0.40, 0.00, 0.00, 0.00, 0.00, 0.00, 0.00, 0.00],
        [0.00, 0.30, 0.70, 0.00, 0.00, 0.00, 0.00, 0.00, 0.00],
        [0.30, 0.00, 0.00, 0.70, 0.00, 0.00, 0.00, 0.00, 0.00],
        [0.10, 0.00, 0.00, 0.00, 0.90, 0.00, 0.00, 0.00, 0.00],
        [0.15, 0.00, 0.00, 0.00, 0.00, 0.85, 0.00, 0.00, 0.00],
        [0.10, 0.00, 0.00, 0.00, 0.00, 0.00, 0.55, 0.20, 0.15],
        [0.35, 0.30, 0.00, 0.00, 0.00, 0.00, 0.00, 0.10, 0.25],
    ]
)
DESC_P_BLATANT_AFTER = np.array([0.15, 0.00, 0.00, 0.00, 0.00, 0.00, 0.08, 0.50, 0.27])

DELIST_P = np.array([0.12, 0.08, 0.20, 0.45, 0.15, 0.28, 0.28])
EDIT_P = np.array([0.06, 0.05, 0.10, 0.05, 0.08, 0.20, 0.20])
REFUND_P = np.array([0.04, 0.03, 0.06, 0.08, 0.07, 0.08, 0.13])
COMPLAINT_P = np.array([0.015, 0.010, 0.025, 0.035, 0.025, 0.030, 0.050])
#: share of consumer complaints that say "counterfeit"
COMPLAINT_CF_SHARE = np.array([0.05, 0.03, 0.10, 0.15, 0.15, 0.35, 0.45])
#: other complaint kinds (quality, not_delivered, description_mismatch, other) for ordinary / second-hand
OTHER_KIND_P = np.array([0.45, 0.20, 0.25, 0.10])
OTHER_KIND_P_SECOND_HAND = np.array([0.30, 0.10, 0.50, 0.10])
#: brand-owner notices per year of activity, for shops listing premium brands without authorisation
BRAND_OWNER_RATE = np.array([0.02, 0.0, 0.05, 0.08, 0.15, 0.50, 0.35])
REVIEW_P = 0.3
#: a brushing order almost always leaves a glowing review
BRUSH_REVIEW_P = 0.9
FESTIVAL_DAYS = ((6, 18), (11, 11), (12, 12))
FESTIVAL_SHARE = 0.1
#: relative order volume per hour of the day, Beijing time (evening peak, quiet nights)
BEIJING_HOUR_WEIGHTS = np.array(
    [3, 2, 1, 0.5, 0.5, 0.5, 1, 2, 3.5, 4.5, 5, 5, 5, 4.5, 4.5, 4.5, 4.5, 4.5, 5, 6, 7.5, 8, 7.5, 5]
)
RATING_P = np.array(
    [
        [0.03, 0.03, 0.08, 0.26, 0.60],
        [0.02, 0.02, 0.06, 0.25, 0.65],
        [0.05, 0.05, 0.12, 0.30, 0.48],
        [0.06, 0.06, 0.15, 0.30, 0.43],
        [0.04, 0.04, 0.10, 0.30, 0.52],
        [0.08, 0.07, 0.15, 0.30, 0.40],
        [0.14, 0.08, 0.13, 0.25, 0.40],
    ]
)
FAKE_REVIEW_P = np.array([0.006, 0.003, 0.012, 0.02, 0.015, 0.05, 0.10])
NOT_FAKE_REVIEW_P = np.array([0.03, 0.03, 0.04, 0.05, 0.05, 0.06, 0.10])


@dataclass
class Counters:
    """Running id numbers across chunks (ids are global and dense)."""

    listings: int = 0
    edits: int = 0
    orders: int = 0
    complaints: int = 0
    reviews: int = 0


@dataclass
class Chunk:
    shops: pd.DataFrame
    listings: pd.DataFrame
    listing_edits: pd.DataFrame
    orders: pd.DataFrame
    complaints: pd.DataFrame
    reviews: pd.DataFrame


def _choice_rows(rng: np.random.Generator, p_rows: np.ndarray) -> np.ndarray:
    """One categorical draw per row, row i drawn from the distribution ``p_rows[i]``."""
    cum = np.cumsum(p_rows, axis=1)
    u = rng.random(len(p_rows)) * cum[:, -1]
    return np.minimum((u[:, None] >= cum).sum(axis=1), p_rows.shape[1] - 1)


def _log_uniform(rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    return np.exp(np.log(lo) + rng.random(len(lo)) * (np.log(hi) - np.log(lo)))


def _inside(rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray, power: float = 1.0) -> np.ndarray:
    """Whole-second times strictly inside (lo, hi) (hi - lo >= 2 s assumed)."""
    width = np.maximum(hi - lo - 2 * SEC, 0)
    u = rng.random(len(lo))
    if power != 1.0:
        u = u**power
    return lo + SEC + (u * width).astype(np.int64) // SEC * SEC


def _after(rng: np.random.Generator, base: np.ndarray, min_us: int, mean_us: float) -> np.ndarray:
    """Whole-second times at least ``min_us`` after ``base``, exponential tail of mean ``mean_us``."""
    extra = rng.exponential(mean_us, size=len(base)).astype(np.int64)
    return base + max(min_us, SEC) + extra // SEC * SEC


def _langs(rng: np.random.Generator, shop_lang: np.ndarray) -> np.ndarray:
    """Chinese (0) or English (1) per row from the shop's preference (2 = mixed), with 15% switching."""
    lang = np.where(shop_lang == 2, rng.integers(0, 2, size=len(shop_lang)), shop_lang)
    flip = rng.random(len(shop_lang)) < 0.15
    return np.where(flip, 1 - lang, lang).astype(np.int64)


def _group_starts(counts: np.ndarray) -> np.ndarray:
    starts = np.zeros(len(counts), dtype=np.int64)
    np.cumsum(counts[:-1], out=starts[1:])
    return starts


def make_chunk(plan: Plan, vocab: V.Vocabulary, seed: int, lo: int, hi: int, counters: Counters) -> Chunk:
    """Generate shops ``lo <= s < hi`` and all their events; advances ``counters``."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xC4A2, lo]))
    shops = _shops_frame(plan, vocab, rng, lo, hi)
    listing = _listings(plan, vocab, rng, lo, hi, counters)
    orders = _orders(plan, rng, lo, hi, listing, counters)
    complaints = _complaints(plan, rng, lo, hi, listing, orders, counters)
    reviews = _reviews(plan, vocab, rng, lo, hi, orders, counters)
    return Chunk(
        shops=shops,
        listings=listing.frame,
        listing_edits=listing.edits,
        orders=orders.frame,
        complaints=complaints,
        reviews=reviews,
    )


# --- shops -------------------------------------------------------------------------------------------


def _shops_frame(plan: Plan, vocab: V.Vocabulary, rng: np.random.Generator, lo: int, hi: int) -> pd.DataFrame:
    sl = slice(lo, hi)
    m = hi - lo
    ident = {k: v[sl] for k, v in plan.identity.items()}
    lang = plan.name_lang[sl].astype(np.int64)
    head = S.take(vocab.shop_heads.values, vocab.shop_heads.pick(np.zeros(m, dtype=np.int64), lang, plan.name_head[sl]))
    tail = S.take(
        vocab.shop_tails.values, vocab.shop_tails.pick(plan.name_tail[sl].astype(np.int64), lang, rng.random(m))
    )
    name = S.trim(S.join(head, tail))
    domains = pa.array(V.EMAIL_DOMAINS)
    email = ident["owner_email"].astype(np.uint64)
    n_names = np.uint64(len(V.EMAIL_NAMES))
    owner_email = S.join(
        S.take(pa.array(V.EMAIL_NAMES), (email % n_names).astype(np.int64)),
        S.digits((email // n_names) % np.uint64(10_000), 4),
        "@",
        S.take(domains, ((email // n_names // np.uint64(10_000)) % np.uint64(len(V.EMAIL_DOMAINS))).astype(np.int64)),
    )
    biz = ident["business_email"].astype(np.uint64)
    business_email = S.join(
        "kf", S.digits(biz % np.uint64(10**8), 8), "@", S.take(domains, (biz >> np.uint64(40)).astype(np.int64) % 6)
    )
    addr = ident["owner_address"].astype(np.uint64)
    n_pc, n_d, n_r = (np.uint64(len(x)) for x in (V.PROVINCE_CITY, V.DISTRICTS, V.ROADS))
    rest = addr // n_pc // n_d // n_r
    owner_address = S.join(
        S.take(pa.array(V.PROVINCE_CITY), (addr % n_pc).astype(np.int64)),
        S.take(pa.array(V.DISTRICTS), (addr // n_pc % n_d).astype(np.int64)),
        S.take(pa.array(V.ROADS), (addr // n_pc // n_d % n_r).astype(np.int64)),
        pa.array(((rest % np.uint64(998)) + np.uint64(1)).astype(np.int64)).cast(pa.string()),
        "号",
        pa.array(((rest // np.uint64(998)) % np.uint64(30) + np.uint64(1)).astype(np.int64)).cast(pa.string()),
        "栋",
        S.digits((rest // np.uint64(998 * 30)) % np.uint64(2000) + np.uint64(101), 4),
        "室",
    )
    return pd.DataFrame(
        {
            "shop_id": S.series(S.ids("S", np.arange(lo, hi), 8)),
            "shopkeeper_id": S.series(S.ids("K", ident["shopkeeper"], 8)),
            "name": S.series(name),
            "opened_at": S.timestamps(plan.opened[sl]),
            "category": S.series(S.take(pa.array(CATEGORIES), plan.category[sl])),
            "business_registration": S.series(S.join("91", S.digits(ident["business_registration"], 16))),
            "business_phone": S.series(S.join("400", S.digits(ident["business_phone"], 7))),
            "business_email": S.series(business_email),
            "owner_phone": S.series(S.digits(ident["owner_phone"], 11)),
            "owner_email": S.series(owner_email),
            "owner_address": S.series(owner_address),
            "id_number_hash": S.series(S.hexes(ident["id_number_hash"], 16)),
            "bank_account_hash": S.series(S.hexes(ident["bank_account_hash"], 16)),
            "device_id": S.series(S.join("dev-", S.hexes(ident["device_id"], 12))),
        }
    )


# --- listings ----------------------------------------------------------------------------------------


@dataclass
class _Listings:
    frame: pd.DataFrame
    edits: pd.DataFrame
    #: per listing (chunk-local): shop (chunk-local), created, live-window end, price, premium unauthorised
    shop: np.ndarray
    created: np.ndarray
    end: np.ndarray
    price: np.ndarray
    premium: np.ndarray
    #: per shop (chunk-local): first listing index and count
    start: np.ndarray
    count: np.ndarray
    ids: pa.Array
    #: edits sorted by (listing, time): listing index, time, new price
    edit_listing: np.ndarray
    edit_at: np.ndarray
    edit_price: np.ndarray

    def price_at(self, listing: np.ndarray, at: np.ndarray) -> np.ndarray:
        """Each listing's price at time ``at``: its latest edit before then, else its creation price."""
        if len(self.edit_listing) == 0:
            return self.price[listing]
        # one sortable key per (listing, second): listing indices and seconds both fit in 31 bits
        base = int(min(self.created.min(), at.min() if len(at) else 0))
        edit_key = (self.edit_listing << 31) | ((self.edit_at - base) // SEC)
        order_key = (listing << 31) | ((at - base) // SEC)
        pos = np.searchsorted(edit_key, order_key, side="left") - 1
        hit = pos >= 0
        hit[hit] = self.edit_listing[pos[hit]] == listing[hit]
        return np.where(hit, self.edit_price[np.maximum(pos, 0)], self.price[listing])


def _title(
    vocab: V.Vocabulary,
    prefix: np.ndarray,
    brand_disp: np.ndarray,
    brand_suffix: np.ndarray,
    noun: np.ndarray,
    attr: np.ndarray,
    suffix: np.ndarray,
) -> pa.Array:
    return S.trim(
        S.join(
            S.take(vocab.tags.values, prefix),
            S.take(vocab.brand_display, brand_disp),
            S.take(vocab.brand_suffix.values, brand_suffix),
            S.take(vocab.nouns.values, noun),
            S.take(vocab.attrs.values, attr),
            S.take(vocab.tags.values, suffix),
        )
    )


def _listings(
    plan: Plan, vocab: V.Vocabulary, rng: np.random.Generator, lo: int, hi: int, counters: Counters
) -> _Listings:
    count = plan.n_listings[lo:hi]
    n = int(count.sum())
    start = _group_starts(count)
    shop = np.repeat(np.arange(hi - lo), count)
    k = np.arange(n) - start[shop]
    g = lo + shop
    arche = plan.archetype[g].astype(np.int64)
    s_open, s_end = plan.opened[g], plan.end[g]

    created = np.where(
        k == 0,
        plan.first_listing[g],
        s_open + SEC + (rng.random(n) ** 0.9 * (s_end - s_open) * 0.95).astype(np.int64) // SEC * SEC,
    )
    after_crackdown = created >= plan.crackdown

    # brand, category, price
    mode = _choice_rows(rng, BRAND_MODE_P[arche])
    a_lo = np.searchsorted(plan.auth_shop, g, side="left")
    a_n = np.searchsorted(plan.auth_shop, g, side="right") - a_lo
    has_auth = a_n > 0
    mode = np.where((mode == M_REGULAR) & has_auth & (rng.random(n) < 0.5), M_AUTHORISED, mode)
    mode = np.where((mode == M_AUTHORISED) & ~has_auth, M_REGULAR, mode)
    shop_cat = plan.category[g].astype(np.int64)
    category = np.where(rng.random(n) < 0.8, shop_cat, rng.integers(0, len(CATEGORIES), size=n))
    per = V.BRANDS_PER_CATEGORY
    auth_at = np.minimum(a_lo + (rng.random(n) * a_n).astype(np.int64), max(len(plan.auth_brand) - 1, 0))
    auth_pick = plan.auth_brand[auth_at] if len(plan.auth_brand) else np.zeros(n, dtype=np.int64)
    brand = np.select(
        [mode == M_REGULAR, mode == M_PREMIUM, mode == M_AUTHORISED],
        [
            category * per + V.PREMIUM_PER_CATEGORY + rng.integers(0, V.REGULAR_PER_CATEGORY, size=n),
            category * per + rng.integers(0, V.PREMIUM_PER_CATEGORY, size=n),
            auth_pick,
        ],
        default=-1,
    )
    branded = brand >= 0
    category = np.where(branded, plan.brand_category[np.maximum(brand, 0)], category)
    premium = branded & plan.brand_premium[np.maximum(brand, 0)]
    ratio_tab = np.where(premium[:, None], RATIO_PREMIUM[arche], RATIO_REGULAR[arche])
    high_end = (arche == CF_CAMO) & (rng.random(hi - lo) < HIGH_END_FAKE_SHARE)[shop] & premium
    ratio_tab[high_end] = RATIO_HIGH_END_FAKE
    ratio = _log_uniform(rng, ratio_tab[:, 0], ratio_tab[:, 1])
    base = np.where(branded, plan.brand_price[np.maximum(brand, 0)], plan.unbranded_price[category])
    noise = np.where(
        branded,
        rng.lognormal(PRODUCT_FACTOR_MU, PRODUCT_FACTOR_SIGMA, size=n),
        rng.lognormal(0.0, 0.5, size=n),
    )
    price = np.where(branded, base * ratio, base) * noise
    price = np.maximum(np.round(price) - np.where(rng.random(n) < 0.3, 0.1, 0.0), 1.0)

    # title
    p_prefix = PREFIX_P[arche]
    blatant_after = (arche == CF_BLATANT) & after_crackdown
    p_prefix[blatant_after] = PREFIX_P_BLATANT_AFTER
    prefix = _choice_rows(rng, p_prefix)
    brand_only = np.isin(prefix, (V.BLATANT, V.EUPHEMISM, V.GREY, V.AUTH))
    prefix = np.where(brand_only & ~branded, V.NONE, prefix)
    disclaim = plan.disclaimer[g] & (rng.random(n) < 0.5)
    suffix = np.where(disclaim, V.NEGATION, np.where(rng.random(n) < SUFFIX_GENUINE_P[arche], V.GENUINE, V.NONE))
    lang = _langs(rng, plan.lang[g])
    tag_lang = np.where(plan.lang[g] == 2, rng.integers(0, 2, size=n), lang)
    prefix_idx = vocab.tags.pick(prefix, tag_lang, rng.random(n))
    suffix_idx = vocab.tags.pick(suffix, tag_lang, rng.random(n))
    variant = rng.choice(4, size=n, p=V.BRAND_VARIANT_P)
    blank_brand = len(vocab.brand_display) - 1
    brand_disp = np.where(branded, brand * 4 + variant, blank_brand)
    style = branded & (rng.random(n) < BRAND_STYLE_P[arche])
    brand_suffix = vocab.brand_suffix.pick(style.astype(np.int64), lang, rng.random(n))
    noun = vocab.nouns.pick(category, lang, rng.random(n))
    special = np.isin(category, (CATEGORIES.index("toys"), CATEGORIES.index("electronics"))) & (rng.random(n) < 0.025)
    attr_family = np.where(special, 2 + category, np.where(rng.random(n) < 0.6, V.ATTR_GENERAL, V.ATTR_NONE))
    attr = vocab.attrs.pick(attr_family, lang, rng.random(n))
    title = _title(vocab, prefix_idx, brand_disp, brand_suffix, noun, attr, suffix_idx)

    # description
    p_desc = DESC_P[arche]
    p_desc[blatant_after] = DESC_P_BLATANT_AFTER
    middle = _choice_rows(rng, p_desc)
    zeros = np.zeros(n, dtype=np.int64)
    description = S.trim(
        S.join(
            S.take(vocab.desc_open.values, vocab.desc_open.pick(zeros, lang, rng.random(n))),
            S.take(vocab.desc_middle.values, vocab.desc_middle.pick(middle, lang, rng.random(n))),
            S.take(vocab.desc_close.values, vocab.desc_close.pick(zeros, lang, rng.random(n))),
        )
    )

    # delisting: sellers remove listings (counterfeiters more); a closed shop's listings go at closure
    delist = (k > 0) & (rng.random(n) < DELIST_P[arche])
    delisted = np.where(delist, _inside(rng, created, s_end), -1)
    # a shop that is closed or stops trading takes its listings down
    gone = s_end < plan.snapshot
    delisted = np.where(gone & ((delisted < 0) | (delisted > s_end)), s_end, delisted)
    # some counterfeiters notice the test buy / complaint and pull everything before the verdict
    inv = plan.investigated[g]
    panics = (inv >= 0) & (plan.outcome[g] == OUTCOME_COUNTERFEIT)
    panics &= (rng.random(hi - lo) < PULL_AFTER_TEST_BUY_P)[shop]
    panic_at = inv + DAY + (rng.random(n) * 4 * DAY).astype(np.int64) // SEC * SEC
    panics &= (panic_at > created) & (panic_at < s_end) & ((delisted < 0) | (panic_at < delisted))
    delisted = np.where(panics, panic_at, delisted)

    # the crackdown: blatant sellers rewrite their titles to euphemisms, or pull the listing
    live_at_crackdown = (created < plan.crackdown) & ((delisted < 0) | (delisted > plan.crackdown + DAY))
    live_at_crackdown &= s_end > plan.crackdown + DAY
    reacts = (arche == CF_BLATANT) & (prefix == V.BLATANT) & live_at_crackdown
    action = rng.random(n)
    pull_at = _after(rng, np.full(n, plan.crackdown), HOUR, 7 * DAY)
    pull = reacts & (k > 0) & (action >= 0.7) & (action < 0.9) & (pull_at < s_end - SEC)
    pull &= (delisted < 0) | (pull_at < delisted)
    delisted = np.where(pull, pull_at, delisted)
    live_end = np.where(delisted >= 0, delisted, s_end)

    ids = S.ids("L", counters.listings + np.arange(n), 10)
    counters.listings += n
    brand_names = pa.array(V.brand_names())
    frame = pd.DataFrame(
        {
            "listing_id": S.series(ids),
            "shop_id": S.series(S.ids("S", g, 8)),
            "created_at": S.timestamps(created),
            "title": S.series(title),
            "description": S.series(description),
            "brand": S.series(S.take(brand_names, brand)),
            "category": S.series(S.take(pa.array(CATEGORIES), category)),
            "price": price,
            "delisted_at": S.timestamps(delisted),
        }
    )

    # edits: ordinary price/title touch-ups, and the crackdown rewrites
    rewrite_at = _after(rng, np.full(n, plan.crackdown), HOUR, 10 * DAY)
    rewrite = reacts & (action < 0.7) & (rewrite_at < live_end - SEC) & (rewrite_at < plan.snapshot - SEC)
    n_plain = rng.binomial(2, EDIT_P[arche])
    plain_rows = np.repeat(np.arange(n), n_plain)
    plain_at = _inside(rng, created[plain_rows], live_end[plain_rows])
    plain_price = np.maximum(np.round(price[plain_rows] * rng.uniform(0.8, 1.1, size=len(plain_rows)), 1), 1.0)
    rw = np.flatnonzero(rewrite)
    euph = np.where(rng.random(len(rw)) < 0.8, V.EUPHEMISM, V.GENUINE)
    rw_title = _title(
        vocab,
        vocab.tags.pick(euph, tag_lang[rw], rng.random(len(rw))),
        brand_disp[rw],
        brand_suffix[rw],
        noun[rw],
        attr[rw],
        suffix_idx[rw],
    )
    rw_price = np.round(price[rw] * rng.uniform(1.0, 1.3, size=len(rw)))
    edit_rows = np.concatenate([plain_rows, rw])
    edit_at = np.concatenate([plain_at, rewrite_at[rw]])
    edit_title = pa.concat_arrays([title.take(pa.array(plain_rows, type=pa.int64())), rw_title])
    edit_price = np.concatenate([plain_price, rw_price])
    order = np.lexsort((edit_at, edit_rows))
    n_edits = len(order)
    edits = pd.DataFrame(
        {
            "edit_id": S.series(S.ids("E", counters.edits + np.arange(n_edits), 10)),
            "listing_id": S.series(ids.take(pa.array(edit_rows[order], type=pa.int64()))),
            "edited_at": S.timestamps(edit_at[order]),
            "title": S.series(edit_title.take(pa.array(order, type=pa.int64()))),
            "price": edit_price[order],
        }
    )
    counters.edits += n_edits
    return _Listings(
        frame=frame,
        edits=edits,
        shop=shop,
        created=created,
        end=live_end,
        price=price,
        premium=premium & (mode != M_AUTHORISED),
        start=start,
        count=count,
        ids=ids,
        edit_listing=edit_rows[order].astype(np.int64),
        edit_at=edit_at[order],
        edit_price=edit_price[order],
    )


# --- orders ------------------------------------------------------------------------------------------


@dataclass
class _Orders:
    frame: pd.DataFrame
    shop: np.ndarray
    at: np.ndarray
    ids: pa.Array
    #: the order an investigation judged (chunk-local order index per chunk-local shop, -1 none)
    judged: np.ndarray
    #: brushing orders (fake orders placed by hired accounts)
    brushed: np.ndarray
    lang: np.ndarray


def _orders(plan: Plan, rng: np.random.Generator, lo: int, hi: int, lst: _Listings, counters: Counters) -> _Orders:
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
    at = _inside(rng, lst.created[listing], lst.end[listing])
    # shopping festivals (双11, 618, 双12): a share of orders crowd into the days around them
    festivals = _festivals(plan)
    near = festivals[rng.integers(0, len(festivals), size=len(at))] - 2 * DAY
    near = near + (rng.random(len(at)) * 3 * DAY).astype(np.int64) // SEC * SEC
    festive = (rng.random(len(at)) < FESTIVAL_SHARE) & (near > lst.created[listing]) & (near < lst.end[listing])
    at = np.where(festive, near, at)
    # brushing: fake orders placed by a brushing service's accounts (never refunded or complained about)
    brushed = ~is_judged & (rng.random(len(shop)) < plan.brush_share[lo + shop])
    # real buyers shop in the (Beijing) evening and hardly at night; brushing accounts at any hour
    day = at // DAY * DAY
    moved = day + _diurnal_offsets(rng, len(at))
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
    refunded = _after(rng, at, HOUR, 5 * DAY)
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
    lang = _langs(rng, plan.lang[g])
    return _Orders(frame=frame, shop=shop, at=at, ids=ids, judged=judged, brushed=brushed, lang=lang)


def _diurnal_offsets(rng: np.random.Generator, n: int) -> np.ndarray:
    """Whole-second offsets into a UTC day, following shoppers' hours in Beijing (UTC+8)."""
    weights = BEIJING_HOUR_WEIGHTS / BEIJING_HOUR_WEIGHTS.sum()
    utc_hour = (rng.choice(24, size=n, p=weights) - 8) % 24
    return utc_hour * HOUR + rng.integers(0, 3600, size=n) * SEC


def _festivals(plan: Plan) -> np.ndarray:
    """11 November, 18 June and 12 December of every year of the history (µs)."""
    first = pd.Timestamp(plan.start, unit="us").year
    last = pd.Timestamp(plan.snapshot, unit="us").year
    days = [pd.Timestamp(year=y, month=mo, day=d) for y in range(first, last + 1) for mo, d in FESTIVAL_DAYS]
    return np.array([int(t.value // 1000) for t in days], dtype=np.int64)


# --- complaints --------------------------------------------------------------------------------------


def _complaints(
    plan: Plan, rng: np.random.Generator, lo: int, hi: int, lst: _Listings, orders: _Orders, counters: Counters
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
    other_kind = 1 + _choice_rows(rng, other_p)
    kind = np.where(rng.random(len(c_ord)) < COMPLAINT_CF_SHARE[c_arche], kind_cf, other_kind)
    filed = _after(rng, orders.at[c_ord], HOUR, 8 * DAY)
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
    parts_at.append(_inside(rng, plan.first_listing[lo + bo_shop], plan.end[lo + bo_shop]))
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


# --- reviews -----------------------------------------------------------------------------------------


def _reviews(
    plan: Plan, vocab: V.Vocabulary, rng: np.random.Generator, lo: int, hi: int, orders: _Orders, counters: Counters
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
    at = _after(rng, orders.at[r], DAY, 4 * DAY)
    keep = at < plan.snapshot - SEC
    r, shop, arche, at = r[keep], shop[keep], arche[keep], at[keep]
    n = len(r)
    brushed = orders.brushed[r]

    rating = np.where(brushed, 5, 1 + _choice_rows(rng, RATING_P[arche]))
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


__all__ = ["Chunk", "Counters", "make_chunk"]
