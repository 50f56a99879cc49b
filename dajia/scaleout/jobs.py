"""The entry points the CLI commands delegate to when a scheduler address is given (or, for the sweep,
always: the local sweep is the streamed partition-by-partition one)."""

from __future__ import annotations

import time
from typing import Any

import pandas as pd

from core.settings import Settings
from dajia.scaleout.cluster import connect, scheduler_address
from dajia.scaleout.partition import DEFAULT_SHOPS_PER_PARTITION


def run_features(
    data: str,
    as_of: pd.Timestamp,
    out: str,
    *,
    address: str | None = None,
    pipeline: Any | None = None,
    no_labels: bool = False,
    work: str | None = None,
    snapshot_at: object = None,
    shops_per_partition: int = DEFAULT_SHOPS_PER_PARTITION,
    partitions: str | None = None,
) -> dict[str, Any]:
    """``dajia features``, streamed partition by partition: on the cluster at ``address``, else locally.

    The marketplace is split by shop first (the shared copy, reused when already split; on the workers
    with a cluster); without a pipeline one is fitted as the in-memory command would (verdicts strictly
    before ``as_of`` as labels, out-of-fold rows) but streamed (:func:`~dajia.scaleout.features.fit_streamed`);
    then each partition is transformed."""
    from dajia.scaleout.features import cluster_features, fit_streamed, stream_features
    from dajia.scaleout.partition import PartitionedMarketplace, partition_marketplace, shared_partitions

    text = "from --model"
    oof = False

    def split(client: Any = None) -> PartitionedMarketplace:
        if work is not None:
            return partition_marketplace(
                data, work, shops_per_partition=shops_per_partition, client=client, snapshot_at=snapshot_at
            )
        return shared_partitions(
            data, partitions, shops_per_partition=shops_per_partition, client=client, snapshot_at=snapshot_at
        )

    def fit(parts: PartitionedMarketplace, client: Any = None) -> Any:
        nonlocal text, oof
        fitted, examples = fit_streamed(parts, as_of, no_labels=no_labels, client=client)
        oof = True
        n_pos = int(examples["label"].sum())
        text = (
            f"fitted out of fold on {len(examples):,} verdicts before as-of ({n_pos:,} counterfeit)"
            if fitted.builders_[1].coef_ is not None
            else "none (no labels): text scores are NaN"
        )
        return fitted

    if address is None:
        parts = split()
        pipeline = pipeline if pipeline is not None else fit(parts)
        rows = stream_features(parts, pipeline, as_of, out, oof=oof)
    else:
        with connect(address) as client:
            parts = split(client)
            pipeline = pipeline if pipeline is not None else fit(parts, client)
            rows = cluster_features(client, parts, pipeline, as_of, out, oof=oof)
    summary = {
        "pipeline": pipeline,
        "out": out,
        "as_of": as_of.isoformat(),
        "shops": rows,
        "features": len(pipeline.get_feature_names_out()),
        "text_model": text,
        "partitions": parts.n_partitions,
    }
    return {**summary, "scheduler": address} if address is not None else summary


def sweep(
    settings: Settings,
    data: str,
    out: str,
    *,
    scheduler: str | None = None,
    as_of: pd.Timestamp | None = None,
    route: bool = True,
    alias: str = "champion",
    chunk_shops: int = 50_000,
    work: str | None = None,
    snapshot_at: object = None,
    shops_per_partition: int = DEFAULT_SHOPS_PER_PARTITION,
    partitions: str | None = None,
) -> dict[str, Any]:
    """``dajia sweep``: streamed locally, or on the cluster when a scheduler address is known."""
    from dajia.scaleout.sweep import run_sweep
    from dajia.sweep import load_champion

    champion = load_champion(settings, alias)
    address = scheduler_address(scheduler, settings)
    options: dict[str, Any] = {
        "as_of": as_of,
        "route": route,
        "chunk_shops": chunk_shops,
        "work": work,
        "shops_per_partition": shops_per_partition,
        "partitions": partitions,
    }
    if address is None:
        return run_sweep(settings, data, out, champion, snapshot_at=snapshot_at, **options)
    with connect(address) as client:
        result = run_sweep(settings, data, out, champion, client=client, snapshot_at=snapshot_at, **options)
    return {**result, "scheduler": address}


def train_on_cluster(
    settings: Settings,
    address: str,
    data: str,
    *,
    seed: int = 0,
    capacity_per_day: int = 50,
    population_sample: int | None = 50_000,
    register: bool = True,
    snapshot_at: object = None,
    shops_per_partition: int = DEFAULT_SHOPS_PER_PARTITION,
    partitions: str | None = None,
) -> dict[str, Any]:
    """``dajia train --data DIR`` on the cluster (see :mod:`dajia.scaleout.training`)."""
    from dajia.scaleout.training import run_marketplace_on_cluster
    from training.examples import ExamplePlan

    t0 = time.perf_counter()
    plan = ExamplePlan(seed=seed, population_sample=population_sample)
    with connect(address) as client:
        result = run_marketplace_on_cluster(
            settings,
            client,
            data,
            seed=seed,
            capacity_per_day=capacity_per_day,
            register=register,
            plan=plan,
            shops_per_partition=shops_per_partition,
            partitions=partitions,
            snapshot_at=snapshot_at,
        )
    return {**result, "scheduler": address, "seconds": round(time.perf_counter() - t0, 2)}


def train_from_url(
    settings: Settings,
    data: str,
    *,
    seed: int = 0,
    capacity_per_day: int = 50,
    plan: Any | None = None,
    register: bool = True,
    snapshot_at: object = None,
) -> dict[str, Any]:
    """``dajia train --data URL`` without a cluster: the marketplace read from any fsspec URL, then the
    local training run (``training.marketplace_run.train_marketplace``) and its one tracking path."""
    from dajia.scaleout.partition import source_fingerprint
    from dajia.scaleout.storage import Location, load_marketplace_any
    from marketplace.schema import GROUND_TRUTH_FILE
    from models.thresholds import ThresholdPolicy
    from training.booster import BoosterConfig
    from training.examples import ExamplePlan
    from training.marketplace_run import track_marketplace_run, train_marketplace

    src = Location.of(data)
    mp = load_marketplace_any(data, snapshot_at)
    ground_truth = src.read_parquet(GROUND_TRUTH_FILE).to_pandas() if src.exists(GROUND_TRUTH_FILE) else None
    plan = plan or ExamplePlan(seed=seed)
    config = BoosterConfig(seed=seed)
    policy = ThresholdPolicy(capacity_per_day=capacity_per_day, sweep_days=plan.step_days)
    run = train_marketplace(mp, plan, config, policy, ground_truth)
    result = track_marketplace_run(
        settings,
        mp,
        run,
        source=src.url,
        run_name=f"marketplace:{src.root.rsplit('/', 1)[-1]}",
        digest=source_fingerprint(src),
        params={"seed": seed, "capacity_per_day": capacity_per_day, "plan": plan, "config": config},
        register=register,
    )
    return {**result, "test_metrics": run.metrics["model"]}
