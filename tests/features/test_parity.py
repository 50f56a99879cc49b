"""One code path: a shop's online row equals its batch row exactly; subsets equal the full run's rows."""

from __future__ import annotations

import pickle
from functools import lru_cache

import pandas as pd
import pytest

from features.pipeline import ShopFeaturePipeline
from marketplace.tables import Marketplace
from tests.features.factory import AS_OF, examples_for, make_marketplace
from tests.features.helpers import shop_frames


@lru_cache(maxsize=1)
def _setup() -> tuple[Marketplace, ShopFeaturePipeline, pd.DataFrame]:
    mp, truth = make_marketplace(30, seed=5)
    pipe = ShopFeaturePipeline(text_n_features=2**12, text_folds=3).fit(mp, examples_for(truth))
    return mp, pipe, pipe.transform(mp, AS_OF)


def _edge_shops(mp: Marketplace) -> list[str]:
    ids = mp.shops["shop_id"]
    no_orders = ids[~ids.isin(mp.orders["shop_id"])]
    no_listings = ids[~ids.isin(mp.listings["shop_id"])]
    most_orders = mp.orders["shop_id"].value_counts().index[0]
    linked = mp.shops["shop_id"].iloc[[3, 7, 11]]
    assert len(no_orders) and len(no_listings)
    return sorted({no_orders.iloc[0], no_listings.iloc[-1], most_orders, *linked, *ids.iloc[:4]})


def test_online_frames_equal_batch_rows_exactly() -> None:
    mp, pipe, batch = _setup()
    for shop in _edge_shops(mp):
        online = pipe.transform_frames(shop_frames(mp, shop), AS_OF)
        pd.testing.assert_frame_equal(online, batch.loc[[shop]], check_exact=True, obj=f"shop {shop}")


def test_online_records_equal_batch_rows_exactly() -> None:
    records = pytest.importorskip("marketplace.records", reason="marketplace.records has not landed yet")
    mp, pipe, batch = _setup()
    tables = {name: mp.table(name) for name in mp.table_names()}
    for shop in _edge_shops(mp):
        (record,) = records.records_from_frames(tables, [shop])
        online = pipe.transform_records([record], AS_OF)
        pd.testing.assert_frame_equal(online, batch.loc[[shop]], check_exact=True, obj=f"shop {shop}")
    several = _edge_shops(mp)[:5]
    online = pipe.transform_records(records.records_from_frames(tables, several), AS_OF)
    pd.testing.assert_frame_equal(online, batch.loc[several], check_exact=True)


def test_subset_equals_rows_of_the_full_run() -> None:
    mp, pipe, batch = _setup()
    for subset in (list(mp.shops["shop_id"].iloc[::3]), list(mp.shops["shop_id"].iloc[::-4]), _edge_shops(mp)):
        part = pipe.transform(mp, AS_OF, subset)
        pd.testing.assert_frame_equal(part, batch.loc[subset], check_exact=True)
        part_oof = pipe.transform(mp, AS_OF, subset, oof=True)
        full_oof = pipe.transform(mp, AS_OF, oof=True)
        pd.testing.assert_frame_equal(part_oof, full_oof.loc[subset], check_exact=True)


def test_batches_of_shops_give_the_full_run_exactly() -> None:
    mp, pipe, batch = _setup()
    small = pickle.loads(pickle.dumps(pipe))
    small.set_params(batch_shops=7)
    pd.testing.assert_frame_equal(small.transform(mp, AS_OF), batch, check_exact=True)
    pd.testing.assert_frame_equal(
        small.transform(mp, AS_OF, oof=True), pipe.transform(mp, AS_OF, oof=True), check_exact=True
    )


def test_row_order_of_tables_does_not_matter() -> None:
    mp, pipe, batch = _setup()
    shuffled = Marketplace(
        **{name: mp.table(name).sample(frac=1.0, random_state=1) for name in mp.table_names()},
        snapshot_at=mp.snapshot_at,
    )
    pd.testing.assert_frame_equal(pipe.transform(shuffled, AS_OF).loc[batch.index], batch, check_exact=True)
