"""The feedback loop's training side: verdict rows from reviewers (``sanctions.labels.reviewer_verdicts``,
``serving.console.sample.export_verdicts``) joined to a marketplace before ``dajia train``."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd

from marketplace.tables import Marketplace


def with_feedback(mp: Marketplace, verdicts: pd.DataFrame) -> Marketplace:
    """The marketplace with reviewer verdicts added (unknown shops and decisions after the snapshot
    are left out; ids already present are not duplicated)."""
    known = set(mp.shops["shop_id"].astype(str))
    v = verdicts[verdicts["shop_id"].astype(str).isin(known) & (verdicts["decided_at"] <= mp.snapshot_at)]
    v = v[~v["verdict_id"].astype(str).isin(set(mp.verdicts["verdict_id"].astype(str)))]
    merged = pd.concat([mp.verdicts, v[mp.verdicts.columns].astype(mp.verdicts.dtypes.to_dict())], ignore_index=True)
    return replace(mp, verdicts=merged)
