"""Direction and invariance: more evidence never lowers the matching feature; presentation never matters;
out-of-fold text scores never come from a model that saw the shop's own label."""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache

import numpy as np
import pandas as pd
import pytest

from features.lexicon import blatant_title, says_fake
from features.pipeline import ShopFeaturePipeline
from features.shop_text import ShopTextFeatures, shop_folds
from features.text import normalise_text
from marketplace.tables import Marketplace
from tests.features.factory import AS_OF, examples_for, make_marketplace

COMPLAINT_FEATURES = ("complaints_", "counterfeit_complaint_rate_")


@lru_cache(maxsize=1)
def _setup() -> tuple[Marketplace, pd.DataFrame, ShopFeaturePipeline, pd.DataFrame]:
    mp, truth = make_marketplace(30, seed=7)
    pipe = ShopFeaturePipeline(text_n_features=2**12, text_folds=3).fit(mp, examples_for(truth))
    return mp, truth, pipe, pipe.transform(mp, AS_OF)


def _complaints(mp: Marketplace, shop: str, n: int, days_before: float) -> Marketplace:
    extra = pd.DataFrame(
        {
            "complaint_id": [f"extra-{i}" for i in range(n)],
            "shop_id": shop,
            "order_id": None,
            "filed_at": AS_OF - pd.Timedelta(days=days_before),
            "kind": "counterfeit",
            "source": "consumer",
        }
    ).astype(mp.complaints.dtypes.to_dict())
    return replace(mp, complaints=pd.concat([mp.complaints, extra], ignore_index=True))


@pytest.mark.parametrize("days_before", [0.5, 20, 200])
@pytest.mark.parametrize("n", [1, 5])
def test_more_counterfeit_complaints_never_lower_complaint_features(n: int, days_before: float) -> None:
    mp, _, pipe, base = _setup()
    cols = [c for c in base.columns if c.startswith(COMPLAINT_FEATURES)]
    for shop in mp.shops["shop_id"].iloc[:6]:
        after = pipe.transform(_complaints(mp, shop, n, days_before), AS_OF, [shop]).iloc[0]
        before = base.loc[shop]
        assert (after[cols] >= before[cols]).all(), shop
        assert after["complaints_counterfeit_365d"] == before["complaints_counterfeit_365d"] + n
        assert after["counterfeit_complaint_rate_365d"] > before["counterfeit_complaint_rate_365d"]


@pytest.mark.parametrize("factor", [0.9, 0.5, 0.1])
def test_lower_price_never_raises_the_price_ratio(factor: float) -> None:
    mp, _, pipe, base = _setup()
    branded = mp.listings[mp.listings["brand"].notna() & (mp.listings["created_at"] < AS_OF)]
    for listing in branded["listing_id"].iloc[:8]:
        shop = branded.loc[branded["listing_id"] == listing, "shop_id"].iloc[0]
        listings = mp.listings.copy()
        listings.loc[listings["listing_id"] == listing, "price"] *= factor
        edits = mp.listing_edits.copy()
        edits.loc[edits["listing_id"] == listing, "price"] *= factor
        after = pipe.transform(replace(mp, listings=listings, listing_edits=edits), AS_OF, [shop]).iloc[0]
        before = base.loc[shop]
        assert after["price_ratio_min"] <= before["price_ratio_min"]
        assert after["price_ratio_median"] <= before["price_ratio_median"]
        assert after["low_price_listings"] >= before["low_price_listings"]
        assert after["low_price_share"] >= before["low_price_share"]
        for name in ("unauthorised_premium_ratio_min", "unauthorised_premium_ratio_median"):
            assert not after[name] > before[name]  # NaN (no such listing) stays NaN
        assert after["unauthorised_premium_below_half"] >= before["unauthorised_premium_below_half"]


def test_a_cheap_unauthorised_premium_listing_shows_in_the_tail_and_an_authorisation_hides_it() -> None:
    mp, _, pipe, base = _setup()
    premium = mp.brands.loc[mp.brands["premium"].astype(bool)].iloc[0]
    shop = mp.shops["shop_id"].iloc[0]
    row = mp.listings.iloc[[0]].copy()
    row["listing_id"] = "extra-fake"
    row["shop_id"] = shop
    row["brand"] = premium["brand"]
    row["price"] = 0.2 * float(premium["reference_price"])
    row["created_at"] = AS_OF - pd.Timedelta(days=3)
    row["delisted_at"] = pd.NaT
    with_fake = replace(mp, listings=pd.concat([mp.listings, row], ignore_index=True))
    after = pipe.transform(with_fake, AS_OF, [shop]).iloc[0]
    assert after["unauthorised_premium_ratio_min"] <= 0.2 + 1e-12
    assert after["unauthorised_premium_below_half"] == base.loc[shop, "unauthorised_premium_below_half"] + 1
    assert after["unauthorised_premium_below_half_share"] > base.loc[shop, "unauthorised_premium_below_half_share"]
    grant = pd.DataFrame(
        {"brand": [premium["brand"]], "shop_id": [shop], "granted_at": [AS_OF - pd.Timedelta(days=30)]}
    ).astype(mp.authorisations.dtypes.to_dict())
    authorised = replace(with_fake, authorisations=pd.concat([mp.authorisations, grant], ignore_index=True))
    cleared = pipe.transform(authorised, AS_OF, [shop]).iloc[0]
    # the grant covers the brand's every listing in the shop: at least the added one leaves the count
    assert cleared["unauthorised_premium_below_half"] <= after["unauthorised_premium_below_half"] - 1


