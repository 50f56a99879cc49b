"""What reasons with evidence cost, against the score and the reasons in words.

    .venv/bin/python benchmarks/bench_evidence.py --shops 20000 [--data DIR] [--seed 7]

Generates a marketplace (or uses ``--data``), trains a model on it (a light example plan), scores every
shop at the snapshot and, for the watch and suspected shops, times per shop: the score, the reasons in
words (``ShopRiskModel.explain``) and the reasons with the items they cite
(``models.evidence.explain_with_evidence``), and counts the suspected shops whose top reason cites a
concrete item (a listing, review, complaint, linked shop, order or listing edit).
"""

from __future__ import annotations

import argparse
import collections
import tempfile
import time
from pathlib import Path

from marketplace.generator import GeneratorConfig, generate
from marketplace.loader import load_marketplace
from models.evidence import CONCRETE, EvidenceFinder, explain_with_evidence
from models.thresholds import EXPLAINED_TIERS, ThresholdPolicy
from training.booster import BoosterConfig
from training.examples import ExamplePlan
from training.marketplace_run import train_marketplace


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shops", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--data", type=Path, default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data
        if data is None:
            data = Path(tmp) / "market"
            generate(GeneratorConfig(shops=args.shops, seed=args.seed), data)
        mp = load_marketplace(data)
        plan = ExamplePlan(seed=0, valid_dates=3, test_dates=2, population_sample=2_000)
        model = train_marketplace(mp, plan, BoosterConfig(seed=0), ThresholdPolicy(), pipeline_params={}).model
    as_of = mp.scoring_time()
    X = model.pipeline.transform(mp, as_of)[model.feature_names]
    tiers = model.score_features(X)["tier"]
    flagged = X[tiers.isin(EXPLAINED_TIERS).to_numpy()]
    suspected = set(X.index[(tiers == "suspected").to_numpy()].astype(str))
    n = len(flagged)
    t0 = time.perf_counter()
    model.score_features(flagged)
    t_score = time.perf_counter() - t0
    t0 = time.perf_counter()
    model.explain(flagged)
    t_words = time.perf_counter() - t0
    t0 = time.perf_counter()
    finder = EvidenceFinder(model, mp)
    t_index = time.perf_counter() - t0
    t0 = time.perf_counter()
    cited = explain_with_evidence(model, finder, flagged, as_of)
    t_cited = time.perf_counter() - t0
    concrete, codes = 0, collections.Counter()
    for shop_id, reasons in zip(flagged.index.astype(str), cited, strict=True):
        if shop_id in suspected and reasons:
            codes[reasons[0].code] += 1
            concrete += any(e["kind"] in CONCRETE for e in reasons[0].evidence)
    print(f"{len(mp.shops)} shops; {n} watch/suspected, {len(suspected)} suspected")
    print(f"per flagged shop: score {1e3 * t_score / n:.3f} ms, reasons in words {1e3 * t_words / n:.3f} ms, ")
    print(f"  reasons with evidence {1e3 * t_cited / n:.1f} ms (lookup indexes once: {t_index:.2f} s)")
    print(f"suspected shops whose top reason cites a concrete item: {concrete} of {len(suspected)}")
    print("top reasons:", dict(codes.most_common(8)))


if __name__ == "__main__":
    main()
