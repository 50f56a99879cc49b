"""Small hand-built marketplaces in the contract dtypes, for the feature tests.

Random but seeded: shops of a few kinds (honest, blatant counterfeiter, hidden counterfeiter,
re-registered after a ban) with listings, edits, orders, refunds, complaints, reviews, authorisations
and verdicts spread over the year before ``SNAPSHOT``; events also land after ``AS_OF`` so the
point-in-time tests have a future to ignore.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.pipeline import empty_frame
from marketplace.schema import CATEGORIES, TABLES
from marketplace.tables import Marketplace

AS_OF = pd.Timestamp("2026-06-01")
SNAPSHOT = pd.Timestamp("2026-09-01")
START = pd.Timestamp("2025-01-01")

HONEST_TITLES = ["{b} 正品 官方授权 手提包", "{b} genuine leather bag", "{b} 运动鞋 新款", "{b} watch official store"]
FAKE_TITLES = ["{b} 高仿 1:1 包包", "{b} replica AAA bag", "{b} A货 原单 手表", "{b} super copy sneakers"]
HIDDEN_TITLES = ["{b} 同款 特价 包", "{b} inspired bag cheap", "{b} 工厂直销 手表"]
HONEST_REVIEWS = ["质量很好，正品", "fast delivery, great quality", "不是假货，放心", "满意 好评", "nice bag"]
FAKE_REVIEWS = ["收到假货，不是正品", "this is a fake, counterfeit", "做工很差 假的吧", "not genuine at all", "一般"]


def _ts(rng: np.random.Generator, lo: pd.Timestamp, hi: pd.Timestamp, n: int) -> pd.Series:
    span = int((hi - lo) / pd.Timedelta(seconds=1))
    secs = rng.integers(0, max(span, 1), size=n)
    return pd.Series(lo + pd.to_timedelta(secs, unit="s")).astype("datetime64[us]")


def _frame(table: str, data: dict[str, object]) -> pd.DataFrame:
    empty = empty_frame(table)
    frame = pd.DataFrame(data)
    if len(frame) == 0:
        return empty
    return frame[list(empty.columns)].astype(empty.dtypes.to_dict())


def make_marketplace(n_shops: int = 40, seed: int = 0) -> tuple[Marketplace, pd.DataFrame]:
    """A marketplace and its ground truth (shop_id, is_counterfeiter, archetype)."""
    rng = np.random.default_rng(seed)
    brands = pd.DataFrame(
        {
            "brand": ["Gucci", "Nike", "Rolex", "Acme", "Lancôme", "小米"],
            "category": ["bags", "shoes", "watches", "home", "cosmetics", "electronics"],
            "reference_price": [12000.0, 900.0, 60000.0, 50.0, 800.0, 2000.0],
            "premium": [True, False, True, False, True, False],
        }
    )
    archetypes = rng.choice(["honest", "blatant", "hidden", "reregistered"], size=n_shops, p=[0.55, 0.15, 0.2, 0.1])
    # the last shop never has any event: the "empty shop" edge case
    archetypes[-1] = "honest"
    shop_ids = [f"s{i:04d}" for i in range(n_shops)]
    phones = [f"138{rng.integers(10**7, 10**8)}" for _ in range(n_shops)]
    devices = [f"dev{rng.integers(10**6)}" for _ in range(n_shops)]
    banks = [f"bank{i}" for i in range(n_shops)]
    emails = [f"owner{i}@mail.cn" for i in range(n_shops)]
    # re-registered shops reuse an identifier of an earlier counterfeit shop
    fakes = [i for i in range(n_shops) if archetypes[i] in ("blatant", "hidden")]
    for i in range(n_shops):
        if archetypes[i] == "reregistered" and fakes:
            j = int(rng.choice(fakes))
            k = int(rng.integers(3))
            if k == 0:
                phones[i] = phones[j]
            elif k == 1:
                devices[i] = devices[j]
            else:
                banks[i], emails[i] = banks[j], emails[j].upper()
    shops = _frame(
        "shops",
        {
            "shop_id": shop_ids,
            "shopkeeper_id": [f"k{i}" for i in range(n_shops)],
            "name": [f"店铺{i}" for i in range(n_shops)],
            "opened_at": _ts(rng, START - pd.Timedelta(days=400), AS_OF - pd.Timedelta(days=5), n_shops),
            "category": rng.choice(CATEGORIES, size=n_shops),
            "business_registration": [f"br{i}" for i in range(n_shops)],
            "business_phone": [f"0755{i:06d}" for i in range(n_shops)],
            "business_email": [f"shop{i}@biz.cn" for i in range(n_shops)],
            "owner_phone": phones,
            "owner_email": emails,
            "owner_address": [f"深圳市 {i % 7} 号" for i in range(n_shops)],
            "id_number_hash": [f"id{i}" for i in range(n_shops)],
            "bank_account_hash": banks,
            "device_id": devices,
        },
    )
    listings: dict[str, list[object]] = {k: [] for k in empty_frame("listings").columns}
    for i, sid in enumerate(shop_ids):
        a = archetypes[i]
        pool = FAKE_TITLES if a in ("blatant", "reregistered") else HIDDEN_TITLES if a == "hidden" else HONEST_TITLES
        for j in range(int(rng.integers(0, 8)) if i < n_shops - 1 else 0):
            b = int(rng.integers(len(brands) + 1))
            brand = None if b == len(brands) else brands["brand"][b]
            ref = 100.0 if brand is None else float(brands["reference_price"][b])
            factor = rng.uniform(0.05, 0.4) if a != "honest" else rng.uniform(0.6, 1.2)
            listings["listing_id"].append(f"{sid}-l{j}")
            listings["shop_id"].append(sid)
            listings["title"].append(str(rng.choice(pool)).format(b=brand or "无牌"))
            listings["description"].append("描述 description" if rng.random() < 0.7 else "")
            listings["brand"].append(brand)
            listings["category"].append(str(rng.choice(CATEGORIES)))
            listings["price"].append(round(max(ref * factor, 0.01), 2))
    n_l = len(listings["listing_id"])
    listings["created_at"] = list(_ts(rng, START, SNAPSHOT, n_l))
    delist = rng.random(n_l) < 0.2
    delisted_at = [
        c + pd.Timedelta(days=int(rng.integers(1, 120))) if d else pd.NaT
        for c, d in zip(listings["created_at"], delist, strict=True)
    ]
    listings["delisted_at"] = [d if (d is pd.NaT or d <= SNAPSHOT) else pd.NaT for d in delisted_at]
    listings_df = _frame("listings", listings)

    edits: dict[str, list[object]] = {k: [] for k in empty_frame("listing_edits").columns}
    for r in range(n_l):
        for e in range(int(rng.integers(0, 3))):
            edits["edit_id"].append(f"{listings_df['listing_id'].iloc[r]}-e{e}")
            edits["listing_id"].append(listings_df["listing_id"].iloc[r])
            edits["edited_at"].append(
                min(listings_df["created_at"].iloc[r] + pd.Timedelta(days=int(rng.integers(1, 90))), SNAPSHOT)
            )
            edits["title"].append(str(rng.choice(HIDDEN_TITLES + HONEST_TITLES)).format(b="Edited"))
            edits["price"].append(float(round(rng.uniform(1, 5000), 2)))
    edits_df = _frame("listing_edits", edits)

    orders: dict[str, list[object]] = {k: [] for k in empty_frame("orders").columns}
    complaints: dict[str, list[object]] = {k: [] for k in empty_frame("complaints").columns}
    reviews: dict[str, list[object]] = {k: [] for k in empty_frame("reviews").columns}
    lst = listings_df.assign(idx=np.arange(n_l))
    for i, sid in enumerate(shop_ids):
        a = archetypes[i]
        mine = lst[lst["shop_id"] == sid]
        if len(mine) == 0:
            continue
        bad = a != "honest"
        for _ in range(int(rng.integers(0, 25))):
            row = mine.iloc[int(rng.integers(len(mine)))]
            oid = f"o{len(orders['order_id'])}"
            at = _ts(rng, row["created_at"], SNAPSHOT, 1).iloc[0]
            orders["order_id"].append(oid)
            orders["shop_id"].append(sid)
            orders["listing_id"].append(row["listing_id"])
            orders["buyer_id"].append(f"b{int(rng.integers(50))}")
            orders["ordered_at"].append(at)
            orders["amount"].append(float(row["price"]))
            refund = rng.random() < (0.3 if bad else 0.05)
            orders["refunded_at"].append(
                min(at + pd.Timedelta(days=int(rng.integers(1, 30))), SNAPSHOT) if refund else pd.NaT
            )
            if rng.random() < (0.3 if bad else 0.05):
                complaints["complaint_id"].append(f"c{len(complaints['complaint_id'])}")
                complaints["shop_id"].append(sid)
                complaints["order_id"].append(oid if rng.random() < 0.8 else None)
                complaints["filed_at"].append(min(at + pd.Timedelta(days=int(rng.integers(1, 20))), SNAPSHOT))
                complaints["kind"].append(
                    "counterfeit"
                    if bad and rng.random() < 0.6
                    else str(rng.choice(["quality", "other", "not_delivered"]))
                )
                complaints["source"].append(str(rng.choice(["consumer", "brand_owner", "test_buy"], p=[0.8, 0.1, 0.1])))
            if rng.random() < 0.6:
                reviews["review_id"].append(f"r{len(reviews['review_id'])}")
                reviews["shop_id"].append(sid)
                reviews["order_id"].append(oid)
                reviews["created_at"].append(min(at + pd.Timedelta(days=int(rng.integers(1, 15))), SNAPSHOT))
                reviews["rating"].append(int(rng.integers(1, 4)) if bad else int(rng.integers(3, 6)))
                reviews["text"].append(str(rng.choice(FAKE_REVIEWS if bad and rng.random() < 0.6 else HONEST_REVIEWS)))
    auth: dict[str, list[object]] = {"brand": [], "shop_id": [], "granted_at": []}
    for i, sid in enumerate(shop_ids):
        if archetypes[i] == "honest":
            for b in rng.choice(brands["brand"], size=int(rng.integers(0, 3)) if i < n_shops - 1 else 0, replace=False):
                auth["brand"].append(str(b))
                auth["shop_id"].append(sid)
                auth["granted_at"].append(_ts(rng, START, SNAPSHOT, 1).iloc[0])
    verdicts: dict[str, list[object]] = {k: [] for k in empty_frame("verdicts").columns}
    for i, sid in enumerate(shop_ids):
        if rng.random() < 0.6 and i < n_shops - 1:
            verdicts["verdict_id"].append(f"v{i}")
            verdicts["shop_id"].append(sid)
            verdicts["decided_at"].append(_ts(rng, START + pd.Timedelta(days=100), SNAPSHOT, 1).iloc[0])
            verdicts["outcome"].append("genuine" if archetypes[i] == "honest" else "counterfeit")
            verdicts["evidence_kind"].append(str(rng.choice(["test_buy", "brand_owner", "reviewer"])))
    frames = {
        "shops": shops,
        "brands": _frame("brands", brands.to_dict("list")),
        "authorisations": _frame("authorisations", auth),
        "listings": listings_df,
        "listing_edits": edits_df,
        "orders": _frame("orders", orders),
        "complaints": _frame("complaints", complaints),
        "reviews": _frame("reviews", reviews),
        "verdicts": _frame("verdicts", verdicts),
    }
    assert [t.name for t in TABLES] == list(frames)
    mp = Marketplace(**frames, snapshot_at=SNAPSHOT)
    truth = pd.DataFrame({"shop_id": shop_ids, "is_counterfeiter": archetypes != "honest", "archetype": archetypes})
    return mp, truth


def examples_for(truth: pd.DataFrame, as_of: pd.Timestamp = AS_OF) -> pd.DataFrame:
    return pd.DataFrame({"shop_id": truth["shop_id"], "as_of": as_of, "label": truth["is_counterfeiter"].astype(int)})
