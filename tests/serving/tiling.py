"""A large marketplace in seconds for memory tests: a generated one repeated ``k`` times with every id and
identifier suffixed per copy (so copies are distinct shops, not linked to one another)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from marketplace.schema import LINKAGE_FIELDS

_SUFFIXED = {"shopkeeper_id", "business_registration", "business_phone", "business_email", *LINKAGE_FIELDS}
_SKIP = {"ground_truth"}
_GLOBAL = {"brands"}


def _suffix(col: pa.ChunkedArray, tag: str) -> pa.ChunkedArray:
    return pc.if_else(pc.is_null(col), col, pc.binary_join_element_wise(col, pa.scalar(tag), ""))


def tile_marketplace(src: Path, dst: Path, k: int) -> int:
    """Write ``k`` suffixed copies of the marketplace ``src`` to ``dst``; returns the shop count."""
    dst.mkdir(parents=True, exist_ok=True)
    for f in src.glob("*.parquet"):
        name = f.stem
        if name in _SKIP:
            continue
        table = pq.read_table(f)
        if name in _GLOBAL:
            shutil.copy(f, dst / f.name)
            continue
        with pq.ParquetWriter(dst / f.name, table.schema) as w:
            for i in range(k):
                tag = f"x{i}"
                cols = []
                for field, col in zip(table.schema, table.columns, strict=True):
                    if pa.types.is_string(field.type) and (field.name.endswith("_id") or field.name in _SUFFIXED):
                        col = _suffix(col, tag).cast(field.type)
                    cols.append(col)
                w.write_table(pa.Table.from_arrays(cols, schema=table.schema))
    manifest = json.loads((src / "manifest.json").read_text())
    manifest.pop("counts", None)
    (dst / "manifest.json").write_text(json.dumps(manifest))
    return pq.read_metadata(dst / "shops.parquet").num_rows * 1