def test_monotone_constraints_cover_the_known_direction_features_only() -> None:
    _, _, pipe, _ = _setup()
    names = list(pipe.get_feature_names_out())
    flags = dict(zip(names, pipe.monotone_constraints(), strict=True))
    assert flags["linked_kinds"] == flags["linked_by_device_id"] == flags["complaints_counterfeit_all"] == 1
    assert flags["unauthorised_premium_below_half"] == 1
    assert flags["listing_text_max"] == flags["orders_30d"] == flags["price_ratio_min"] == 0


def test_link_to_a_closed_shop_never_lowers_linkage_features() -> None:
    mp, _, pipe, base = _setup()
    v = mp.verdicts
    closed = v[(v["outcome"] == "counterfeit") & (v["decided_at"] < AS_OF)]["shop_id"]
    assert len(closed)
    donor = mp.shops[mp.shops["shop_id"] == closed.iloc[0]].iloc[0]
    link_cols = [c for c in base.columns if c.startswith("linked_")]
    for column in ("owner_phone", "device_id", "bank_account_hash", "owner_email"):
        for row in range(len(mp.shops)):
            shop = mp.shops["shop_id"].iloc[row]
            if shop == donor["shop_id"]:
                continue
            shops = mp.shops.copy()
            # the same identifier, written differently (case, full-width, spaces) still links
            shops.loc[row, column] = f" {str(donor[column]).upper()} "
            after = pipe.transform(replace(mp, shops=shops), AS_OF, [shop]).iloc[0]
            before = base.loc[shop]
            assert (after[link_cols] >= before[link_cols]).all()
            assert after[f"linked_by_{column}"] == 1.0
            assert after["linked_counterfeit_shops"] >= 1.0
            assert after["days_since_linked_verdict"] >= 0


def _fullwidth(text: str) -> str:
    """ASCII to full-width forms (Ａ-Ｚ, ０-９, ：) and the ideographic space, upper-cased."""
    out = []
    for ch in text.upper():
        if ch == " ":
            out.append("\u3000")
        elif "!" <= ch <= "~":
            out.append(chr(ord(ch) + 0xFEE0))
        else:
            out.append(ch)
    return "".join(out)


def test_case_and_fullwidth_titles_give_identical_features() -> None:
    mp, _, pipe, base = _setup()
    assert _fullwidth("replica 1:1") == "ＲＥＰＬＩＣＡ\u3000１：１"
    listings = mp.listings.copy()
    listings["title"] = listings["title"].map(_fullwidth).astype(listings["title"].dtype)
    listings["description"] = listings["description"].str.upper()
    edits = mp.listing_edits.copy()
    edits["title"] = edits["title"].map(_fullwidth).astype(edits["title"].dtype)
    reviews = mp.reviews.copy()
    reviews["text"] = reviews["text"].map(_fullwidth).astype(reviews["text"].dtype)
    after = pipe.transform(replace(mp, listings=listings, listing_edits=edits, reviews=reviews), AS_OF)
    pd.testing.assert_frame_equal(after, base, check_exact=True)


def test_normalisation_and_lexicon() -> None:
    assert normalise_text("ＲＥＰＬＩＣＡ\u3000１：１  Bag") == "replica 1:1 bag"
    assert normalise_text(None) == ""
    assert blatant_title(normalise_text("Gucci 高仿 包")) and blatant_title("rolex replica")
    assert blatant_title(normalise_text("ＡＡＡ 1：1 watch")) and blatant_title("nike a货 原单")
    assert not blatant_title("正品保证 非高仿 拒绝假货") and not blatant_title("not a replica, genuine")
    assert not blatant_title("iphone 11 case")
    assert says_fake("收到假货") and says_fake("不是正品") and says_fake("this is a fake") and says_fake("not genuine")
    assert not says_fake("不是假货，放心") and not says_fake("not fake at all") and not says_fake("放假前收到了")


