"""Brand and price: unauthorised brand listings, price relative to the brand's reference price.

A listing "of brand B" is unauthorised when the shop holds no authorisation for B granted strictly
before ``as_of``. Prices are the listing's price as of ``as_of`` (latest edit before it) divided by
the brand's reference price; a genuine premium handbag at 20% of its list price is the classic fake.
The brand table is learned in ``fit`` (so one shop's inline record can be priced online); brands of
the transformed marketplace that fit did not see are added, fitted brands keep their fitted values.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd

from features.base import MarketplaceFeatureBuilder, stack
from features.context import Snapshot, factorize, group_median, group_min, indexer
from features.docs import FeatureDoc
from features.listings import listing_state
from marketplace.tables import Marketplace


class BrandPriceFeatures(MarketplaceFeatureBuilder):
    """Per shop: branded/unauthorised/premium listing counts and price-to-reference statistics."""

    group = "brand_price"
    needs: ClassVar[dict[str, tuple[str, ...]]] = {
        "brands": ("brand", "reference_price", "premium"),
        "authorisations": ("brand", "shop_id", "granted_at"),
        "listings": ("listing_id", "shop_id", "created_at", "brand", "price"),
    }

    def __init__(self, low_price_ratio: float = 0.3) -> None:
        self.low_price_ratio = low_price_ratio

    def _fit(self, mp: Marketplace, examples: pd.DataFrame | None) -> None:
        if not 0 < self.low_price_ratio < 1:
            raise ValueError(f"low_price_ratio must be in (0, 1), got {self.low_price_ratio}")
        brands = mp.brands.drop_duplicates("brand", keep="last")
        self.brand_index_ = pd.Index(brands["brand"].astype("string"), name="brand")
        self.reference_price_ = brands["reference_price"].to_numpy(dtype=np.float64)
        self.premium_ = brands["premium"].to_numpy(dtype=bool)

    def _brand_table(self, snap: Snapshot) -> tuple[pd.Index, np.ndarray, np.ndarray]:
        def make() -> tuple[pd.Index, np.ndarray, np.ndarray]:
            extra = snap.frame("brands")
            if len(extra) and isinstance(extra, pd.DataFrame):
                new = ~extra["brand"].isin(self.brand_index_)
                if new.any():
                    extra = extra[new].drop_duplicates("brand", keep="last")
                    return (
                        self.brand_index_.append(pd.Index(extra["brand"].astype("string"))),
                        np.concatenate([self.reference_price_, extra["reference_price"].to_numpy(dtype=np.float64)]),
                        np.concatenate([self.premium_, extra["premium"].to_numpy(dtype=bool)]),
                    )
            return self.brand_index_, self.reference_price_, self.premium_

        result: tuple[pd.Index, np.ndarray, np.ndarray] = snap.cached("brand_table", make)
        return result

    def _docs(self) -> list[FeatureDoc]:
        g = self.group
        low = f"{self.low_price_ratio:.0%}"
        return [
            FeatureDoc("branded_listings", "{value:.0f} listings of named brands", False, g),
            FeatureDoc(
                "unauthorised_listings", "{value:.0f} listings of brands the shop is not authorised for", True, g
            ),
            FeatureDoc(
                "unauthorised_share", "{value:.0%} of branded listings are not authorised by the brand", True, g
            ),
            FeatureDoc("premium_listings", "{value:.0f} listings of premium brands", True, g),
            FeatureDoc(
                "unauthorised_premium_listings", "{value:.0f} premium-brand listings without authorisation", True, g
            ),
            FeatureDoc("distinct_brands", "{value:.0f} different brands listed", True, g),
            FeatureDoc("distinct_premium_brands", "{value:.0f} different premium brands listed", True, g),
            FeatureDoc(
                "distinct_unauthorised_premium_brands",
                "{value:.0f} different premium brands listed without authorisation",
                True,
                g,
            ),
            FeatureDoc("price_ratio_min", "cheapest listing at {value:.0%} of its brand's reference price", False, g),
            FeatureDoc("price_ratio_median", "median listing at {value:.0%} of its brand's reference price", False, g),
            FeatureDoc(
                "low_price_listings", f"{{value:.0f}} listings below {low} of the brand's reference price", True, g
            ),
            FeatureDoc(
                "low_price_share", f"{{value:.0%}} of branded listings below {low} of the reference price", True, g
            ),
            # the tail of the riskiest listings (a few cheap unauthorised premium items in a large shop
            # show here, where shop-wide means and shares dilute them)
            FeatureDoc(
                "unauthorised_premium_ratio_min",
                "cheapest unauthorised premium-brand listing at {value:.0%} of its reference price",
                False,
                g,
            ),
            FeatureDoc(
                "unauthorised_premium_ratio_median",
                "unauthorised premium-brand listings at a median {value:.0%} of their reference price",
                False,
                g,
            ),
            FeatureDoc(
                "unauthorised_premium_below_half",
                "{value:.0f} unauthorised premium-brand listings below half their reference price",
                True,
                g,
            ),
            FeatureDoc(
                "unauthorised_premium_below_half_share",
                "{value:.0%} of listings are unauthorised premium-brand items below half the reference price",
                True,
                g,
            ),
        ]

    def block(self, snap: Snapshot) -> np.ndarray:
        n = snap.n
        state = listing_state(snap)
        brand_index, ref_price, premium = self._brand_table(snap)
        brand_raw = snap.values("listings", "brand", object)[state.pos] if len(state.pos) else np.empty(0, object)
        has_brand = ~pd.isna(brand_raw)
        codes = state.codes[has_brand]
        names = brand_raw[has_brand]
        bcode = indexer(brand_index, names) if len(names) else np.empty(0, np.intp)
        authorised = self._authorised(snap, codes, names)
        known = bcode >= 0
        prem = np.zeros(len(bcode), dtype=bool)
        prem[known] = premium[bcode[known]]
        ratio = np.full(len(bcode), np.nan)
        ratio[known] = state.price[has_brand][known] / ref_price[bcode[known]]

        branded = snap.count(codes)
        unauth = snap.count(codes[~authorised])
        distinct = _distinct_pairs(codes, names)
        rk = ~np.isnan(ratio)
        priced = snap.count(codes[rk])
        low = snap.count(codes[rk & (ratio < self.low_price_ratio)])
        pu = rk & prem & ~authorised
        pu_cheap = snap.count(codes[pu & (ratio < 0.5)])
        listings = snap.count(state.codes)
        cols = [
            branded,
            unauth,
            np.where(branded > 0, unauth / np.maximum(branded, 1), 0.0),
            snap.count(codes[prem]),
            snap.count(codes[prem & ~authorised]),
            snap.count(codes[distinct]),
            snap.count(codes[distinct & prem]),
            snap.count(codes[distinct & prem & ~authorised]),
            group_min(codes[rk], ratio[rk], n),
            group_median(codes[rk], ratio[rk], n),
            low,
            np.where(priced > 0, low / np.maximum(priced, 1), 0.0),
            group_min(codes[pu], ratio[pu], n),
            group_median(codes[pu], ratio[pu], n),
            pu_cheap,
            pu_cheap / np.maximum(listings, 1),
        ]
        return stack(cols, n)

    def _authorised(self, snap: Snapshot, codes: np.ndarray, names: np.ndarray) -> np.ndarray:
        """Per branded listing: the shop holds an authorisation for its brand granted before as_of."""
        out = np.zeros(len(codes), dtype=bool)
        a = snap.before("authorisations", "granted_at")
        if len(a) == 0 or len(codes) == 0:
            return out
        auth_codes = snap.codes("authorisations")[a]
        auth_brands = snap.values("authorisations", "brand", object)[a]
        joint, _ = factorize(np.concatenate([names, auth_brands]))
        m = int(joint.max()) + 1
        listing_keys = codes.astype(np.int64) * m + joint[: len(codes)]
        auth_keys = auth_codes.astype(np.int64) * m + joint[len(codes) :]
        result: np.ndarray = np.isin(listing_keys, auth_keys)
        return result


def _distinct_pairs(codes: np.ndarray, names: np.ndarray) -> np.ndarray:
    """True on the first listing of each (shop, brand) pair: counting them counts distinct brands."""
    if len(codes) == 0:
        return np.zeros(0, dtype=bool)
    bcodes, _ = factorize(names)
    keys = codes.astype(np.int64) * (int(bcodes.max()) + 1) + bcodes
    _, first = np.unique(keys, return_index=True)
    out = np.zeros(len(codes), dtype=bool)
    out[first] = True
    return out
