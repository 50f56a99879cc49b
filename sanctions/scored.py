"""What the scorer hands to the sanction workflow: one scored shop."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from core.errors import DajiaError

#: risk tiers, lowest to highest
TIERS: tuple[str, ...] = ("low", "watch", "suspected")


@dataclass(frozen=True)
class ScoredShop:
    """A shop's calibrated score, its tier and the model and threshold behind them."""

    shop_id: str
    score: float
    tier: str
    model_name: str
    model_version: str
    reasons: list[str] = field(default_factory=list)
    suspected_threshold: float = 0.5
    #: the feature values behind the score, when the scorer hands them over (kept in the evidence snapshot)
    features: dict[str, float | None] | None = None
    #: where the scored data came from: ``sweep`` (a scores file), ``marketplace`` (the scoring API by
    #: id, or records of a shop the marketplace knows, rescored on its data), ``inline`` (a caller's records)
    source: str = "sweep"

    def __post_init__(self) -> None:
        if self.tier not in TIERS:
            raise DajiaError(f"shop '{self.shop_id}': tier must be one of {', '.join(TIERS)}, got {self.tier!r}")

    def at_least(self, tier: str) -> bool:
        """True when this shop's tier is ``tier`` or riskier."""
        return TIERS.index(self.tier) >= TIERS.index(tier)


def scored_from_frame(frame: Any) -> Iterator[ScoredShop]:
    """Rows of a scores frame (``dajia.sweep.SCORES_SCHEMA`` columns; ``reasons`` optional, a list per
    row or ``' | '``-joined text; ``features`` optional, JSON ``{name: value}`` per row or null) as
    ``ScoredShop``, the shape ``route_scored`` takes."""
    cols = [frame[c].to_numpy() for c in ("shop_id", "tier", "model_name", "model_version")]
    scores = frame["score"].to_numpy(dtype="float64")
    thresholds = frame["suspected_threshold"].to_numpy(dtype="float64")
    reasons = frame["reasons"].to_numpy() if "reasons" in frame.columns else None
    features = frame["features"].to_numpy() if "features" in frame.columns else None
    for k in range(len(frame)):
        yield ScoredShop(
            shop_id=str(cols[0][k]),
            score=float(scores[k]),
            tier=str(cols[1][k]),
            model_name=str(cols[2][k]),
            model_version=str(cols[3][k]),
            suspected_threshold=float(thresholds[k]),
            reasons=_reasons(None if reasons is None else reasons[k]),
            features=_features(None if features is None else features[k]),
        )


def _reasons(raw: Any) -> list[str]:
    if raw is None or (isinstance(raw, float) and raw != raw):
        return []
    if isinstance(raw, str):
        return [r.strip() for r in raw.split(" | ") if r.strip()]
    return [str(r) for r in raw]


def _features(raw: Any) -> dict[str, float | None] | None:
    """A scores row's feature values (JSON text or a mapping; NaN kept as None), None when absent."""
    if raw is None or (isinstance(raw, float) and raw != raw):
        return None
    data = json.loads(raw) if isinstance(raw, str) else dict(raw)
    if not isinstance(data, dict):
        raise DajiaError(f"scores row features must be a JSON object, got {type(data).__name__}")
    return {str(k): (None if v is None or v != v else float(v)) for k, v in data.items()}
