"""Helpers for the feature tests: one shop's frames, as the online path receives them."""

from __future__ import annotations

import pandas as pd

from marketplace.records import CHILD_TABLES
from marketplace.schema import TABLES_BY_NAME
from marketplace.tables import Marketplace

#: shops and the child tables that carry the shop's id (listing_edits hangs off its listing)
SHOP_TABLES = tuple(t for t in ("shops", *CHILD_TABLES) if "shop_id" in TABLES_BY_NAME[t].column_names)


def shop_frames(mp: Marketplace, shop_id: str) -> dict[str, pd.DataFrame]:
    """Every row of ``shop_id`` in the per-shop tables (plus its listings' edits), nothing global."""
    frames = {t: mp.table(t)[mp.table(t)["shop_id"] == shop_id].reset_index(drop=True) for t in SHOP_TABLES}
    edits = mp.listing_edits
    frames["listing_edits"] = edits[edits["listing_id"].isin(frames["listings"]["listing_id"])].reset_index(drop=True)
    return frames
