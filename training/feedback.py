"""The feedback loop's training side: labels from people (reviewer decisions and appeal outcomes,
``sanctions.labels.reviewer_labels``; audit-sample findings, ``serving.console.sample.finding_labels``;
read together by ``dajia.feedback.read_feedback``) joined to a marketplace before ``dajia train``.

Each label is a verdict row dated at its decision time, so the example builder's label windows and the
label-delay gap apply to it as to any verdict. :func:`apply_feedback` says what became of every label
(added, simulated and left out, unknown shop, decided after the snapshot, already present), and
:func:`feedback_landing` how many examples of each period (train / valid / test) it labels: nothing is
dropped silently.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pandas as pd

from core.errors import DajiaError
from marketplace.tables import VERDICT_COLUMNS, Marketplace
from training.examples import ExampleSet


def with_feedback(mp: Marketplace, verdicts: pd.DataFrame) -> Marketplace:
    """The marketplace with reviewer verdicts added (unknown shops and decisions after the snapshot
    are left out; ids already present are not duplicated)."""
    return _merge(mp, _usable(mp, verdicts))


def _usable(mp: Marketplace, verdicts: pd.DataFrame) -> pd.DataFrame:
    known = set(mp.shops["shop_id"].astype(str))
    v = verdicts[verdicts["shop_id"].astype(str).isin(known) & (verdicts["decided_at"] <= mp.snapshot_at)]
    return v[~v["verdict_id"].astype(str).isin(set(mp.verdicts["verdict_id"].astype(str)))]


def _merge(mp: Marketplace, v: pd.DataFrame) -> Marketplace:
    cols = list(mp.verdicts.columns)
    merged = pd.concat([mp.verdicts, v[cols].astype(mp.verdicts.dtypes.to_dict())], ignore_index=True)
    return replace(mp, verdicts=merged)


def _counts(frame: pd.DataFrame) -> dict[str, int]:
    if "source" not in frame.columns:
        return {"all": len(frame)}
    out = {str(k): int(n) for k, n in frame["source"].astype(str).value_counts().sort_index().items()}
    return {"all": len(frame), **out}


def apply_feedback(
    mp: Marketplace, labels: pd.DataFrame, include_simulated: bool = False
) -> tuple[Marketplace, pd.DataFrame, dict[str, Any]]:
    """The marketplace with the feedback labels added, the labels added, and a report of counts.

    ``labels``: verdict rows, optionally with ``source`` and ``simulated`` columns (``dajia.feedback``).
    Simulated labels (the demo's stand-in humans) are counted apart and left out unless
    ``include_simulated``."""
    missing = [c for c in VERDICT_COLUMNS if c not in labels.columns]
    if missing:
        raise DajiaError(f"feedback labels lack the column(s) {', '.join(missing)}")
    simulated = labels["simulated"].astype(bool) if "simulated" in labels.columns else pd.Series(False, labels.index)
    report: dict[str, Any] = {
        "read": _counts(labels),
        "simulated": _counts(labels[simulated]),
        "include_simulated": include_simulated,
    }
    pool = labels if include_simulated else labels[~simulated]
    known = pool["shop_id"].astype(str).isin(set(mp.shops["shop_id"].astype(str)))
    late = pool["decided_at"] > mp.snapshot_at
    present = pool["verdict_id"].astype(str).isin(set(mp.verdicts["verdict_id"].astype(str)))
    report["left_out"] = {
        "simulated": 0 if include_simulated else int(simulated.sum()),
        "unknown_shop": int((~known).sum()),
        "after_snapshot": int((known & late).sum()),
        "already_present": int((known & ~late & present).sum()),
    }
    added = pool[known & ~late & ~present]
    report["added"] = _counts(added)
    report["added_by_outcome"] = {str(k): int(n) for k, n in added["outcome"].astype(str).value_counts().items()}
    report["snapshot_at"] = pd.Timestamp(mp.snapshot_at).isoformat()
    return _merge(mp, added), added, report


def feedback_landing(exs: ExampleSet, added: pd.DataFrame, horizon_days: int) -> dict[str, int]:
    """Labelled examples per period (train / valid / test) whose label window (as_of, as_of + horizon]
    holds one of the ``added`` feedback labels of the same shop: what the feedback actually labels."""
    out = {"train": 0, "valid": 0, "test": 0}
    if len(added) == 0:
        return out
    f = exs.frame[exs.frame["labelled"]][["shop_id", "as_of", "period"]].copy()
    f["shop_id"] = f["shop_id"].astype(str)
    a = pd.DataFrame({"shop_id": added["shop_id"].astype(str), "decided_at": added["decided_at"]})
    m = f.reset_index().merge(a, on="shop_id")
    hit = (m["decided_at"] > m["as_of"]) & (m["decided_at"] <= m["as_of"] + pd.Timedelta(days=horizon_days))
    per = m[hit].drop_duplicates("index")["period"].value_counts()
    return {k: int(per.get(k, 0)) for k in out}
