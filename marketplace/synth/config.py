"""The generator's knobs: what a user may change, with defaults and validation."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from core.errors import DajiaError

DEFAULT_SNAPSHOT = "2026-06-30T00:00:00"
VOCABULARIES = ("default", "alt")
PRICE_REGIMES = ("default", "tight")
#: knobs the manifest lists only when they differ from the default (older manifests stay byte-identical)
STYLE_KNOBS = ("vocabulary", "price_regime", "camouflage_depth", "sideline_share", "lookalike_share")


class InvalidGeneratorConfig(DajiaError):
    """A generator knob is out of range; the message names the knob and the bad value."""


@dataclass(frozen=True)
class GeneratorConfig:
    """How a synthetic marketplace is made. Same config (shops and seed included) -> same bytes.

    Rates are shares in [0, 1]. ``label_coverage`` is the share of counterfeiters that ever get
    investigated; a verdict due after the snapshot is pending (absent from ``verdicts``, kept in the
    ground truth). ``crackdown_at`` defaults to 120 days before the snapshot.
    """

    shops: int = 10_000
    seed: int = 0
    counterfeit_rate: float = 0.08
    camouflage_share: float = 0.55
    label_coverage: float = 0.5
    label_delay_days: float = 35.0
    history_months: int = 24
    snapshot_at: str = DEFAULT_SNAPSHOT
    crackdown_at: str | None = None
    reregister_rate: float = 0.4
    honest_investigation_rate: float = 0.03
    orders_per_shop: float = 20.0
    listings_per_shop: float = 5.0
    chunk_shops: int = 50_000
    #: --- world style (docs/generator.md "Other worlds"); the defaults give the original marketplace ---
    #: "default" or "alt": another counterfeit vocabulary (blatant words, euphemisms, cover words, fake
    #: reviews) and other brand names
    vocabulary: str = "default"
    #: "default" or "tight": fakes priced nearer the real thing, honest look-alikes cheaper, wider product range
    price_regime: str = "default"
    #: 0..1: how far camouflaged counterfeiters' titles and descriptions move toward an honest shop's
    camouflage_depth: float = 0.0
    #: share of counterfeiters that are sideline sellers: an ordinary shop with a few fake premium items
    sideline_share: float = 0.0
    #: share of honest shops that look alike on price (discounters, second-hand, grey importers); 0.28 default
    lookalike_share: float = 0.28

    def __post_init__(self) -> None:
        def bad(knob: str, value: object, why: str) -> InvalidGeneratorConfig:
            return InvalidGeneratorConfig(f"generator knob '{knob}' = {value!r}: {why}")

        if not 1 <= self.shops <= 50_000_000:
            raise bad("shops", self.shops, "must be between 1 and 50,000,000")
        if not 0 <= self.seed < 2**63:
            raise bad("seed", self.seed, "must be a non-negative integer")
        for knob in (
            "counterfeit_rate",
            "camouflage_share",
            "label_coverage",
            "reregister_rate",
            "honest_investigation_rate",
            "camouflage_depth",
            "sideline_share",
        ):
            value = getattr(self, knob)
            if not 0.0 <= value <= 1.0:
                raise bad(knob, value, "must be a share between 0 and 1")
        if not 0.0 <= self.lookalike_share <= 0.9:
            raise bad("lookalike_share", self.lookalike_share, "must be a share between 0 and 0.9")
        if self.vocabulary not in VOCABULARIES:
            raise bad("vocabulary", self.vocabulary, f"must be one of {', '.join(VOCABULARIES)}")
        if self.price_regime not in PRICE_REGIMES:
            raise bad("price_regime", self.price_regime, f"must be one of {', '.join(PRICE_REGIMES)}")
        if not 14.0 <= self.label_delay_days <= 365.0:
            raise bad("label_delay_days", self.label_delay_days, "must be between 14 and 365 days")
        if not 2 <= self.history_months <= 120:
            raise bad("history_months", self.history_months, "must be between 2 and 120 months")
        if not 0.5 <= self.orders_per_shop <= 1000:
            raise bad("orders_per_shop", self.orders_per_shop, "must be between 0.5 and 1000")
        if not 1.0 <= self.listings_per_shop <= 200:
            raise bad("listings_per_shop", self.listings_per_shop, "must be between 1 and 200")
        if not 1_000 <= self.chunk_shops <= 1_000_000:
            raise bad("chunk_shops", self.chunk_shops, "must be between 1,000 and 1,000,000")
        snap = _parse_time("snapshot_at", self.snapshot_at)
        if snap != snap.floor("s"):
            raise bad("snapshot_at", self.snapshot_at, "must be a whole second")
        if self.crackdown_at is not None:
            crack = _parse_time("crackdown_at", self.crackdown_at)
            if not self.start < crack < snap:
                raise bad(
                    "crackdown_at",
                    self.crackdown_at,
                    f"must lie inside the history ({self.start.isoformat()} .. {snap.isoformat()})",
                )

    @property
    def snapshot(self) -> pd.Timestamp:
        return _parse_time("snapshot_at", self.snapshot_at)

    @property
    def start(self) -> pd.Timestamp:
        """First moment of the history (shops open from here on)."""
        return (self.snapshot - pd.Timedelta(days=round(self.history_months * 30.4375))).floor("s")

    @property
    def crackdown(self) -> pd.Timestamp:
        if self.crackdown_at is not None:
            return _parse_time("crackdown_at", self.crackdown_at).floor("s")
        return max(self.snapshot - pd.Timedelta(days=120), self.start + (self.snapshot - self.start) / 2).floor("s")

    def knobs(self) -> dict[str, Any]:
        """The knobs as written to ``manifest.json`` (crackdown resolved)."""
        doc = asdict(self)
        for knob in STYLE_KNOBS:
            if doc[knob] == GeneratorConfig.__dataclass_fields__[knob].default:
                del doc[knob]
        doc["crackdown_at"] = self.crackdown.isoformat()
        return doc


def _parse_time(knob: str, value: str) -> pd.Timestamp:
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise InvalidGeneratorConfig(f"generator knob '{knob}' = {value!r}: not a date or time") from exc
    if ts is pd.NaT or pd.isna(ts):
        raise InvalidGeneratorConfig(f"generator knob '{knob}' = {value!r}: not a date or time")
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return pd.Timestamp(ts)
