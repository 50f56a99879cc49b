"""``dajia features --scheduler ADDR``: the feature table computed per shop partition on the cluster.

The fitted pipeline (from ``--model``, or fitted on the client as the local command does) is sent to
every worker once; each worker loads its partition and runs the pipeline's own ``transform`` for the
partition's shops. The client writes the partitions' rows into the one output file as they arrive
(one partition in memory at a time). Rows are grouped by partition, not in the shops table's order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from dajia.scaleout.partition import PartitionedMarketplace
from dajia.scaleout.storage import Location

if TYPE_CHECKING:
    from distributed import Client


def features_task(parts_url: str, i: int, pipeline: Any, as_of: pd.Timestamp, oof: bool) -> pd.DataFrame:
    """Worker task: ``pipeline.transform`` of partition ``i``'s own shops."""
    mp, ids = PartitionedMarketplace.open(parts_url).load(i)
    X: pd.DataFrame = pipeline.transform(mp, as_of, shop_ids=ids, oof=oof)
    return X


def cluster_features(
    client: Client,
    parts: PartitionedMarketplace,
    pipeline: Any,
    as_of: pd.Timestamp,
    out: str,
    *,
    oof: bool = False,
) -> int:
    """Write ``shop_id`` + features of every shop to the Parquet file ``out``; returns the row count."""
    from distributed import as_completed

    pipe = client.scatter(pipeline, broadcast=True)
    futures = [
        client.submit(features_task, parts.url, i, pipe, as_of, oof, pure=False) for i in range(parts.n_partitions)
    ]
    target = Location.of(out)
    target.fs.makedirs(target.fs._parent(target.root), exist_ok=True)
    names = ["shop_id", *[str(c) for c in pipeline.get_feature_names_out()]]
    schema = pa.schema([("shop_id", pa.string()), *[(n, pa.float64()) for n in names[1:]]])
    rows = 0
    with target.fs.open(target.root, "wb") as fh, pq.ParquetWriter(fh, schema, compression="zstd") as w:
        for fut in as_completed(futures, loop=client.loop):
            X = fut.result()
            fut.release()
            frame = X.reset_index()
            frame["shop_id"] = frame["shop_id"].astype(str)
            w.write_table(pa.Table.from_pandas(frame[names], schema=schema, preserve_index=False))
            rows += len(frame)
    return rows
