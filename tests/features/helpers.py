"""Helpers for the feature tests: one shop's frames, as the online path receives them."""

from __future__ import annotations

import pandas as pd

from marketplace.tables import Marketplace

SHOP_TABLES = ("shops", "authorisations", "listings", "orders", "complaints", "reviews")


def shop_frames(mp: Marketplace, shop_id: str) -> dict[str, pd.DataFrame]:
    """Every row of ``shop_id`` in the per-shop tables (plus its listings' edits), nothing global."""
    frames = {t: mp.table(t)[mp.table(t)["shop_id"] == shop_id].reset_index(drop=True) for t in SHOP_TABLES}
    edits = mp.listing_edits
    frames["listing_edits"] = edits[edits["listing_id"].isin(frames["listings"]["listing_id"])].reset_index(drop=True)
    return frames
