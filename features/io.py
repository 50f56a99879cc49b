"""Reading only the columns the feature builders use, for large batch jobs.

``marketplace.loader.load_marketplace`` validates every column of every table (the right thing for
untrusted input); at a million shops it holds the whole marketplace (ids, names, contacts) in memory.
A feature job over data that was already validated needs a fraction of it: ``read_feature_tables``
reads just the columns named in the builders' ``needs`` (plus ``shop_id``), with the contract's
loaded dtypes (Parquet written by ``marketplace.io`` carries them), and nothing else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from features.history import SellerHistoryFeatures
from features.linkage import LinkedShopFeatures
from features.price import BrandPriceFeatures
from features.shop_text import ShopTextFeatures
from marketplace.schema import TABLES
from marketplace.tables import Marketplace

BUILDERS = (SellerHistoryFeatures, ShopTextFeatures, BrandPriceFeatures, LinkedShopFeatures)


def feature_columns() -> dict[str, list[str]]:
    """Table -> the columns any builder reads, in contract order."""
    wanted: dict[str, set[str]] = {}
    for builder in BUILDERS:
        for table, columns in builder.needs.items():
            wanted.setdefault(table, set()).update(columns)
    return {t.name: [c for c in t.column_names if c in wanted.get(t.name, set())] for t in TABLES}


def read_feature_tables(folder: Path | str, snapshot_at: object = None) -> Marketplace:
    """A ``Marketplace`` holding only the needed columns of each table (not validated: use it on data
    that ``load_marketplace`` or ``dajia validate`` already accepted). The snapshot time as the loader
    takes it: ``snapshot_at`` when given, else the manifest's (an error when there is neither)."""
    from marketplace.loader import read_snapshot_at
    from marketplace.validate import check_snapshot

    folder = Path(folder)
    snapshot = check_snapshot(read_snapshot_at(folder, snapshot_at))
    tables: dict[str, Any] = {}
    for name, columns in feature_columns().items():
        path = folder / f"{name}.parquet"
        if not path.exists():
            from features.pipeline import empty_frame

            tables[name] = empty_frame(name)[columns]
            continue
        tables[name] = pd.read_parquet(path, columns=columns)
    return Marketplace(**tables, snapshot_at=snapshot)
