"""Batch scoring ("the sweep"): the champion model, the scores file's schema and rows, and routing a
scores file into the sanction workflow.

The sweep itself (streamed partition by partition locally, or on a Dask cluster) is
``dajia.scaleout.sweep.run_sweep``; ``dajia sweep`` and ``dajia crackdown`` both use it. Routing is
idempotent (one open case per shop), so a rerun after a crash opens no case twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from core.errors import DajiaError
from core.settings import Settings
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
        #: JSON {feature: value} of the shops the model explains (watch, suspected): what the score was
        #: computed from, kept in the evidence snapshot of a case routing opens; null for other shops
        ("features", pa.string()),
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
            "features": scored["features"].to_numpy() if "features" in scored.columns else None,
        }
    )


def route_scores(
    settings: Settings, scores: Path, *, tier: str = "suspected", now: datetime | None = None
) -> dict[str, Any]:
    """Open (or rescore) a case for every shop in ``scores`` at or above ``tier``; idempotent. ``now``:
    the clock of the routing (default the wall clock; the crackdown passes its simulated one)."""
    from sqlalchemy.orm import Session

    from dajia.cli_support import read_scores
    from dajia.db import open_store
    from sanctions.routing import route_scored

    engine = open_store(settings.resolved_database_url)
    try:
        with Session(engine, expire_on_commit=False) as session:
            report = route_scored(session, read_scores(scores), tier=tier, now=now)
    finally:
        engine.dispose()
    return report.model_dump()
