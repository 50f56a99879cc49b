"""``dajia features``: the feature table computed per shop partition, locally or on a Dask cluster.

Locally (:func:`stream_features`) memory stays one partition's whatever the marketplace's size: the
marketplace is split by shop once (streamed), the pipeline is fitted without loading it whole
(:func:`fit_streamed`: population counts summed partition by partition, the text model and the linkage
index from the labelled and verdict shops only, read with filters) and each partition is transformed in
turn. On a cluster (:func:`cluster_features`) the fitted pipeline (from ``--model``, or fitted on the
client) is sent to every worker once; each worker loads its partition and runs the pipeline's own
``transform`` for the partition's shops. Either way the rows are written into the one output file as
they come (one partition in memory at a time), under a temporary name renamed into place when the last
row is in: a failed run leaves the previous file whole. Rows are grouped by partition, not in the shops
table's order.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from dajia.scaleout.cluster import cluster_step
from dajia.scaleout.outputs import staged_file
from dajia.scaleout.partition import PartitionedMarketplace
from features.base import fit_cutoff
from features.history import PopulationCounts, population_counts
from training.examples import labels_before

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
    frames = (_release(fut) for fut in as_completed(futures, loop=client.loop))
    try:
        with cluster_step("features (features_task, one per partition)"):
            return write_feature_rows(frames, pipeline, out)
    except BaseException:
        client.cancel(futures)
        raise


def _release(fut: Any) -> pd.DataFrame:
    X: pd.DataFrame = fut.result()
    fut.release()
    return X


def write_feature_rows(frames: Iterable[pd.DataFrame], pipeline: Any, out: str) -> int:
    """Write ``shop_id`` + features from ``frames`` (one partition each) into the Parquet file ``out``
    (any fsspec path): under a temporary name, committed whole after the last row
    (:func:`dajia.scaleout.outputs.staged_file`); returns the rows."""
    names = ["shop_id", *[str(c) for c in pipeline.get_feature_names_out()]]
    schema = pa.schema([("shop_id", pa.string()), *[(n, pa.float64()) for n in names[1:]]])
    rows = 0
    with (
        staged_file(out) as (fs, tmp),
        fs.open(tmp, "wb") as fh,
        pq.ParquetWriter(fh, schema, compression="zstd") as w,
    ):
        for X in frames:
            frame = X.reset_index()
            frame["shop_id"] = frame["shop_id"].astype(str)
            w.write_table(pa.Table.from_pandas(frame[names], schema=schema, preserve_index=False))
            rows += len(frame)
    return rows


def counts_task(parts_url: str, i: int, cutoff: pd.Timestamp) -> PopulationCounts:
    """Task: the population counts of partition ``i`` (its own shops' events before ``cutoff``)."""
    mp, _ = PartitionedMarketplace.open(parts_url).load(i)
    return population_counts(mp, cutoff)


def fit_streamed(
    parts: PartitionedMarketplace, as_of: pd.Timestamp, no_labels: bool = False, client: Client | None = None
) -> tuple[Any, pd.DataFrame]:
    """The pipeline ``ShopFeaturePipeline().fit(whole marketplace, verdicts before as_of)`` would give,
    without the whole marketplace in memory; returns (pipeline, examples).

    What fit learns, and from what: the history builder's population rates are ratios of counts, summed
    over the partitions (one at a time here, or on the cluster's workers with ``client``:
    :func:`features.history.population_counts`); the text model, the brand table, the adverse-linkage
    index and the reason percentiles read only the labelled shops, the verdict shops and the global
    tables, which :meth:`PartitionedMarketplace.load_shops` reads with filters. Equal to the in-memory
    fit (tested)."""
    from features.pipeline import ShopFeaturePipeline

    globals_only = parts.load_shops([])
    verdicts = globals_only.verdicts
    examples = labels_before(verdicts if not no_labels else verdicts[:0], as_of)
    cutoff = fit_cutoff(globals_only, examples)
    del globals_only
    if client is not None:
        futures = [client.submit(counts_task, parts.url, i, cutoff, pure=False) for i in range(parts.n_partitions)]
        partial = client.gather(futures)
    else:
        partial = [counts_task(parts.url, i, cutoff) for i in range(parts.n_partitions)]
    counts = sum(partial, PopulationCounts())
    labelled = parts.load_shops(examples["shop_id"].astype(str).unique())
    pipeline = ShopFeaturePipeline().fit(labelled, examples, population=counts)
    return pipeline, examples


def stream_features(
    parts: PartitionedMarketplace, pipeline: Any, as_of: pd.Timestamp, out: str, *, oof: bool = False
) -> int:
    """Local ``dajia features``: each partition loaded, transformed and written in turn; returns the rows."""

    def frames() -> Iterable[pd.DataFrame]:
        for i in range(parts.n_partitions):
            yield features_task(parts.url, i, pipeline, as_of, oof)

    return write_feature_rows(frames(), pipeline, out)
