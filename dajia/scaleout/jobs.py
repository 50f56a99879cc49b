"""The entry points the CLI commands delegate to when a scheduler address is given (or, for the sweep,
always: the local sweep is the streamed partition-by-partition one)."""

from __future__ import annotations

import time
from typing import Any

import pandas as pd

from core.settings import Settings
from dajia.scaleout.cluster import connect, scheduler_address


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
) -> dict[str, Any]:
    """``dajia features``, streamed partition by partition: on the cluster at ``address``, else locally.

    The marketplace is split by shop first (reused when already split); without a pipeline one is
    fitted as the in-memory command would (verdicts strictly before ``as_of`` as labels, out-of-fold
    rows) but streamed (:func:`~dajia.scaleout.features.fit_streamed`); then each partition is transformed."""
    from dajia.scaleout.features import cluster_features, fit_streamed, stream_features
    from dajia.scaleout.partition import partition_marketplace

    parts = partition_marketplace(data, work or f"{out.rstrip('/')}.partitions", snapshot_at=snapshot_at)
    text = "from --model"
    oof = False

    def fit(client: Any = None) -> Any:
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
        pipeline = pipeline if pipeline is not None else fit()
        rows = stream_features(parts, pipeline, as_of, out, oof=oof)
    else:
        with connect(address) as client:
            pipeline = pipeline if pipeline is not None else fit(client)
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
) -> dict[str, Any]:
    """``dajia sweep``: streamed locally, or on the cluster when a scheduler address is known."""
    from dajia.scaleout.sweep import run_sweep
    from dajia.sweep import load_champion

    champion = load_champion(settings, alias)
    address = scheduler_address(scheduler, settings)
    if address is None:
        return run_sweep(
            settings, data, out, champion, as_of=as_of, route=route, chunk_shops=chunk_shops, work=work,
            snapshot_at=snapshot_at,
        )  # fmt: skip
    with connect(address) as client:
        result = run_sweep(
            settings, data, out, champion, as_of=as_of, route=route, chunk_shops=chunk_shops, work=work, client=client,
            snapshot_at=snapshot_at,
        )  # fmt: skip
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
) -> dict[str, Any]:
    """``dajia train --data DIR`` on the cluster (see :mod:`dajia.scaleout.training`)."""
    from dajia.scaleout.training import run_marketplace_on_cluster
    from training.examples import ExamplePlan

    t0 = time.perf_counter()
    plan = ExamplePlan(seed=seed, population_sample=population_sample)
    with connect(address) as client:
        result = run_marketplace_on_cluster(
            settings, client, data, seed=seed, capacity_per_day=capacity_per_day, register=register, plan=plan,
            snapshot_at=snapshot_at,
        )  # fmt: skip
    return {**result, "scheduler": address, "seconds": round(time.perf_counter() - t0, 2)}
