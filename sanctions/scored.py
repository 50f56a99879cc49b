"""What the scorer hands to the sanction workflow: one scored shop."""

from __future__ import annotations

from dataclasses import dataclass, field

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

    def __post_init__(self) -> None:
        if self.tier not in TIERS:
            from dajia.errors import DajiaError

            raise DajiaError(f"shop '{self.shop_id}': tier must be one of {', '.join(TIERS)}, got {self.tier!r}")

    def at_least(self, tier: str) -> bool:
        """True when this shop's tier is ``tier`` or riskier."""
        return TIERS.index(self.tier) >= TIERS.index(tier)
