"""Listings of one chunk (brand, price, title, description, delisting) and their edits.

Titles and prices are where archetypes show (or hide) themselves; the crackdown rewrites blatant
titles into euphemisms here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from marketplace.schema import CATEGORIES
from marketplace.synth import strings as S
from marketplace.synth import vocab as V
from marketplace.synth.common import HOUR, Counters, after, choice_rows, group_starts, inside, langs, log_uniform
from marketplace.synth.config import GeneratorConfig
from marketplace.synth.plan import (
    CF_BLATANT,
    CF_CAMO,
    CF_SIDELINE,
    DAY,
    HONEST,
    OUTCOME_COUNTERFEIT,
    PULL_AFTER_TEST_BUY_P,
    SEC,
    Plan,
)

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

#: a sideline counterfeiter's listing is a fake premium item with this chance; its other listings (and the
#: words of every listing) are an honest shop's
SIDELINE_FAKE_P = 0.15
#: the "tight" price regime: fakes priced nearer the real thing, honest look-alikes cheaper, products
#: spread wider around the brand reference; rows as RATIO_PREMIUM
RATIO_PREMIUM_TIGHT = np.array(
    [[0.60, 1.05], [0.85, 1.00], [0.30, 0.70], [0.12, 0.55], [0.50, 0.88], [0.08, 0.45], [0.20, 0.65]]
)
HIGH_END_FAKE_SHARE_TIGHT = 0.6
RATIO_HIGH_END_FAKE_TIGHT = np.array([0.50, 0.95])
PRODUCT_FACTOR_SIGMA_TIGHT = 0.8


@dataclass(frozen=True)
class Style:
    """The per-archetype tables of one world (``GeneratorConfig``'s style knobs applied)."""

    prefix_p: np.ndarray
    desc_p: np.ndarray
    suffix_genuine_p: np.ndarray
    brand_style_p: np.ndarray
    ratio_premium: np.ndarray
    high_end_share: float
    ratio_high_end: np.ndarray
    product_sigma: float


def style_of(config: GeneratorConfig) -> Style:
    """Default knobs give exactly the module tables; ``camouflage_depth`` moves the camouflaged row of the
    wording tables toward the honest row; ``price_regime="tight"`` swaps the price tables."""
    d = config.camouflage_depth

    def blend(table: np.ndarray) -> np.ndarray:
        out = table.copy()
        if d > 0:
            out[CF_CAMO] = (1.0 - d) * table[CF_CAMO] + d * table[HONEST]
        return out

    tight = config.price_regime == "tight"
    return Style(
        prefix_p=blend(PREFIX_P),
        desc_p=blend(DESC_P),
        suffix_genuine_p=blend(SUFFIX_GENUINE_P),
        brand_style_p=blend(BRAND_STYLE_P),
        ratio_premium=RATIO_PREMIUM_TIGHT if tight else RATIO_PREMIUM,
        high_end_share=HIGH_END_FAKE_SHARE_TIGHT if tight else HIGH_END_FAKE_SHARE,
        ratio_high_end=RATIO_HIGH_END_FAKE_TIGHT if tight else RATIO_HIGH_END_FAKE,
        product_sigma=PRODUCT_FACTOR_SIGMA_TIGHT if tight else PRODUCT_FACTOR_SIGMA,
    )


@dataclass
class Listings:
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


def title_of(
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


def make_listings(
    plan: Plan, vocab: V.Vocabulary, rng: np.random.Generator, lo: int, hi: int, counters: Counters
) -> Listings:
    count = plan.n_listings[lo:hi]
    n = int(count.sum())
    start = group_starts(count)
    shop = np.repeat(np.arange(hi - lo), count)
    k = np.arange(n) - start[shop]
    g = lo + shop
    arche = plan.archetype[g].astype(np.int64)
    style = style_of(plan.config)
    # a sideline counterfeiter: a few fake premium items (priced like a camouflaged fake) in an honest shop,
    # every title worded like an honest shop's; drawn from a stream of its own (other worlds draw as before)
    side = arche == CF_SIDELINE
    side_fake = np.zeros(n, dtype=bool)
    if side.any():
        side_rng = np.random.default_rng(np.random.SeedSequence([plan.config.seed, 0x51DE, lo]))
        side_fake = side & (side_rng.random(n) < SIDELINE_FAKE_P)
        arche = np.where(side, np.where(side_fake, CF_CAMO, HONEST), arche)
    words = np.where(side, HONEST, arche)
    s_open, s_end = plan.opened[g], plan.end[g]

    created = np.where(
        k == 0,
        plan.first_listing[g],
        s_open + SEC + (rng.random(n) ** 0.9 * (s_end - s_open) * 0.95).astype(np.int64) // SEC * SEC,
    )
    after_crackdown = created >= plan.crackdown

    # brand, category, price
    mode = choice_rows(rng, BRAND_MODE_P[arche])
    mode = np.where(side_fake, M_PREMIUM, mode)
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
    ratio_tab = np.where(premium[:, None], style.ratio_premium[arche], RATIO_REGULAR[arche])
    high_end = (arche == CF_CAMO) & (rng.random(hi - lo) < style.high_end_share)[shop] & premium
    ratio_tab[high_end] = style.ratio_high_end
    ratio = log_uniform(rng, ratio_tab[:, 0], ratio_tab[:, 1])
    base = np.where(branded, plan.brand_price[np.maximum(brand, 0)], plan.unbranded_price[category])
    noise = np.where(
        branded,
        rng.lognormal(PRODUCT_FACTOR_MU, style.product_sigma, size=n),
        rng.lognormal(0.0, 0.5, size=n),
    )
    price = np.where(branded, base * ratio, base) * noise
    price = np.maximum(np.round(price) - np.where(rng.random(n) < 0.3, 0.1, 0.0), 1.0)

    # title
    p_prefix = style.prefix_p[words]
    blatant_after = (arche == CF_BLATANT) & after_crackdown
    p_prefix[blatant_after] = PREFIX_P_BLATANT_AFTER
    prefix = choice_rows(rng, p_prefix)
    brand_only = np.isin(prefix, (V.BLATANT, V.EUPHEMISM, V.GREY, V.AUTH))
    prefix = np.where(brand_only & ~branded, V.NONE, prefix)
    disclaim = plan.disclaimer[g] & (rng.random(n) < 0.5)
    suffix = np.where(disclaim, V.NEGATION, np.where(rng.random(n) < style.suffix_genuine_p[words], V.GENUINE, V.NONE))
    lang = langs(rng, plan.lang[g])
    tag_lang = np.where(plan.lang[g] == 2, rng.integers(0, 2, size=n), lang)
    prefix_idx = vocab.tags.pick(prefix, tag_lang, rng.random(n))
    suffix_idx = vocab.tags.pick(suffix, tag_lang, rng.random(n))
    variant = rng.choice(4, size=n, p=V.BRAND_VARIANT_P)
    blank_brand = len(vocab.brand_display) - 1
    brand_disp = np.where(branded, brand * 4 + variant, blank_brand)
    same_style = branded & (rng.random(n) < style.brand_style_p[words])
    brand_suffix = vocab.brand_suffix.pick(same_style.astype(np.int64), lang, rng.random(n))
    noun = vocab.nouns.pick(category, lang, rng.random(n))
    special = np.isin(category, (CATEGORIES.index("toys"), CATEGORIES.index("electronics"))) & (rng.random(n) < 0.025)
    attr_family = np.where(special, 2 + category, np.where(rng.random(n) < 0.6, V.ATTR_GENERAL, V.ATTR_NONE))
    attr = vocab.attrs.pick(attr_family, lang, rng.random(n))
    title = title_of(vocab, prefix_idx, brand_disp, brand_suffix, noun, attr, suffix_idx)

    # description
    p_desc = style.desc_p[words]
    p_desc[blatant_after] = DESC_P_BLATANT_AFTER
    middle = choice_rows(rng, p_desc)
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
    delisted = np.where(delist, inside(rng, created, s_end), -1)
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
    pull_at = after(rng, np.full(n, plan.crackdown), HOUR, 7 * DAY)
    pull = reacts & (k > 0) & (action >= 0.7) & (action < 0.9) & (pull_at < s_end - SEC)
    pull &= (delisted < 0) | (pull_at < delisted)
    delisted = np.where(pull, pull_at, delisted)
    live_end = np.where(delisted >= 0, delisted, s_end)

    ids = S.ids("L", counters.listings + np.arange(n), 10)
    counters.listings += n
    brand_names = vocab.brands
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
    rewrite_at = after(rng, np.full(n, plan.crackdown), HOUR, 10 * DAY)
    rewrite = reacts & (action < 0.7) & (rewrite_at < live_end - SEC) & (rewrite_at < plan.snapshot - SEC)
    n_plain = rng.binomial(2, EDIT_P[arche])
    plain_rows = np.repeat(np.arange(n), n_plain)
    plain_at = inside(rng, created[plain_rows], live_end[plain_rows])
    plain_price = np.maximum(np.round(price[plain_rows] * rng.uniform(0.8, 1.1, size=len(plain_rows)), 1), 1.0)
    rw = np.flatnonzero(rewrite)
    euph = np.where(rng.random(len(rw)) < 0.8, V.EUPHEMISM, V.GENUINE)
    rw_title = title_of(
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
    return Listings(
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
