"""Batch scoring partition by partition: streamed on one machine, or fanned out on a Dask cluster.

Both paths split the marketplace by shop first (:func:`~dajia.scaleout.partition.partition_marketplace`,
one streamed pass), then score one partition at a time through the champion's fitted pipeline
(``ShopRiskModel.score_marketplace``, the one feature code path). Peak memory is one partition plus the
model, and a partition holds about ``shops_per_partition`` shops whatever the marketplace's size.

- **local**: partitions are loaded, scored, appended to the one scores file, imported into the
  sanction store and routed, then released.
- **cluster**: workers load and score partitions and each writes its own ``part-NNNNN.parquet`` into a
  staging folder beside ``out``; when all are in, the ``_SUCCESS`` marker is written and the folder is
  committed as ``out`` (``dajia.scaleout.outputs``). Only then does routing run, as one idempotent step
  over the committed scores (:func:`route_committed`: import each partition's shops, route its scores;
  a database transaction, so on the client, through ``sanctions.routing.route_scored`` in chunks).

A failed run (a worker killed, a task's error) leaves the previous output as it was and no readable
partial one; a cluster failure is one line naming the step and the worker's error.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from core.settings import Settings
from dajia.scaleout.cluster import cluster_step
from dajia.scaleout.drift import log_sweep_drift
from dajia.scaleout.outputs import require_complete, staged_file, staged_folder
from dajia.scaleout.partition import (
    DEFAULT_SHOPS_PER_PARTITION,
    PartitionedMarketplace,
    part_name,
    partition_marketplace,
    shared_partitions,
)
from dajia.scaleout.storage import Location
from dajia.sweep import SCORES_SCHEMA, ChampionModel, scores_frame
from features.online_store import OnlineStore, materialise
from marketplace.tables import Marketplace, scoring_time
from models.model import feature_json
from models.thresholds import EXPLAINED_TIERS

if TYPE_CHECKING:
    from distributed import Client
    from sqlalchemy import Engine


def score_loaded(
    mp: Marketplace,
    ids: pd.Index,
    champion: ChampionModel,
    when: pd.Timestamp,
    chunk_shops: int,
    store: OnlineStore | None = None,
) -> pd.DataFrame:
    """Scores of the shops ``ids`` of a loaded partition, in chunks of ``chunk_shops`` (scores-file rows,
    with the ``features`` JSON of the explained rows: a case's evidence snapshot keeps it). With ``store``,
    each chunk's feature rows (the very rows scored) and histories are materialised there."""
    model = champion.model
    frames = []
    for lo in range(0, len(ids), chunk_shops):
        part = ids[lo : lo + chunk_shops].tolist()
        if model.pipeline is None:
            frames.append(scores_frame(model.score_marketplace(mp, when, shop_ids=part, features=True), champion, when))
            continue
        X = model.pipeline.transform(mp, when, shop_ids=part)
        scored = model.score_and_explain(X[model.feature_names])
        scored["features"] = feature_json(X[model.feature_names], scored["tier"].isin(EXPLAINED_TIERS).to_numpy())
        frames.append(scores_frame(scored, champion, when))
        if store is not None:
            materialise(store, model.pipeline, mp, when, part, features=X)
    if not frames:
        return SCORES_SCHEMA.empty_table().to_pandas()
    return pd.concat(frames, ignore_index=True)


def _arrow(frame: pd.DataFrame) -> pa.Table:
    return pa.Table.from_pandas(frame, schema=SCORES_SCHEMA, preserve_index=False)


def score_partition_task(
    parts_url: str, i: int, champion: ChampionModel, when: pd.Timestamp, out_url: str, chunk_shops: int
) -> dict[str, Any]:
    """Worker task: load partition ``i``, score it, write ``<out>/part-i.parquet``; returns counts."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=champion.model.num_threads):
        parts = PartitionedMarketplace.open(parts_url)
        mp, ids = parts.load(i)
        frame = score_loaded(mp, ids, champion, when, chunk_shops)
    out = Location.of(out_url)
    with out.writer(SCORES_SCHEMA, f"{part_name(i)}.parquet") as w:
        w.write_table(_arrow(frame))
    return {"partition": i, "shops": len(frame), "tiers": _tiers(frame)}


def _tiers(frame: pd.DataFrame) -> dict[str, int]:
    return {str(k): int(v) for k, v in frame["tier"].value_counts().items()}


def _add(total: dict[str, Any], part: dict[str, Any]) -> None:
    for k, v in part.items():
        if isinstance(v, bool):
            continue
        if isinstance(v, int):
            total[k] = total.get(k, 0) + v
        elif isinstance(v, list):
            total.setdefault(k, []).extend(v)
        elif isinstance(v, dict):
            _add(total.setdefault(k, {}), v)


def import_and_route(engine: Engine, own: Marketplace, frame: pd.DataFrame, tier: str = "suspected") -> dict[str, Any]:
    """Import one partition's shops (their listings and orders) into the store, then route its scores."""
    from sqlalchemy.orm import Session

    from sanctions.routing import route_scored
    from sanctions.scored import scored_from_frame
    from sanctions.storefront import import_marketplace

    imported = import_marketplace(engine, own).model_dump(exclude={"new_shop_ids"})
    with Session(engine, expire_on_commit=False) as session:
        routed = route_scored(session, scored_from_frame(frame), tier=tier).model_dump()
    return {"imported": imported, "routed": routed}


def run_sweep(
    settings: Settings,
    data: str,
    out: str,
    champion: ChampionModel,
    *,
    as_of: pd.Timestamp | None = None,
    route: bool = True,
    chunk_shops: int = 50_000,
    work: str | None = None,
    shops_per_partition: int = DEFAULT_SHOPS_PER_PARTITION,
    partitions: str | None = None,
    client: Client | None = None,
    progress: Callable[[int, int], None] | None = None,
    online: bool = True,
    snapshot_at: object = None,
) -> dict[str, Any]:
    """Score every shop of the marketplace at ``data`` (any fsspec path) into ``out``; route if asked.

    Without ``client``: streamed locally into the single Parquet file ``out``, and (``online``) each
    shop's feature row and history materialised into the online store (``settings.resolved_online_store``)
    for scoring by id. With a Dask ``client``: ``out`` becomes a folder of one Parquet file per partition,
    written by the workers (the online store is not filled: materialise with a local sweep). The
    partitioned copy is ``work`` when given, else the marketplace's shared one (under ``partitions`` or
    ``<data>/_partitions``, :func:`~dajia.scaleout.partition.shared_partitions`)."""
    t0 = time.perf_counter()
    parts = (
        partition_marketplace(
            data, work, shops_per_partition=shops_per_partition, client=client, snapshot_at=snapshot_at
        )
        if work is not None
        else shared_partitions(
            data, partitions, shops_per_partition=shops_per_partition, client=client, snapshot_at=snapshot_at
        )
    )
    t_part = time.perf_counter() - t0
    when = pd.Timestamp(as_of) if as_of is not None else scoring_time(parts.snapshot_at)
    engine = None
    if route:
        from dajia.db import open_store

        engine = open_store(settings.resolved_database_url)
    totals: dict[str, Any] = {"tiers": {}}
    if route:
        totals["imported"], totals["routed"] = {}, {}
    store = None
    if online and client is None and champion.model.pipeline is not None:
        from features.online_store import open_online_store, pipeline_digest

        store = open_online_store(settings.resolved_online_store)
        totals["online"] = {"store": str(store.path), "pipeline": pipeline_digest(champion.model.pipeline)}
    try:
        if client is None:
            _local(parts, champion, when, out, chunk_shops, engine, totals, progress, store)
            if store is not None:
                store.set_meta(f"materialised:{totals['online']['pipeline']}", parts.fingerprint)
                totals["online"]["rows"] = parts.shops
        else:
            _cluster(client, parts, champion, when, out, chunk_shops, engine, totals, progress)
    finally:
        if engine is not None:
            engine.dispose()
        if store is not None:
            store.close()
    seconds = time.perf_counter() - t0
    drift = log_sweep_drift(settings, parts, champion, when, mode="local" if client is None else "cluster")
    return {
        "drift": drift,
        "scores": str(out),
        "shops": parts.shops,
        **totals,
        "as_of": when.isoformat(),
        "model": champion.name,
        "version": champion.version,
        "partitions": parts.n_partitions,
        "mode": "local" if client is None else "cluster",
        "partition_seconds": round(t_part, 2),
        "seconds": round(seconds, 2),
        "shops_per_second": round(parts.shops / seconds, 1) if seconds > 0 else None,
    }


def _local(
    parts: PartitionedMarketplace,
    champion: ChampionModel,
    when: pd.Timestamp,
    out: str,
    chunk_shops: int,
    engine: Engine | None,
    totals: dict[str, Any],
    progress: Callable[[int, int], None] | None,
    store: OnlineStore | None = None,
) -> None:
    from dataclasses import replace

    done = 0
    with (
        staged_file(out) as (fs, tmp),
        fs.open(tmp, "wb") as fh,
        pq.ParquetWriter(fh, SCORES_SCHEMA, compression="zstd") as w,
    ):
        for i in range(parts.n_partitions):
            mp, ids = parts.load(i)
            frame = score_loaded(mp, ids, champion, when, chunk_shops, store)
            w.write_table(_arrow(frame))
            _add(totals["tiers"], _tiers(frame))
            if engine is not None:
                own = replace(mp, shops=mp.shops.iloc[: len(ids)].reset_index(drop=True))
                _add(totals, import_and_route(engine, own, frame))
            done += len(ids)
            del mp, frame
            if progress is not None:
                progress(done, parts.shops)


def _cluster(
    client: Client,
    parts: PartitionedMarketplace,
    champion: ChampionModel,
    when: pd.Timestamp,
    out: str,
    chunk_shops: int,
    engine: Engine | None,
    totals: dict[str, Any],
    progress: Callable[[int, int], None] | None,
) -> None:
    from distributed import as_completed

    model = client.scatter(champion, broadcast=True)
    done = 0
    with cluster_step("sweep scoring (score_partition_task, one per partition)"), staged_folder(out) as staging:
        futures = [
            client.submit(score_partition_task, parts.url, i, model, when, staging.url, chunk_shops, pure=False)
            for i in range(parts.n_partitions)
        ]
        try:
            for fut in as_completed(futures, loop=client.loop):
                result = fut.result()
                fut.release()
                _add(totals["tiers"], result["tiers"])
                done += int(result["shops"])
                if progress is not None:
                    progress(done, parts.shops)
        except BaseException:
            client.cancel(futures)
            raise
    # every score exists and the output is committed: routing is one step over it (idempotent)
    if engine is not None:
        _add(totals, route_committed(engine, parts, out))


#: what the sanction store's import reads of a partition (``sanctions.storefront.import_marketplace``)
IMPORT_TABLES = ("shops", "listings", "listing_edits", "orders")


def route_committed(engine: Engine, parts: PartitionedMarketplace, scores: str) -> dict[str, Any]:
    """Import every partition's own shops and route their scores, from a committed cluster sweep output.

    Runs after all scores exist, never on a partial output (the ``_SUCCESS`` marker is checked first).
    Idempotent: the import adds only what the store lacks and routing leaves a case with the same score
    unchanged, so after a failure in this step the same call finishes the job."""
    loc = require_complete(scores)
    totals: dict[str, Any] = {}
    for i in range(parts.n_partitions):
        frame = loc.read_parquet(f"{part_name(i)}.parquet").to_pandas()
        _add(totals, import_and_route(engine, parts.load_own(i, IMPORT_TABLES), frame))
    return totals
