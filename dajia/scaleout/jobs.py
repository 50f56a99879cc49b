"""The entry points the CLI commands delegate to when a scheduler address is given (or, for the sweep,
always: the local sweep is the streamed partition-by-partition one)."""

from __future__ import annotations

import time
from typing import Any

import pandas as pd

from core.settings import Settings
from dajia.scaleout.cluster import connect, scheduler_address


def features_on_cluster(
    address: str,
    data: str,
    as_of: pd.Timestamp,
    out: str,
    *,
    pipeline: Any | None = None,
    no_labels: bool = False,
    work: str | None = None,
) -> dict[str, Any]:
    """``dajia features`` on the cluster: fit on the client when no pipeline is given (as the local
    command does: verdicts strictly before ``as_of`` as labels, out-of-fold rows), transform per partition."""
    from dajia.scaleout.features import cluster_features
    from dajia.scaleout.partition import partition_marketplace

    text = "from --model"
    oof = False
    if pipeline is None:
        from dajia.scaleout.storage import load_marketplace_any
        from features.pipeline import ShopFeaturePipeline
        from training.examples import labels_before

        mp = load_marketplace_any(data)
        examples = labels_before(mp.verdicts if not no_labels else mp.verdicts[:0], as_of)
        pipeline = ShopFeaturePipeline().fit(mp, examples)
        del mp
        oof = True
        n_pos = int(examples["label"].sum())
        text = (
            f"fitted out of fold on {len(examples):,} verdicts before as-of ({n_pos:,} counterfeit)"
            if pipeline.builders_[1].coef_ is not None
            else "none (no labels): text scores are NaN"
        )
    parts = partition_marketplace(data, work or f"{out.rstrip('/')}.partitions")
    with connect(address) as client:
        rows = cluster_features(client, parts, pipeline, as_of, out, oof=oof)
    return {
        "pipeline": pipeline,
        "out": out,
        "as_of": as_of.isoformat(),
        "shops": rows,
        "features": len(pipeline.get_feature_names_out()),
        "text_model": text,
        "scheduler": address,
        "partitions": parts.n_partitions,
    }


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
) -> dict[str, Any]:
    """``dajia sweep``: streamed locally, or on the cluster when a scheduler address is known."""
    from dajia.scaleout.sweep import run_sweep
    from dajia.sweep import load_champion

    champion = load_champion(settings, alias)
    address = scheduler_address(scheduler, settings)
    if address is None:
        return run_sweep(settings, data, out, champion, as_of=as_of, route=route, chunk_shops=chunk_shops, work=work)
    with connect(address) as client:
        result = run_sweep(
            settings, data, out, champion, as_of=as_of, route=route, chunk_shops=chunk_shops, work=work, client=client
        )
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
) -> dict[str, Any]:
    """``dajia train --data DIR`` on the cluster (see :mod:`dajia.scaleout.training`)."""
    from dajia.scaleout.training import run_marketplace_on_cluster
    from training.examples import ExamplePlan

    t0 = time.perf_counter()
    plan = ExamplePlan(seed=seed, population_sample=population_sample)
    with connect(address) as client:
        result = run_marketplace_on_cluster(
            settings, client, data, seed=seed, capacity_per_day=capacity_per_day, register=register, plan=plan
        )
    return {**result, "scheduler": address, "seconds": round(time.perf_counter() - t0, 2)}
