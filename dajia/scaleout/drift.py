"""A sweep's drift, logged: every sweep measures the population it scored against the champion's
training population and appends the figures to the store's drift history (the monitor's trend).

Partition by partition, like the sweep: the features of a sample of the shops (all of them up to
``max_shops``) are built by the model's own pipeline twice, as of the sweep and as of the model's last
training as-of date, for the shops of the sample open then. A partition holds the shops whose id hashes
to it, a random sample of the marketplace, so partitions are read only until ``max_shops`` are taken
(evenly spread within each): one partition up to 50,000 shops a partition, whatever the marketplace's
size. Runs on the client, after the scores are written (on a cluster too).
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import pandas as pd

from core.settings import Settings
from dajia.scaleout.partition import PartitionedMarketplace, part_name
from dajia.sweep import ChampionModel

#: drift is measured on at most this many shops (evenly spread over the partitions)
DRIFT_SAMPLE = 20_000


def first_opened(parts: PartitionedMarketplace) -> pd.Timestamp:
    """When the marketplace's first shop opened (over every partition's own shops)."""
    loc = parts.location
    firsts = [
        pd.Timestamp(
            loc.child(part_name(i)).read_parquet("shops.parquet", columns=["opened_at"]).column(0).to_pandas().min()
        )
        for i in range(parts.n_partitions)
    ]
    return min(firsts)


def log_sweep_drift(
    settings: Settings,
    parts: PartitionedMarketplace,
    champion: ChampionModel,
    when: pd.Timestamp,
    *,
    mode: str,
    max_shops: int = DRIFT_SAMPLE,
) -> dict[str, Any]:
    """Measure the sweep's drift and append it to the drift history of the store; the figures, and
    whether they were appended (``logged``: False when this sweep, same model and as-of, was logged)."""
    from dajia.db import open_store
    from serving.console.drift_history import log_drift, sweep_drift
    from serving.console.monitor import population, reference_as_of

    t0 = time.perf_counter()
    model = champion.model
    if not model.info.get("plan") or getattr(model, "pipeline", None) is None:
        return {"logged": False, "skipped": "the model records no training plan or pipeline: no reference population"}
    ref_as_of = reference_as_of(model, first_opened(parts), parts.snapshot_at)
    now_rows, ref_rows = [], []
    left = max(1, max_shops)
    for i in range(parts.n_partitions):  # a partition is a hash sample of the shops: stop once enough
        if left <= 0:
            break
        mp, ids = parts.load(i)
        sample = ids[:: max(1, math.ceil(len(ids) / left))]
        left -= len(sample)
        now_rows.append(population(model, mp, when, among=sample))
        ref_rows.append(population(model, mp, ref_as_of, among=sample))
        del mp
    drift = sweep_drift(
        model,
        np.vstack(ref_rows),
        np.vstack(now_rows),
        model_name=champion.name,
        model_version=champion.version,
        as_of=when,
        reference_as_of=ref_as_of,
        mode=mode,
        shops=parts.shops,
    )
    engine = open_store(settings.resolved_database_url)
    try:
        logged = log_drift(engine, drift)
    finally:
        engine.dispose()
    return {**drift.to_dict(), "logged": logged, "seconds": round(time.perf_counter() - t0, 2)}
