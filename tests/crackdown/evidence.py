"""The check behind "every suspected shop of a crackdown has a top reason that cites a concrete item":
the crackdown's own scores file names its suspected shops and the as-of it scored at; the champion
that scored them rebuilds their features and explains them with evidence (``models.evidence``).

Used by ``tests/crackdown`` (on the suite's crackdown) and ``benchmarks/bench_crackdown_evidence.py``
(on a 20,000-shop one)."""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from core.settings import Settings
from dajia.crackdown import RunFolder
from dajia.sweep import load_champion
from marketplace.loader import load_marketplace
from models.evidence import CONCRETE, EvidenceFinder, explain_with_evidence


@dataclass
class Citations:
    shops: int
    suspected: int
    #: suspected shops whose top reason cites a listing, review, complaint, linked shop, order or edit
    cited: int
    #: (shop id, top reason code, its evidence kinds) of the suspected shops whose top reason cites nothing
    uncited: list[tuple[str, str, list[str]]] = field(default_factory=list)
    #: cited listings that are not this shop's listings of the marketplace (must be empty)
    foreign_listings: list[tuple[str, str]] = field(default_factory=list)
    #: suspected shops whose rebuilt features no longer score "suspected" (must be empty)
    tier_mismatch: list[str] = field(default_factory=list)
    top_codes: dict[str, int] = field(default_factory=dict)
    index_seconds: float = 0.0
    ms_per_shop: float = 0.0

    def summary(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("uncited", "foreign_listings", "tier_mismatch")} | {
            "uncited": len(self.uncited),
            "foreign_listings": len(self.foreign_listings),
            "tier_mismatch": len(self.tier_mismatch),
        }


def crackdown_citations(settings: Settings, folder: RunFolder) -> Citations:
    """Explain, with evidence, every shop the crackdown's sweep scored "suspected" (its scores file)."""
    scores = pd.read_parquet(folder.scores)
    mp = load_marketplace(folder.data)
    champion = load_champion(settings)
    model = champion.model
    assert set(scores["model_version"].astype(str)) == {champion.version}, "the scores are not the champion's"
    as_of = pd.Timestamp(scores["as_of"].iloc[0])
    suspected = scores.loc[scores["tier"] == "suspected", "shop_id"].astype(str).tolist()
    X = model.pipeline.transform(mp, as_of, shop_ids=suspected)[model.feature_names]
    X = X.loc[suspected]
    tiers = model.score_features(X)["tier"].to_numpy()
    t0 = time.perf_counter()
    finder = EvidenceFinder(model, mp)
    t_index = time.perf_counter() - t0
    t0 = time.perf_counter()
    reasons = explain_with_evidence(model, finder, X, as_of)
    t_explain = time.perf_counter() - t0
    owner = dict(zip(mp.listings["listing_id"].astype(str), mp.listings["shop_id"].astype(str), strict=True))
    out = Citations(shops=len(scores), suspected=len(suspected), cited=0, index_seconds=round(t_index, 2))
    codes: collections.Counter[str] = collections.Counter()
    for shop_id, tier, rs in zip(suspected, tiers, reasons, strict=True):
        if tier != "suspected":
            out.tier_mismatch.append(shop_id)
        if not rs:
            out.uncited.append((shop_id, "", []))
            continue
        top = rs[0]
        codes[top.code] += 1
        concrete = [e for e in top.evidence if e["kind"] in CONCRETE]
        if concrete:
            out.cited += 1
        else:
            out.uncited.append((shop_id, top.code, [str(e["kind"]) for e in top.evidence]))
        for e in concrete:
            if e["kind"] == "listing" and owner.get(str(e["id"])) != shop_id:
                out.foreign_listings.append((shop_id, str(e["id"])))
    out.top_codes = dict(codes.most_common())
    out.ms_per_shop = round(1000 * t_explain / max(1, len(suspected)), 2)
    return out
