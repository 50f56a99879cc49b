"""Point in time: changing, adding or deleting any event at or after ``as_of`` never changes any feature.

Hypothesis picks a table, one of its event-time columns, an operation and the rows; the transformed
marketplace differs from the base one only in events at or after ``as_of``. Every feature of every
shop must be bit-identical (also with out-of-fold text scores).
"""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.pipeline import ShopFeaturePipeline
from marketplace.tables import Marketplace
from tests.features.factory import AS_OF, SNAPSHOT, examples_for, make_marketplace

#: (table, key column, event-time column, secondary nullable event-time columns)
EVENT_TABLES = {
    "orders": ("order_id", "ordered_at", ("refunded_at",)),
    "complaints": ("complaint_id", "filed_at", ()),
    "reviews": ("review_id", "created_at", ()),
    "listings": ("listing_id", "created_at", ("delisted_at",)),
    "listing_edits": ("edit_id", "edited_at", ()),
    "verdicts": ("verdict_id", "decided_at", ()),
    "authorisations": (None, "granted_at", ()),
}
AS_OFS = (AS_OF, AS_OF - pd.Timedelta(days=45), pd.Timestamp("2025-11-03 12:34:56"))


@lru_cache(maxsize=1)
def _setup() -> tuple[Marketplace, ShopFeaturePipeline, dict[pd.Timestamp, pd.DataFrame]]:
    mp, truth = make_marketplace(24, seed=11)
    pipe = ShopFeaturePipeline(text_n_features=2**12, text_folds=3).fit(mp, examples_for(truth))
    base = {a: pipe.transform(mp, a, oof=True) for a in AS_OFS}
    return mp, pipe, base


def _future_time(draw: st.DrawFn, as_of: pd.Timestamp) -> pd.Timestamp:
    """A time at or after as_of (exactly as_of is the sharpest edge)."""
    if draw(st.booleans()):
        return as_of
    seconds = draw(st.integers(min_value=0, max_value=int((SNAPSHOT - as_of).total_seconds())))
    return as_of + pd.Timedelta(seconds=seconds)


@st.composite
def future_change(draw: st.DrawFn) -> tuple[pd.Timestamp, str, Marketplace]:
    mp, _, _ = _setup()
    as_of = draw(st.sampled_from(AS_OFS))
    table = draw(st.sampled_from(sorted(EVENT_TABLES)))
    key, time_col, secondary = EVENT_TABLES[table]
    frame = mp.table(table)
    donors = frame
    future = frame.index[frame[time_col] >= as_of]
    op = draw(st.sampled_from(["delete", "modify", "add", "secondary"]))
    new = frame.copy()
    if op == "secondary" and secondary:
        col = secondary[0]
        rows = frame.index[(frame[col] >= as_of).fillna(False).to_numpy(dtype=bool)]
        if len(rows):
            row = draw(st.sampled_from(list(rows)))
            new.loc[row, col] = pd.NaT if draw(st.booleans()) else _future_time(draw, as_of)
            return as_of, f"{table}.{col} of {row} moved", replace(mp, **{table: new})
        op = "add"
    if op in ("delete", "modify") and len(future) == 0:
        op = "add"
    if op == "delete":
        rows = draw(st.lists(st.sampled_from(list(future)), min_size=1, max_size=3, unique=True))
        new = new.drop(index=rows)
        what = f"deleted {len(rows)} {table} rows"
    elif op == "modify":
        row = draw(st.sampled_from(list(future)))
        donor = donors.loc[draw(st.sampled_from(list(donors.index)))]
        for col in frame.columns:
            if col in (key, "shop_id", "listing_id", "brand") and table in ("authorisations",):
                continue
            if col == key:
                continue
            new.loc[row, col] = donor[col]
        new.loc[row, time_col] = _future_time(draw, as_of)
        for col in secondary:
            new.loc[row, col] = pd.NaT if draw(st.booleans()) else _future_time(draw, as_of)
        what = f"modified {table} row {row}"
    else:
        donor = donors.loc[[draw(st.sampled_from(list(donors.index)))]].copy()
        if key is not None:
            donor[key] = f"new-{table}-{draw(st.integers(0, 10**6))}"
        else:  # authorisations: a new grant for another (brand, shop) pair
            donor["shop_id"] = draw(st.sampled_from(list(mp.shops["shop_id"])))
            donor["brand"] = draw(st.sampled_from(list(mp.brands["brand"])))
        if "shop_id" in donor.columns and draw(st.booleans()):
            donor["shop_id"] = draw(st.sampled_from(list(mp.shops["shop_id"])))
        if table == "verdicts":
            donor["outcome"] = draw(st.sampled_from(["counterfeit", "genuine"]))
        donor[time_col] = _future_time(draw, as_of)
        for col in secondary:
            donor[col] = pd.NaT if draw(st.booleans()) else _future_time(draw, as_of)
        new = pd.concat([new, donor], ignore_index=True).astype(frame.dtypes.to_dict())
        what = f"added a {table} row"
    if key is not None and table != "authorisations":
        assert not new[key].duplicated().any()
    return as_of, what, replace(mp, **{table: new})


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(change=future_change())
def test_future_events_never_change_any_feature(change: tuple[pd.Timestamp, str, Marketplace]) -> None:
    as_of, what, changed = change
    _, pipe, base = _setup()
    after = pipe.transform(changed, as_of, oof=True)
    pd.testing.assert_frame_equal(after, base[as_of], check_exact=True, obj=what)


def test_past_events_do_change_features() -> None:
    """The guard above is not vacuous: an extra complaint just before as_of is seen."""
    mp, pipe, base = _setup()
    shop = mp.shops["shop_id"].iloc[0]
    extra = pd.DataFrame(
        {
            "complaint_id": ["c-past"],
            "shop_id": [shop],
            "order_id": [None],
            "filed_at": [AS_OF - pd.Timedelta(microseconds=1)],
            "kind": ["counterfeit"],
            "source": ["test_buy"],
        }
    ).astype(mp.complaints.dtypes.to_dict())
    changed = replace(mp, complaints=pd.concat([mp.complaints, extra], ignore_index=True))
    after = pipe.transform(changed, AS_OF, oof=True)
    diff = (after.loc[shop] - base[AS_OF].loc[shop]).abs()
    assert diff["complaints_counterfeit_7d"] == 1.0
    assert diff["complaints_by_test_buy_7d"] == 1.0
    others = after.drop(index=shop)
    pd.testing.assert_frame_equal(others, base[AS_OF].drop(index=shop), check_exact=True)


@pytest.mark.parametrize("as_of", AS_OFS)
def test_shop_opened_after_as_of_reads_age_zero(as_of: pd.Timestamp) -> None:
    mp, pipe, _ = _setup()
    shops = mp.shops.copy()
    shops.loc[0, "opened_at"] = as_of + pd.Timedelta(days=3)
    later = replace(mp, shops=shops)
    shops2 = shops.copy()
    shops2.loc[0, "opened_at"] = as_of
    a = pipe.transform(later, as_of)
    b = pipe.transform(replace(mp, shops=shops2), as_of)
    assert a.iloc[0]["account_age_days"] == 0.0
    np.testing.assert_array_equal(a.to_numpy(), b.to_numpy())
