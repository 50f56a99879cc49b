"""The realism the design asks of the synthetic marketplace, measured on generated data.

One marketplace of 5,000 shops is generated and loaded (validated) once per module; each test
measures one behaviour against the ground truth.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import cross_val_predict

from marketplace.generator import GeneratorConfig, generate
from marketplace.loader import load_marketplace
from marketplace.schema import GROUND_TRUTH_FILE, LINKAGE_FIELDS
from marketplace.synth.vocab import BLATANT_WORDS
from marketplace.tables import Marketplace

N_SHOPS = 5_000
NEGATIONS = ("not a replica", "not replica", "非高仿", "拒绝a货", "非a货")
SECOND_HAND_WORDS = ("二手", "used", "pre-owned", "95新", "9成新", "99新", "闲置", "second hand", "preloved", "八成新")
GREY_WORDS = ("海外代购", "parallel import", "代购", "直邮", "duty free", "overseas", "eu import", "免税")
EUPHEMISMS = ("专柜品质", "same factory", "mirror quality", "高品质", "原厂品质", "top quality", "counter quality")


@dataclass
class World:
    mp: Marketplace
    truth: pd.DataFrame
    crackdown: pd.Timestamp


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    out = tmp_path_factory.mktemp("realism")
    config = GeneratorConfig(shops=N_SHOPS, seed=11, chunk_shops=2_000)
    generate(config, out)
    truth = pd.read_parquet(out / GROUND_TRUTH_FILE).set_index("shop_id")
    return World(mp=load_marketplace(out), truth=truth, crackdown=config.crackdown)


def _norm(titles: pd.Series) -> pd.Series:
    return titles.astype(object).map(lambda t: unicodedata.normalize("NFKC", t).lower())


def _contains_any(text: pd.Series, words: tuple[str, ...]) -> np.ndarray:
    hit = np.zeros(len(text), dtype=bool)
    for w in words:
        hit |= text.str.contains(w, regex=False).to_numpy()
    return hit


def _keyword_flags(w: World) -> pd.Series:
    """The naive rule: a shop is flagged when any listing title carries a blatant word."""
    listings = w.mp.listings
    hit = _contains_any(_norm(listings["title"]), BLATANT_WORDS)
    return pd.Series(hit).groupby(listings["shop_id"].to_numpy()).any().reindex(w.truth.index, fill_value=False)


def _price_ratio(w: World) -> pd.Series:
    ref = w.mp.brands.set_index("brand")["reference_price"]
    return w.mp.listings["price"] / w.mp.listings["brand"].map(ref).astype(float)


def test_keyword_rule_finds_at_most_half_and_flags_honest_shops(world: World) -> None:
    flags = _keyword_flags(world)
    cf = world.truth["is_counterfeiter"]
    recall = flags[cf].mean()
    honest_flagged = flags[~cf]
    assert 0.15 < recall <= 0.5, recall
    assert 0.005 < honest_flagged.mean() < 0.12, honest_flagged.mean()
    assert world.truth["archetype"].eq("counterfeit_camouflaged").sum() > 0.3 * cf.sum()
    # the honest shops it flags include disclaimers such as "not a replica" / "非高仿"
    flagged_honest = set(honest_flagged[honest_flagged].index)
    listings = world.mp.listings
    of_flagged = listings[listings["shop_id"].isin(flagged_honest)]
    assert _contains_any(_norm(of_flagged["title"]), NEGATIONS).sum() > 0


def test_honest_discounters_and_second_hand_look_suspicious_on_price(world: World) -> None:
    ratio = _price_ratio(world)
    arch = world.mp.listings["shop_id"].map(world.truth["archetype"])
    median = ratio.groupby(arch).median()
    assert (world.truth["archetype"] == "discounter").sum() > 100
    assert (world.truth["archetype"] == "second_hand").sum() > 100
    assert median["discounter"] < 0.7 and median["second_hand"] < 0.5
    assert median["honest"] > 0.7 and median["authorised"] > 0.75
    # cheaper than the camouflaged counterfeiters' listings some of the time: price alone is not enough
    camo = ratio[arch == "counterfeit_camouflaged"].dropna()
    second = ratio[arch == "second_hand"].dropna()
    assert (second < camo.median()).mean() > 0.2
    titles = _norm(world.mp.listings["title"])
    assert _contains_any(titles[arch == "second_hand"], SECOND_HAND_WORDS).mean() > 0.5
    assert _contains_any(titles[arch == "grey_import"], GREY_WORDS).mean() > 0.5


def test_closed_shopkeepers_reappear_with_shared_identifiers(world: World) -> None:
    truth = world.truth
    shops = world.mp.shops.set_index("shop_id")
    children = truth[truth["parent_shop_id"].notna()]
    assert len(children) >= 10
    fields = list(LINKAGE_FIELDS)
    for child, parent in children["parent_shop_id"].items():
        assert truth.at[parent, "closed_at"] is not pd.NaT and pd.notna(truth.at[parent, "closed_at"])
        assert shops.at[child, "opened_at"] > truth.at[parent, "closed_at"]
        same = (shops.loc[child, fields] == shops.loc[parent, fields]).to_numpy()
        assert 1 <= same.sum() < len(fields), (child, parent)
        assert shops.at[child, "shopkeeper_id"] != shops.at[parent, "shopkeeper_id"]
        recorded = set(truth.at[child, "shared_identifiers"].split(","))
        assert recorded == {f for f, s in zip(fields, same, strict=True) if s}
    # not the same subset every time, and lineage crosses generation chunks (2,000 shops each)
    assert children["shared_identifiers"].nunique() > 3
    child_chunk = children.index.str[1:].astype(int) // 2_000
    parent_chunk = children["parent_shop_id"].str[1:].astype(int) // 2_000
    assert (child_chunk != parent_chunk).any()


def test_verdicts_are_partial_and_late(world: World) -> None:
    v, truth = world.mp.verdicts, world.truth
    cf = truth["is_counterfeiter"]
    convicted = set(v.loc[v["outcome"] == "counterfeit", "shop_id"])
    coverage = len(convicted) / cf.sum()
    assert 0.1 < coverage < 0.7, coverage
    assert all(truth.loc[list(convicted), "is_counterfeiter"])
    assert (v["outcome"] == "genuine").sum() > 0
    assert ((truth["verdict_due_at"] > world.mp.snapshot_at) & truth["verdict_due_at"].notna()).sum() > 0
    # each verdict judges sales made weeks before it
    judged_at = v["shop_id"].map(truth["investigated_at"])
    assert ((v["decided_at"] - judged_at) >= pd.Timedelta(days=14)).all()
    first_order = world.mp.orders.groupby("shop_id")["ordered_at"].min()
    assert (v["decided_at"] - v["shop_id"].map(first_order) >= pd.Timedelta(days=14)).all()
    orders = world.mp.orders.set_index("shop_id")["ordered_at"]
    judged_sale = pd.Series([(orders.loc[[s]] == t).any() for s, t in zip(v["shop_id"], judged_at, strict=True)])
    assert judged_sale.all()
    # a closed shop sells nothing after its verdict
    closed = truth["closed_at"].dropna()
    last = world.mp.orders.groupby("shop_id")["ordered_at"].max().reindex(closed.index)
    assert (last.dropna() < closed[last.notna()]).all()


def test_per_shop_counts_are_heavy_tailed(world: World) -> None:
    idx = world.truth.index
    orders = world.mp.orders.groupby("shop_id").size().reindex(idx, fill_value=0).sort_values(ascending=False)
    top1 = orders.iloc[: len(orders) // 100].sum() / orders.sum()
    assert top1 > 0.15, top1
    assert orders.median() < 0.5 * orders.mean()
    complaints = world.mp.complaints.groupby("shop_id").size().reindex(idx, fill_value=0)
    reviews = world.mp.reviews.groupby("shop_id").size().reindex(idx, fill_value=0)
    assert complaints.median() == 0 and complaints.max() >= 10
    assert reviews.quantile(0.99) >= 10 * max(reviews.median(), 1)
    assert 10 < orders.mean() < 30 and 3 < world.mp.listings.groupby("shop_id").size().mean() < 8


def test_counterfeiters_change_wording_after_the_crackdown(world: World) -> None:
    listings, edits, truth = world.mp.listings, world.mp.listing_edits, world.truth
    blatant = listings["shop_id"].map(truth["archetype"]).eq("counterfeit_blatant").to_numpy()
    hit = _contains_any(_norm(listings["title"]), BLATANT_WORDS)
    after = (listings["created_at"] >= world.crackdown).to_numpy()
    before_share = hit[blatant & ~after].mean()
    after_share = hit[blatant & after].mean()
    assert after_share < 0.5 * before_share, (before_share, after_share)
    # existing listings are rewritten: the edit drops the blatant word for a euphemism
    e = edits.merge(listings[["listing_id", "title"]], on="listing_id", suffixes=("", "_created"))
    rewritten = (
        (e["edited_at"] >= world.crackdown).to_numpy()
        & _contains_any(_norm(e["title_created"]), BLATANT_WORDS)
        & ~_contains_any(_norm(e["title"]), BLATANT_WORDS)
        & _contains_any(_norm(e["title"]), EUPHEMISMS)
    )
    assert rewritten.sum() >= 10
    # counterfeiters churn: they delist and edit more than honest shops
    cf = listings["shop_id"].map(truth["is_counterfeiter"]).to_numpy()
    delisted = listings["delisted_at"].notna().to_numpy()
    assert delisted[cf].mean() > 1.5 * delisted[~cf].mean()


def test_events_are_causally_ordered(world: World) -> None:
    mp = world.mp
    opened = mp.shops.set_index("shop_id")["opened_at"]
    lst = mp.listings.set_index("listing_id")
    assert (mp.listings["created_at"] > mp.listings["shop_id"].map(opened)).all()
    o = mp.orders
    assert (o["ordered_at"] > o["listing_id"].map(lst["created_at"])).all()
    delisted = o["listing_id"].map(lst["delisted_at"])
    assert (delisted.isna() | (o["ordered_at"] < delisted)).all()
    assert (o["refunded_at"].isna() | (o["refunded_at"] > o["ordered_at"])).all()
    ordered = o.set_index("order_id")["ordered_at"]
    r, c = mp.reviews, mp.complaints.dropna(subset=["order_id"])
    assert (r["created_at"] > r["order_id"].map(ordered)).all()
    assert (c["filed_at"] > c["order_id"].map(ordered)).all()
    e = mp.listing_edits
    assert (e["edited_at"] > e["listing_id"].map(lst["created_at"])).all()
    for frame, col in ((o, "ordered_at"), (r, "created_at"), (mp.complaints, "filed_at"), (e, "edited_at")):
        assert (frame[col] < mp.snapshot_at).all()


def test_text_mixes_languages_widths_and_casing(world: World) -> None:
    titles = world.mp.listings["title"].astype(object)
    cjk = titles.str.contains(r"[\u4e00-\u9fff]")
    latin = titles.str.contains(r"[A-Za-z]")
    assert cjk.mean() > 0.3 and latin.mean() > 0.3 and (cjk & latin).mean() > 0.1
    assert titles.str.contains(r"[\uff01-\uff5e]").sum() > 0  # full-width forms
    assert titles.str.contains(r"\b[A-Z]{4,}\b").sum() > 0  # shouting brand names
    sources = set(world.mp.complaints["source"])
    assert sources == {"consumer", "brand_owner", "test_buy"}
    reviews = world.mp.reviews
    says_fake = reviews["text"].str.contains("假货|fake|不是正品", case=False, regex=True)
    denies = reviews["text"].str.contains("不是假货|not fake", case=False, regex=True)
    fake = says_fake & ~denies
    cf_review = reviews["shop_id"].map(world.truth["is_counterfeiter"])
    assert fake[cf_review].mean() > 3 * fake[~cf_review].mean() and fake[~cf_review].sum() > 0
    assert denies.sum() > 0  # "正品，不是假货": a naive "假货" match misfires


def test_authorised_shops_have_authorisations(world: World) -> None:
    auth = world.mp.authorisations
    authorised = world.truth.index[world.truth["archetype"] == "authorised"]
    assert set(authorised) <= set(auth["shop_id"])
    sold = world.mp.listings.merge(auth, on=["shop_id", "brand"])
    assert len(sold) > len(authorised)


def _shop_aggregates(w: World) -> pd.DataFrame:
    """A handful of simple per-shop aggregates over the whole history (no model-grade features)."""
    idx = w.truth.index
    mp = w.mp
    listings = mp.listings
    shop = listings["shop_id"]
    premium = listings["brand"].map(mp.brands.set_index("brand")["premium"]).fillna(False).astype(bool)
    authorised = pd.MultiIndex.from_frame(listings[["brand", "shop_id"]]).isin(
        pd.MultiIndex.from_frame(mp.authorisations[["brand", "shop_id"]])
    )
    unauth = premium & ~authorised
    log_ratio = np.log(_price_ratio(w).clip(1e-3, 10)).where(unauth, 0.0).fillna(0.0)
    n_orders = mp.orders.groupby("shop_id").size().reindex(idx, fill_value=0)
    cf_complaints = mp.complaints[mp.complaints["kind"] == "counterfeit"].groupby("shop_id").size()
    n_reviews = mp.reviews.groupby("shop_id").size().reindex(idx, fill_value=0)
    fake = mp.reviews["text"].str.contains("假|fake|counterfeit|不是正品", case=False, regex=True)
    shops = mp.shops.set_index("shop_id")
    convicted = set(mp.verdicts.loc[mp.verdicts["outcome"] == "counterfeit", "shop_id"])
    linked = pd.Series(0.0, index=idx)
    for f in LINKAGE_FIELDS:
        bad_values = set(shops.loc[shops.index.isin(convicted), f])
        linked += (shops[f].isin(bad_values) & ~shops.index.isin(convicted)).astype(float).reindex(idx)
    return pd.DataFrame(
        {
            "keyword": _keyword_flags(w).astype(float),
            "min_log_price_ratio": log_ratio.groupby(shop).min().reindex(idx).fillna(0.0),
            "unauthorised_premium_share": unauth.groupby(shop).mean().reindex(idx).fillna(0.0),
            "delisted_share": listings["delisted_at"].notna().groupby(shop).mean().reindex(idx).fillna(0.0),
            "refund_rate": mp.orders["refunded_at"].notna().groupby(mp.orders["shop_id"]).sum().reindex(idx).fillna(0)
            / (n_orders + 10),
            "counterfeit_complaints": np.log1p(cf_complaints.reindex(idx, fill_value=0)),
            "fake_review_rate": fake.groupby(mp.reviews["shop_id"]).sum().reindex(idx).fillna(0) / (n_reviews + 5),
            "linked_to_convicted": linked,
        }
    )


def test_combining_signals_beats_the_keyword_rule_but_not_perfectly(world: World) -> None:
    x = _shop_aggregates(world)
    y = world.truth["is_counterfeiter"].to_numpy()
    xs = (x - x.mean()) / x.std().replace(0, 1)
    score = cross_val_predict(LogisticRegression(max_iter=1000), xs, y, cv=5, method="predict_proba")[:, 1]
    combined = roc_auc_score(y, score)
    keyword = roc_auc_score(y, x["keyword"])
    assert keyword < 0.75, keyword
    assert combined > keyword + 0.15, (combined, keyword)
    assert combined < 0.995, combined
    # no single simple signal gets there alone
    for col in x.columns:
        auc = roc_auc_score(y, x[col])
        assert max(auc, 1 - auc) < combined, col


def test_brushing_accounts_buy_across_brushing_shops(world: World) -> None:
    orders, truth = world.mp.orders, world.truth
    shops_per_buyer = orders.groupby("buyer_id")["shop_id"].nunique()
    # a real buyer places a handful of orders; a brushing account buys from dozens of shops
    heavy = shops_per_buyer[shops_per_buyer >= 20].index
    assert len(heavy) >= 10
    by_heavy = orders[orders["buyer_id"].isin(heavy)]
    assert (by_heavy["shop_id"].map(truth["brush_share"]) > 0).mean() > 0.95
    assert by_heavy["refunded_at"].isna().all()
    assert by_heavy["shop_id"].map(truth["is_counterfeiter"]).mean() > 2 * truth["is_counterfeiter"].mean()
    reviews = world.mp.reviews
    assert (reviews.loc[reviews["order_id"].isin(by_heavy["order_id"]), "rating"] == 5).all()
    # real buyers sleep (Beijing 01:00-06:00 is quiet); brushing accounts order at any hour
    night = ((orders["ordered_at"].dt.hour + 8) % 24).between(1, 5)
    real = ~orders["buyer_id"].isin(heavy)
    assert night[~real].mean() > 2 * night[real].mean()


def test_orders_crowd_around_shopping_festivals(world: World) -> None:
    at = world.mp.orders["ordered_at"]
    recent = at[at >= pd.Timestamp("2025-07-01")]
    per_day = recent.dt.floor("D").value_counts()
    festival = per_day.reindex(pd.to_datetime(["2025-11-10", "2025-11-11", "2025-12-11", "2025-12-12"])).mean()
    assert festival > 1.5 * per_day.median()


def test_shops_that_leave_or_panic_take_their_listings_down(world: World) -> None:
    truth, listings, orders = world.truth, world.mp.listings, world.mp.orders
    left = truth["left_at"].dropna()
    assert (~truth.loc[left.index, "is_counterfeiter"]).sum() > 50  # honest shops leave too
    of_left = listings[listings["shop_id"].isin(left.index)]
    assert (of_left["delisted_at"] <= of_left["shop_id"].map(left)).all()
    last_order = orders[orders["shop_id"].isin(left.index)].groupby("shop_id")["ordered_at"].max()
    assert (last_order < left[last_order.index]).all()
    # investigated counterfeiters that pull listings within days of the evidence purchase
    inv = listings["shop_id"].map(truth["investigated_at"])
    cf = listings["shop_id"].map(truth["is_counterfeiter"])
    gap = listings["delisted_at"] - inv
    panicked = cf & (gap > pd.Timedelta(days=1)) & (gap < pd.Timedelta(days=5))
    assert listings.loc[panicked, "shop_id"].nunique() >= 10


def test_orders_pay_the_price_of_the_moment(world: World) -> None:
    """An order's amount follows the listing's price when it was placed (latest edit before it)."""
    orders, listings, edits = world.mp.orders, world.mp.listings, world.mp.listing_edits
    at_time = pd.merge_asof(
        orders.sort_values("ordered_at"),
        edits.sort_values("edited_at")[["listing_id", "edited_at", "price"]],
        left_on="ordered_at",
        right_on="edited_at",
        by="listing_id",
        allow_exact_matches=False,
    )
    assert at_time["price"].notna().sum() > 1_000  # many orders come after an edit
    price = at_time["price"].fillna(at_time["listing_id"].map(listings.set_index("listing_id")["price"]))
    per_unit = at_time["amount"] / price
    assert per_unit.between(0.899, 3.0 + 1e-9).all()  # coupons down to 90%, up to three items