def test_oof_text_score_of_a_shop_never_saw_its_own_label() -> None:
    """Flip one shop's label and refit: its out-of-fold scores stay bit-identical (its fold model never
    saw it), while the full model, which did see it, moves toward the new label."""
    mp, truth, _, _ = _setup()
    ex = examples_for(truth)
    with_text = mp.listings.loc[mp.listings["created_at"] < AS_OF, "shop_id"].value_counts().index
    shop = next(s for s in with_text if truth.set_index("shop_id").loc[s, "is_counterfeiter"] == 0)
    flipped = ex.copy()
    flipped.loc[flipped["shop_id"] == shop, "label"] = 1
    a = ShopTextFeatures(n_features=2**12, n_folds=3).fit(mp, ex)
    b = ShopTextFeatures(n_features=2**12, n_folds=3).fit(mp, flipped)
    oof_a = a.transform(mp, AS_OF, [shop], oof=True)
    oof_b = b.transform(mp, AS_OF, [shop], oof=True)
    pd.testing.assert_frame_equal(oof_a, oof_b, check_exact=True)
    full_a, full_b = a.transform(mp, AS_OF, [shop]), b.transform(mp, AS_OF, [shop])
    assert full_b.loc[shop, "listing_text_mean"] > full_a.loc[shop, "listing_text_mean"]
    # the fold models differ from the full model: the OOF path really uses them
    assert not np.array_equal(oof_a.to_numpy(), full_a.to_numpy())


def test_folds_are_a_stable_hash_of_shop_id() -> None:
    ids = np.asarray(["s0001", "店铺-42", "x"], dtype=object)
    np.testing.assert_array_equal(shop_folds(ids, 5), shop_folds(list(ids), 5))
    import zlib

    assert [int(f) for f in shop_folds(ids, 7)] == [zlib.crc32(s.encode()) % 7 for s in ids]


def test_window_counts_match_a_plain_pandas_count() -> None:
    """The vectorised nested-window counts equal a direct filter-and-count per shop."""
    mp, _, _, base = _setup()
    o, c, r = mp.orders, mp.complaints, mp.reviews
    for w in (7, 30, 90, 365):
        start = AS_OF - pd.Timedelta(days=w)
        ow = o[(o["ordered_at"] >= start) & (o["ordered_at"] < AS_OF)]
        expect = ow.groupby("shop_id").size().reindex(base.index, fill_value=0)
        np.testing.assert_array_equal(base[f"orders_{w}d"].to_numpy(), expect.to_numpy(dtype=float))
        gmv = ow.groupby("shop_id")["amount"].sum().reindex(base.index, fill_value=0.0)
        np.testing.assert_allclose(base[f"gmv_{w}d"].to_numpy(), gmv.to_numpy(), rtol=1e-12, atol=0.005)
        refunds = o[(o["refunded_at"] >= start) & (o["refunded_at"] < AS_OF)].groupby("shop_id").size()
        np.testing.assert_array_equal(
            base[f"refunds_{w}d"].to_numpy(), refunds.reindex(base.index, fill_value=0).to_numpy(dtype=float)
        )
        cw = c[(c["filed_at"] >= start) & (c["filed_at"] < AS_OF)]
        for kind in ("counterfeit", "quality"):
            got = cw[cw["kind"] == kind].groupby("shop_id").size().reindex(base.index, fill_value=0)
            np.testing.assert_array_equal(base[f"complaints_{kind}_{w}d"].to_numpy(), got.to_numpy(dtype=float))
        got = cw[cw["source"] == "test_buy"].groupby("shop_id").size().reindex(base.index, fill_value=0)
        np.testing.assert_array_equal(base[f"complaints_by_test_buy_{w}d"].to_numpy(), got.to_numpy(dtype=float))
        rw = r[(r["created_at"] >= start) & (r["created_at"] < AS_OF)]
        got = rw.groupby("shop_id").size().reindex(base.index, fill_value=0)
        np.testing.assert_array_equal(base[f"reviews_{w}d"].to_numpy(), got.to_numpy(dtype=float))


def test_unsorted_windows_give_the_same_counts() -> None:
    from features.history import SellerHistoryFeatures

    mp, truth, _, base = _setup()
    odd = SellerHistoryFeatures(windows=(90, 7, 30)).fit(mp, examples_for(truth)).transform(mp, AS_OF)
    for w in (7, 30, 90):
        for name in (f"orders_{w}d", f"complaints_counterfeit_{w}d", f"reviews_{w}d", f"delistings_{w}d"):
            np.testing.assert_array_equal(odd[name].to_numpy(), base[name].to_numpy())
