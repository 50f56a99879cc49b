"""The shop-level plan: every shop's fate decided up front, before any event is drawn.

Deciding archetypes, timelines, investigations, closures, re-registration lineage and
identities for all shops at once (a few arrays of length N, cheap even for millions) is what
lets the event generator work in independent chunks of shops while a re-registered shop in one
chunk still descends from, and shares identifiers with, a closed shop in another.

Times are int64 microseconds since the epoch, always whole seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from marketplace.schema import CATEGORIES, EVIDENCE_KINDS
from marketplace.synth import vocab as V
from marketplace.synth.config import GeneratorConfig

SEC = 1_000_000
DAY = 86_400 * SEC

ARCHETYPES = (
    "honest",
    "authorised",
    "discounter",
    "second_hand",
    "grey_import",
    "counterfeit_blatant",
    "counterfeit_camouflaged",
    "counterfeit_sideline",
)
HONEST, AUTHORISED, DISCOUNTER, SECOND_HAND, GREY_IMPORT, CF_BLATANT, CF_CAMO, CF_SIDELINE = range(8)
#: how honest shops split into honest archetypes (the last three are the look-alikes: ``lookalike_share``)
HONEST_MIX = np.array([0.62, 0.10, 0.10, 0.10, 0.08])
#: a sideline counterfeiter is less visible to investigators than a camouflaged one
CF_SIDELINE_VISIBILITY = 0.6
#: main category mix for honest shops and for counterfeiters (who favour luxury goods)
CATEGORY_MIX_HONEST = np.array([0.12, 0.12, 0.06, 0.11, 0.13, 0.15, 0.05, 0.08, 0.09, 0.09])
CATEGORY_MIX_CF = np.array([0.24, 0.18, 0.14, 0.12, 0.07, 0.10, 0.09, 0.02, 0.03, 0.01])
#: shops that add a disclaimer ("not a replica", "假一赔十") to some titles, per archetype
DISCLAIMER_P = np.array([0.025, 0.04, 0.03, 0.04, 0.04, 0.0, 0.04, 0.025])
#: investigation propensity of honest archetypes relative to the honest rate (cheap prices draw checks)
HONEST_INVESTIGATION_MULT = np.array([1.0, 0.5, 2.5, 2.5, 2.5, 0.0, 0.0, 0.0])
#: how much more visible (likely to be investigated) a blatant counterfeiter is than a camouflaged one
CF_BLATANT_VISIBILITY = 2.0
#: brushing (刷单, fake orders from hired accounts): share of shops that brush and the share of
#: their orders that are fake, for honest shops and counterfeiters; accounts per brushing service
BRUSH_P_HONEST, BRUSH_P_CF = 0.04, 0.4
BRUSH_SHARE_HONEST, BRUSH_SHARE_CF = (0.05, 0.2), (0.05, 0.35)
BRUSH_ACCOUNTS_PER_SERVICE = 8
#: shops that stop trading on their own before the snapshot (honest, counterfeit)
LEAVE_P_HONEST, LEAVE_P_CF = 0.08, 0.15
#: investigated counterfeiters that pull every listing right after the evidence purchase
PULL_AFTER_TEST_BUY_P = 0.4
#: share of investigated counterfeiters the investigators clear by mistake
MISSED_COUNTERFEIT_P = 0.03

OUTCOME_COUNTERFEIT, OUTCOME_GENUINE = 0, 1
#: evidence kind mix (order of EVIDENCE_KINDS: test_buy, brand_owner, reviewer, consumer_reports)
EVIDENCE_P_COUNTERFEIT = np.array([0.40, 0.30, 0.15, 0.15])
EVIDENCE_P_GENUINE = np.array([0.35, 0.25, 0.30, 0.10])
assert EVIDENCE_KINDS == ("test_buy", "brand_owner", "reviewer", "consumer_reports")

#: linkage fields and the chance a re-registered shop reuses its closed parent's value
LINKAGE = ("owner_phone", "owner_email", "id_number_hash", "bank_account_hash", "device_id", "owner_address")
REUSE_P = np.array([0.5, 0.25, 0.35, 0.45, 0.55, 0.4])
#: identity fields held as integers (formatted to strings per chunk)
IDENTITY = (*LINKAGE, "shopkeeper", "business_registration", "business_phone", "business_email")

GROUP_NONE, GROUP_RING, GROUP_CHAIN, GROUP_DEVICE = 0, 1, 2, 3
GROUP_KINDS = ("", "ring", "chain", "shared_device")


@dataclass
class Plan:
    """Shop-level arrays (length ``n``, index = shop number, ordered by opening time) and globals."""

    n: int
    snapshot: int
    start: int
    crackdown: int
    archetype: np.ndarray
    category: np.ndarray
    lang: np.ndarray
    disclaimer: np.ndarray
    opened: np.ndarray
    #: last moment of activity: the closure (a counterfeit verdict), the day the shop stopped
    #: trading on its own, or the snapshot
    end: np.ndarray
    closed: np.ndarray
    first_listing: np.ndarray
    #: expected orders per day
    rate: np.ndarray
    n_listings: np.ndarray
    #: time of the evidence purchase an investigation judges (-1: never investigated)
    investigated: np.ndarray
    #: when the verdict is (or will be) decided; may lie after the snapshot (pending)
    decided: np.ndarray
    outcome: np.ndarray
    evidence: np.ndarray
    parent: np.ndarray
    #: bit i set: linkage field LINKAGE[i] reused from the parent
    shared: np.ndarray
    group: np.ndarray
    group_kind: np.ndarray
    identity: dict[str, np.ndarray]
    name_head: np.ndarray
    name_tail: np.ndarray
    name_lang: np.ndarray
    #: authorisations: shop number, brand number, granted time (sorted by shop, brand)
    auth_shop: np.ndarray
    auth_brand: np.ndarray
    auth_granted: np.ndarray
    #: brands: number -> category, reference price, premium
    brand_category: np.ndarray
    brand_price: np.ndarray
    brand_premium: np.ndarray
    unbranded_price: np.ndarray = field(default_factory=lambda: np.zeros(0))
    #: share of a shop's orders that are fake (brushing), and the brushing service it hires
    brush_share: np.ndarray = field(default_factory=lambda: np.zeros(0))
    brush_service: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    #: real buyers are ``U0 .. U(n_buyers-1)``; brushing accounts come after them
    n_buyers: int = 0
    #: the world-style knobs (vocabulary, price regime, camouflage depth, sideline share, look-alikes)
    config: GeneratorConfig = field(default_factory=GeneratorConfig)

    @property
    def is_counterfeiter(self) -> np.ndarray:
        return self.archetype >= CF_BLATANT

    def verdict_rows(self) -> np.ndarray:
        """Shop numbers with a verdict decided before the snapshot, ordered by decision time."""
        has = (self.investigated >= 0) & (self.decided < self.snapshot)
        shops = np.flatnonzero(has)
        return shops[np.argsort(self.decided[shops], kind="stable")]


def _floor_s(us: np.ndarray) -> np.ndarray:
    return (np.asarray(us, dtype=np.int64) // SEC) * SEC


def _uniform_time(rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Whole-second times strictly inside (lo, hi) when hi - lo >= 2 s."""
    width = np.maximum(hi - lo - 2 * SEC, 0)
    return lo + SEC + _floor_s(rng.random(len(lo)) * width)


