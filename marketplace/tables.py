"""The in-memory marketplace: one DataFrame per contract table, plus the snapshot time."""

from __future__ import annotations

from dataclasses import dataclass, fields

import pandas as pd


def scoring_time(snapshot_at: pd.Timestamp | str) -> pd.Timestamp:
    """The as-of time that scores a snapshot as it stands. Features use events strictly before
    ``as_of``, so one second past the snapshot includes every event of the snapshot. The one rule of
    the API (shops scored by id), the sweep and the crackdown."""
    return pd.Timestamp(snapshot_at) + pd.Timedelta(seconds=1)


@dataclass
class Marketplace:
    """All contract tables of one marketplace snapshot, validated (see ``load_marketplace``)."""

    shops: pd.DataFrame
    brands: pd.DataFrame
    authorisations: pd.DataFrame
    listings: pd.DataFrame
    listing_edits: pd.DataFrame
    orders: pd.DataFrame
    complaints: pd.DataFrame
    reviews: pd.DataFrame
    verdicts: pd.DataFrame
    #: the time the snapshot was taken: no event may lie after it
    snapshot_at: pd.Timestamp

    def table(self, name: str) -> pd.DataFrame:
        frame = getattr(self, name)
        assert isinstance(frame, pd.DataFrame)
        return frame

    def scoring_time(self) -> pd.Timestamp:
        """``scoring_time(self.snapshot_at)``: the as-of that scores the whole snapshot."""
        return scoring_time(self.snapshot_at)

    def table_names(self) -> list[str]:
        return [f.name for f in fields(self) if f.name != "snapshot_at"]


#: the columns of the contract's ``verdicts`` table, in order
VERDICT_COLUMNS = ("verdict_id", "shop_id", "decided_at", "outcome", "evidence_kind")


def verdict_frame(rows: list[dict[str, object]]) -> pd.DataFrame:
    """Verdict rows (dicts with :data:`VERDICT_COLUMNS`) as a frame in the loaded dtypes: strings as pandas
    string dtype, ``decided_at`` naive UTC ``datetime64[us]``; sorted by decision time, then id."""
    frame = pd.DataFrame(rows, columns=list(VERDICT_COLUMNS))
    frame["decided_at"] = pd.to_datetime(frame["decided_at"]).astype("datetime64[us]")
    for c in ("verdict_id", "shop_id", "outcome", "evidence_kind"):
        frame[c] = frame[c].astype("string")
    return frame.sort_values(["decided_at", "verdict_id"], kind="stable").reset_index(drop=True)
