"""The API's column path for inline records (parsed JSON -> ``record_columns`` -> ``tables_from_columns``
-> the fitted pipeline's ``transform``) gives every shop exactly its batch row, like ``transform_records``."""

from __future__ import annotations

from typing import Any

import orjson
import pandas as pd

from features.online import tables_from_columns
from features.pipeline import ShopFeaturePipeline
from marketplace.records import records_from_frames
from serving.record_columns import record_columns
from tests.features.factory import AS_OF
from tests.features.test_parity import _edge_shops, _setup


def _transform(pipe: ShopFeaturePipeline, records: list[dict[str, Any]]) -> pd.DataFrame:
    cols = record_columns(records)
    assert cols is not None, "valid records must pass the column check"
    return pipe.transform(tables_from_columns(cols.columns, cols.rows), AS_OF)


def test_inline_columns_equal_batch_rows_exactly() -> None:
    mp, pipe, batch = _setup()
    tables = {name: mp.table(name) for name in mp.table_names()}
    shops = list(dict.fromkeys([*_edge_shops(mp), *mp.shops["shop_id"].iloc[::5].tolist()]))
    records = orjson.loads(orjson.dumps([r.model_dump(mode="json") for r in records_from_frames(tables, shops)]))
    pd.testing.assert_frame_equal(_transform(pipe, records), batch.loc[shops], check_exact=True)
    for record in records[:4]:  # one shop alone, as a single-record request
        shop = record["shop_id"]
        pd.testing.assert_frame_equal(
            _transform(pipe, [record]), batch.loc[[shop]], check_exact=True, obj=f"shop {shop}"
        )