def honest_mix(lookalike_share: float) -> np.ndarray:
    """The honest archetype shares with the look-alikes (discounter, second-hand, grey) scaled to a total."""
    mix = HONEST_MIX.copy()
    if lookalike_share == 0.28:  # the default: exactly the historical shares
        return mix
    look = mix[2:] / mix[2:].sum() * lookalike_share
    rest = mix[:2] / mix[:2].sum() * (1.0 - lookalike_share)
    return np.concatenate([rest, look])


def _brands(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    n_cat = len(CATEGORIES)
    per = V.BRANDS_PER_CATEGORY
    category = np.repeat(np.arange(n_cat), per)
    premium = np.tile(np.arange(per) < V.PREMIUM_PER_CATEGORY, n_cat)
    lo = np.empty(n_cat * per)
    hi = np.empty(n_cat * per)
    unbranded = np.empty(n_cat)
    for c, name in enumerate(CATEGORIES):
        (plo, phi), (rlo, rhi), base = V.PRICE_RANGES[name]
        sl = slice(c * per, (c + 1) * per)
        lo[sl] = np.where(premium[sl], plo, rlo)
        hi[sl] = np.where(premium[sl], phi, rhi)
        unbranded[c] = base
    price = np.exp(np.log(lo) + rng.random(len(lo)) * (np.log(hi) - np.log(lo)))
    price = np.round(price, -1) - 1.0  # list prices end in 9
    return category, price, premium, unbranded


def _groups(rng: np.random.Generator, members: np.ndarray, lo: int, hi: int) -> list[np.ndarray]:
    """Split ``members`` (already shuffled) into consecutive groups of lo..hi shops."""
    groups = []
    i = 0
    sizes = rng.integers(lo, hi + 1, size=len(members) + 1)
    k = 0
    while i + 1 < len(members):
        size = int(sizes[k])
        k += 1
        g = members[i : i + size]
        if len(g) >= 2:
            groups.append(g)
        i += size
    return groups


def build_plan(config: GeneratorConfig) -> Plan:
    """Decide every shop's archetype, timeline, investigation, lineage and identity."""
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, 0x5EED]))
    n = config.shops
    snapshot = int(config.snapshot.value // 1000)
    start = int(config.start.value // 1000)
    crackdown = int(config.crackdown.value // 1000)

    # --- who is who ---
    cf = rng.random(n) < config.counterfeit_rate
    camo = rng.random(n) < config.camouflage_share
    honest_kind = rng.choice(5, size=n, p=honest_mix(config.lookalike_share))
    archetype = np.where(cf, np.where(camo, CF_CAMO, CF_BLATANT), honest_kind).astype(np.int8)
    if config.sideline_share > 0:  # a stream of its own: the default world draws exactly as before
        side_rng = np.random.default_rng(np.random.SeedSequence([config.seed, 0x51DE]))
        archetype[cf & (side_rng.random(n) < config.sideline_share)] = CF_SIDELINE
    category = np.where(
        cf,
        rng.choice(len(CATEGORIES), size=n, p=CATEGORY_MIX_CF),
        rng.choice(len(CATEGORIES), size=n, p=CATEGORY_MIX_HONEST),
    ).astype(np.int16)
    lang = rng.choice(3, size=n, p=[0.55, 0.2, 0.25]).astype(np.int8)  # zh, en, mixed
    disclaimer = rng.random(n) < DISCLAIMER_P[archetype]

    # --- when ---
    horizon = snapshot - 3 * DAY
    opened = start + _floor_s(rng.random(n) ** 0.8 * (horizon - start))

    # heavy-tailed activity (orders per day before normalisation), drawn early: it biases investigations
    raw = rng.lognormal(0.0, 1.5, size=n) * np.where(cf, 1.25, 1.0)

    # --- investigations and verdicts ---
    # investigators see what is visible: blatant and busy counterfeiters are caught more often
    # (selection bias in the labels); the mean over counterfeiters stays ``label_coverage``
    window_ok = snapshot - opened >= 30 * DAY
    visibility = (
        np.select(
            [archetype == CF_BLATANT, archetype == CF_SIDELINE], [CF_BLATANT_VISIBILITY, CF_SIDELINE_VISIBILITY], 1.0
        )
        * raw**0.25
    )
    cf_visibility = visibility[cf].mean() if cf.any() else 1.0
    p_inv = np.where(
        cf,
        np.minimum(1.0, config.label_coverage * visibility / cf_visibility),
        np.minimum(1.0, config.honest_investigation_rate * HONEST_INVESTIGATION_MULT[archetype]),
    )
    investigated_mask = window_ok & (rng.random(n) < p_inv)
    lo = opened + 20 * DAY
    hi = np.full(n, snapshot - DAY)
    lo_crack = np.maximum(lo, crackdown)
    in_campaign = (rng.random(n) < 0.5) & (lo_crack < hi)
    inv_time = np.where(in_campaign, _uniform_time(rng, lo_crack, hi), _uniform_time(rng, lo, hi))
    delay_mean = config.label_delay_days - 14.0
    delay = (14.0 + rng.gamma(2.0, delay_mean / 2.0, size=n)) * DAY
    decided_time = _floor_s(inv_time + delay)
    missed = rng.random(n) < MISSED_COUNTERFEIT_P
    outcome_all = np.where(cf & ~missed, OUTCOME_COUNTERFEIT, OUTCOME_GENUINE).astype(np.int8)
    ev_cf = rng.choice(4, size=n, p=EVIDENCE_P_COUNTERFEIT)
    ev_gen = rng.choice(4, size=n, p=EVIDENCE_P_GENUINE)
    investigated = np.where(investigated_mask, inv_time, -1)
    decided = np.where(investigated_mask, decided_time, -1)
    outcome = np.where(investigated_mask, outcome_all, -1).astype(np.int8)
    evidence = np.where(investigated_mask, np.where(outcome_all == OUTCOME_COUNTERFEIT, ev_cf, ev_gen), -1).astype(
        np.int8
    )
    closed = investigated_mask & (outcome == OUTCOME_COUNTERFEIT) & (decided < snapshot)
    end = np.where(closed, decided, snapshot)

    # --- identities (integers; strings are made per chunk) ---
    big = np.iinfo(np.int64).max
    identity = {
        "shopkeeper": rng.permutation(n).astype(np.int64) + 1,
        "owner_phone": 13_000_000_000 + rng.integers(0, 7_000_000_000, size=n),
        "owner_email": rng.integers(0, big, size=n),
        "owner_address": rng.integers(0, big, size=n),
        "id_number_hash": rng.integers(0, big, size=n),
        "bank_account_hash": rng.integers(0, big, size=n),
        "device_id": rng.integers(0, big, size=n),
        "business_registration": rng.integers(0, 10**16, size=n),
        "business_phone": rng.integers(0, 10**7, size=n),
        "business_email": rng.integers(0, big, size=n),
    }
    group = np.full(n, -1, dtype=np.int64)
    group_kind = np.zeros(n, dtype=np.int8)
    next_group = 0

    # honest chains: one company runs two or three shops (legitimate shared identifiers)
    honest_idx = np.flatnonzero(~cf)
    chain_members = rng.permutation(honest_idx[rng.random(len(honest_idx)) < 0.03])
    for g in _groups(rng, chain_members, 2, 3):
        head = g[0]
        for f in (*LINKAGE, "shopkeeper", "business_registration", "business_phone", "business_email"):
            if f == "device_id" and rng.random() < 0.5:
                continue
            identity[f][g[1:]] = identity[f][head]
        group[g] = next_group
        group_kind[g] = GROUP_CHAIN
        next_group += 1

    # counterfeit rings: one operator behind several concurrent shops, sharing a device or bank account
    cf_idx = np.flatnonzero(cf)
    ring_members = rng.permutation(cf_idx[rng.random(len(cf_idx)) < 0.22])
    for g in _groups(rng, ring_members, 2, 4):
        head = g[0]
        share_device = rng.random(len(g) - 1) < 0.7
        share_bank = (rng.random(len(g) - 1) < 0.6) | ~share_device
        share_addr = rng.random(len(g) - 1) < 0.2
        identity["device_id"][g[1:][share_device]] = identity["device_id"][head]
        identity["bank_account_hash"][g[1:][share_bank]] = identity["bank_account_hash"][head]
        identity["owner_address"][g[1:][share_addr]] = identity["owner_address"][head]
        group[g] = next_group
        group_kind[g] = GROUP_RING
        next_group += 1

    # --- re-registration after a ban: a closed shop's keeper opens a new shop ---
    parent = np.full(n, -1, dtype=np.int64)
    shared = np.zeros(n, dtype=np.int8)
    eligible = np.flatnonzero(closed & (decided < snapshot - 10 * DAY))
    wanting = eligible[rng.random(len(eligible)) < config.reregister_rate]
    wanting = rng.permutation(wanting)
    slots = rng.permutation(np.flatnonzero(cf & ~investigated_mask & (group_kind == GROUP_NONE)))
    k = min(len(wanting), len(slots))
    parents, children = wanting[:k], slots[:k]
    child_open = decided[parents] + _floor_s((2 + rng.random(k) * 43) * DAY)
    ok = child_open < snapshot - 3 * DAY
    parents, children, child_open = parents[ok], children[ok], child_open[ok]
    reuse = rng.random((len(children), len(LINKAGE))) < REUSE_P[None, :]
    none = ~reuse.any(axis=1)
    reuse[none, rng.integers(0, len(LINKAGE), size=int(none.sum()))] = True
    every = reuse.all(axis=1)
    reuse[every, rng.integers(0, len(LINKAGE), size=int(every.sum()))] = False
    for j, f in enumerate(LINKAGE):
        sel = reuse[:, j]
        identity[f][children[sel]] = identity[f][parents[sel]]
    shared[children] = (reuse * (1 << np.arange(len(LINKAGE)))).sum(axis=1).astype(np.int8)
    parent[children] = parents
    opened[children] = child_open
    category[children] = category[parents]
    lang[children] = lang[parents]
    archetype[children] = np.where(rng.random(len(children)) < 0.6, CF_CAMO, archetype[parents])
    end[children] = snapshot
    # linkage makes a re-registered shop easier to catch: some are investigated (and closed) in turn
    caught = (rng.random(len(children)) < min(1.0, 1.2 * config.label_coverage)) & (snapshot - child_open >= 30 * DAY)
    kids = children[caught]
    kid_inv = _uniform_time(rng, opened[kids] + 20 * DAY, np.full(len(kids), snapshot - DAY))
    investigated_mask[kids] = True
    investigated[kids] = kid_inv
    decided[kids] = _floor_s(kid_inv + delay[kids])
    outcome[kids] = OUTCOME_COUNTERFEIT
    evidence[kids] = ev_cf[kids]
    closed[kids] = decided[kids] < snapshot
    end[kids] = np.where(closed[kids], decided[kids], snapshot)

    # some shops stop trading on their own (and delist everything): fly-by-night counterfeiters more
    # often; a quiet, emptied shop is therefore not by itself a sign of a ban
    may_leave = ~investigated_mask & (parent < 0) & (snapshot - opened > 60 * DAY)
    leaves = may_leave & (rng.random(n) < np.where(archetype >= CF_BLATANT, LEAVE_P_CF, LEAVE_P_HONEST))
    left_at = _uniform_time(rng, opened + 45 * DAY, np.full(n, snapshot - DAY))
    end = np.where(leaves, left_at, end)

    # a few honest shops registered from a shared (public) device: linkage noise
    public = np.flatnonzero(~cf & (group_kind == GROUP_NONE) & (rng.random(n) < 0.01))
    if len(public):
        pool = identity["device_id"][rng.integers(0, n, size=max(1, n // 400))]
        identity["device_id"][public] = pool[rng.integers(0, len(pool), size=len(public))]
        group_kind[public] = GROUP_DEVICE

    # --- brushing: fake orders from a brushing service's accounts (a ring uses one service, and a
    # re-registered shop keeps its parent's) ---
    is_cf = archetype >= CF_BLATANT
    n_services = max(3, n // 5_000)
    service = rng.integers(0, n_services, size=n)
    group_service = rng.integers(0, n_services, size=max(next_group, 1))
    ring = group_kind == GROUP_RING
    service = np.where(ring, group_service[np.maximum(group, 0)], service)
    service[children] = service[parents]
    brushes = rng.random(n) < np.where(is_cf, BRUSH_P_CF, BRUSH_P_HONEST)
    brushes |= ring & (rng.random(n) < 0.6)
    share_lo = np.where(is_cf, BRUSH_SHARE_CF[0], BRUSH_SHARE_HONEST[0])
    share_hi = np.where(is_cf, BRUSH_SHARE_CF[1], BRUSH_SHARE_HONEST[1])
    brush_share = np.where(brushes, share_lo + rng.random(n) * (share_hi - share_lo), 0.0)

    # --- activity: heavy-tailed orders per day, listings ---
    first_listing = opened + SEC + _floor_s(rng.random(n) * np.minimum(3 * DAY, (end - opened) // 4))
    window_days = (end - first_listing) / DAY
    rate = raw * (config.orders_per_shop * n / max(float((raw * window_days).sum()), 1e-9))
    churn = np.where(cf, 1.6, 1.0)
    weight = np.sqrt(raw) * churn
    lam = (config.listings_per_shop - 1.0) * weight / max(float(weight.mean()), 1e-9)
    n_listings = 1 + np.minimum(rng.poisson(lam), 2000)

    # --- names ---
    name_lang = np.where(lang == 2, rng.integers(0, 2, size=n), lang).astype(np.int8)
    name_head = rng.random(n)
    style_general = np.zeros(n, dtype=np.int8)
    special_style = np.array([0, 1, 2, 3, 4, 5, 5, 0], dtype=np.int8)[archetype]
    special_p = np.array([0.0, 0.6, 0.5, 0.5, 0.5, 0.3, 0.3, 0.0])[archetype]
    name_tail = np.where(rng.random(n) < special_p, special_style, style_general).astype(np.int8)

    # --- brands and authorisations ---
    brand_category, brand_price, brand_premium, unbranded_price = _brands(rng)
    per = V.BRANDS_PER_CATEGORY
    auth_shops = np.flatnonzero((archetype == AUTHORISED) | ((archetype == HONEST) & (rng.random(n) < 0.04)))
    keys = rng.random((len(auth_shops), per))
    premium_bonus = np.where(archetype[auth_shops] == AUTHORISED, 0.6, -1.0)
    keys[:, : V.PREMIUM_PER_CATEGORY] += premium_bonus[:, None]
    order = np.argsort(-keys, axis=1, kind="stable")
    n_auth = np.where(
        archetype[auth_shops] == AUTHORISED,
        1 + (rng.random(len(auth_shops)) < 0.4) + (rng.random(len(auth_shops)) < 0.15),
        1,
    )
    take = np.arange(per)[None, :] < n_auth[:, None]
    auth_shop = np.repeat(auth_shops, n_auth)
    auth_brand = (category[auth_shops][:, None] * per + order)[take]
    auth_granted = opened[auth_shop] - _floor_s(rng.random(len(auth_shop)) * 60 * DAY)

    # --- order shops by opening time: shop numbers (and ids) grow with time ---
    perm = np.argsort(opened, kind="stable")
    inv_perm = np.empty(n, dtype=np.int64)
    inv_perm[perm] = np.arange(n)
    parent = parent[perm]
    parent = np.where(parent >= 0, inv_perm[np.maximum(parent, 0)], -1)
    auth_shop = inv_perm[auth_shop]
    auth_order = np.lexsort((auth_brand, auth_shop))

    return Plan(
        n=n,
        snapshot=snapshot,
        start=start,
        crackdown=crackdown,
        archetype=archetype[perm],
        category=category[perm],
        lang=lang[perm],
        disclaimer=disclaimer[perm],
        opened=opened[perm],
        end=end[perm],
        closed=closed[perm],
        first_listing=first_listing[perm],
        rate=rate[perm],
        n_listings=n_listings[perm].astype(np.int64),
        investigated=investigated[perm],
        decided=decided[perm],
        outcome=outcome[perm],
        evidence=evidence[perm],
        parent=parent,
        shared=shared[perm],
        group=group[perm],
        group_kind=group_kind[perm],
        identity={k: v[perm] for k, v in identity.items()},
        name_head=name_head[perm],
        name_tail=name_tail[perm],
        name_lang=name_lang[perm],
        auth_shop=auth_shop[auth_order],
        auth_brand=auth_brand[auth_order].astype(np.int64),
        auth_granted=auth_granted[auth_order],
        brand_category=brand_category,
        brand_price=brand_price,
        brand_premium=brand_premium,
        unbranded_price=unbranded_price,
        brush_share=brush_share[perm],
        brush_service=service[perm],
        n_buyers=max(5_000, 6 * n),
        config=config,
    )
