"""Batch scoring ("the sweep"): score every shop of a marketplace with the champion model and
route the suspected ones into the sanction workflow.

The shops are scored in chunks of ``chunk_shops`` through the model's own fitted feature pipeline
(the one code path of training and online scoring); each chunk's scores are appended to a Parquet
file before the next chunk starts, so memory is bounded by the chunk and a killed sweep loses at
most the chunk in flight. Routing is idempotent (one open case per shop), so a rerun after a crash
opens no case twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from dajia.errors import DajiaError
from dajia.settings import Settings
from marketplace.tables import Marketplace
from models.model import ShopRiskModel

SCORES_SCHEMA = pa.schema(
    [
        ("shop_id", pa.string()),
        ("score", pa.float64()),
        ("tier", pa.string()),
        ("reasons", pa.list_(pa.string())),
        ("model_name", pa.string()),
        ("model_version", pa.string()),
        ("suspected_threshold", pa.float64()),
        ("as_of", pa.timestamp("us")),
    ]
)


@dataclass(frozen=True)
class ChampionModel:
    name: str
    version: str
    model: ShopRiskModel


def load_champion(settings: Settings, alias: str = "champion") -> ChampionModel:
    """The registered model behind ``alias`` (with its version), from the configured registry."""
    from training.promotion import load_version
    from training.tracking import current_alias_version, setup_mlflow

    client = setup_mlflow(settings)
    version = current_alias_version(client, settings.model_name, alias)
    if version is None:
        raise DajiaError(
            f"no model '{settings.model_name}' with alias '{alias}' in {settings.resolved_tracking_uri}; "
            "train one first (dajia train --data DIR)"
        )
    model = load_version(settings, version)
    model.set_threads(settings.lightgbm_threads)
    return ChampionModel(settings.model_name, version, model)


def _chunks(ids: list[str], size: int) -> Iterator[list[str]]:
    for i in range(0, len(ids), size):
        yield ids[i : i + size]


def scores_frame(scored: pd.DataFrame, champion: ChampionModel, when: pd.Timestamp) -> pd.DataFrame:
    """``score_marketplace``'s output as rows of the scores file (``SCORES_SCHEMA``)."""
    return pd.DataFrame(
        {
            "shop_id": scored.index.astype(str),
            "score": scored["score"].to_numpy(dtype="float64"),
            "tier": scored["tier"].astype(str).to_numpy(),
            "reasons": [list(r) for r in scored["reasons"]],
            "model_name": champion.name,
            "model_version": champion.version,
            "suspected_threshold": float(champion.model.thresholds.suspected),
            "as_of": when.as_unit("us"),
        }
    )


def score_shops(
    mp: Marketplace,
    champion: ChampionModel,
    out: Path,
    *,
    as_of: pd.Timestamp | None = None,
    chunk_shops: int = 50_000,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Score every shop of ``mp`` as of ``as_of`` (default: the whole snapshot, ``mp.scoring_time()``,
    as the API does for shops scored by id) into the Parquet file ``out``."""
    when = pd.Timestamp(as_of) if as_of is not None else mp.scoring_time()
    ids = mp.shops["shop_id"].astype(str).tolist()
    tiers: dict[str, int] = {}
    t0 = time.perf_counter()
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_suffix(".partial")
    done = 0
    with pq.ParquetWriter(partial, SCORES_SCHEMA, compression="zstd") as writer:
        for chunk in _chunks(ids, chunk_shops):
            frame = scores_frame(champion.model.score_marketplace(mp, when, shop_ids=chunk), champion, when)
            writer.write_table(pa.Table.from_pandas(frame, schema=SCORES_SCHEMA, preserve_index=False))
            for tier, n in frame["tier"].value_counts().items():
                tiers[str(tier)] = tiers.get(str(tier), 0) + int(n)
            done += len(chunk)
            if progress is not None:
                progress(done, len(ids))
    partial.replace(out)
    return {
        "scores": str(out),
        "shops": len(ids),
        "tiers": tiers,
        "as_of": when.isoformat(),
        "model": champion.name,
        "version": champion.version,
        "seconds": round(time.perf_counter() - t0, 2),
    }


def route_scores(settings: Settings, scores: Path, *, tier: str = "suspected") -> dict[str, Any]:
    """Open (or rescore) a case for every shop in ``scores`` at or above ``tier``; idempotent."""
    from sqlalchemy.orm import Session

    from sanctions.cli_support import read_scores
    from sanctions.routing import route_scored
    from sanctions.store import open_store

    engine = open_store(settings.resolved_database_url)
    try:
        with Session(engine, expire_on_commit=False) as session:
            report = route_scored(session, read_scores(scores), tier=tier)
    finally:
        engine.dispose()
    return report.model_dump()
