"""Training at scale, and what our training call costs over a bare ``lightgbm.train``.

    .venv/bin/python benchmarks/bench_training.py --shops 50000 [--data DIR] [--seed 0]

1. Generates a marketplace of ``--shops`` shops (or uses ``--data``), then runs the whole
   ``dajia train --data`` computation (``training.marketplace_run.train_marketplace``: examples,
   features, LightGBM, calibration, thresholds, baselines, evaluation), timed by stage.
2. Overhead: on the very feature matrix of that run, our training call (``training.fit.fit_risk_model``:
   early stopping on validation, tree truncation, isotonic calibration, thresholds, reason tables)
   against the anchor, a bare ``lightgbm.train`` with the same parameters for the same number of boosting
   rounds (best iteration + early-stopping patience), measured in the same process, best of 3.
3. Prints the test-period comparison table (model vs keyword rule vs logistic regression).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd

from marketplace.generator import GeneratorConfig, generate
from marketplace.loader import load_marketplace
from marketplace.schema import GROUND_TRUTH_FILE
from models.thresholds import ThresholdPolicy
from training.booster import BoosterConfig
from training.examples import ExamplePlan
from training.fit import fit_risk_model
from training.marketplace_run import train_marketplace


def _table(title: str, metrics: dict[str, dict[str, float]]) -> None:
    print(f"\n{title}")
    print(
        f"  {'scorer':<10}{'PR-AUC':>9}{'ROC-AUC':>9}{'prec@k':>9}{'@2k':>8}{'@4k':>8}{'@8k':>8}"
        f"{'rec@90%p':>10}{'Brier':>8}"
    )
    for name, m in metrics.items():
        brier = m.get("brier")
        b = f"{brier:>8.4f}" if brier is not None and np.isfinite(brier) else f"{'-':>8}"
        print(
            f"  {name:<10}{m['pr_auc']:>9.4f}{m['roc_auc']:>9.4f}{m['precision_at_k']:>9.4f}"
            f"{m['precision_at_2k']:>8.4f}{m['precision_at_4k']:>8.4f}{m['precision_at_8k']:>8.4f}"
            f"{m['recall_at_90_precision']:>10.4f}{b}"
        )


def _misses(verdict: dict[str, dict[str, float]], true: dict[str, dict[str, float]]) -> None:
    """The verdict-based precision@k's 'errors' of each scorer, judged by ground truth."""
    print("\nrouted test examples with a genuine verdict (what verdict-based precision@k counts as errors):")
    for name, m in true.items():
        routed = int(verdict[name]["routed_with_verdict"])
        print(
            f"  {name:<10}{int(m['routed_genuine_verdicts']):>4} examples of {routed:>4}"
            f" with a verdict ({int(m['routed_genuine_verdict_shops'])} shops); "
            f"counterfeiters by ground truth: {int(m['routed_genuine_verdicts_counterfeit'])}"
        )


def _per_row(fn: object, rows: np.ndarray, n: int) -> float:
    """Median seconds per call of ``fn(row)`` over ``n`` different single rows."""
    times = []
    for i in range(n):
        x = rows[i % len(rows) : i % len(rows) + 1]
        t0 = time.perf_counter()
        fn(x)  # type: ignore[operator]
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _reason_costs(model: object, rows: np.ndarray, n: int = 300) -> None:
    """Reasons on the hot path: one row at a time, 1 thread (as served), different rows each call."""
    from models.model import ShopRiskModel

    assert isinstance(model, ShopRiskModel)
    b = model.booster
    predict = _per_row(lambda x: b.predict(x, num_threads=1), rows, n)
    shap = _per_row(lambda x: b.predict(x, pred_contrib=True, num_threads=1), rows, n)
    saabas = _per_row(lambda x: model.explainer.contributions(b, x, 1), rows, n)
    words = _per_row(lambda x: model.explain(x, top=3), rows, n)
    print(f"\nreasons, one row ({b.num_trees()} trees, {len(model.feature_names)} features), median of {n} rows:")
    print(f"  Booster.predict                 {predict * 1e6:9.0f} µs   1.0×")
    print(f"  exact TreeSHAP (pred_contrib)   {shap * 1e6:9.0f} µs {shap / predict:6.1f}×")
    print(f"  Saabas path credits             {saabas * 1e6:9.0f} µs {saabas / predict:6.1f}×")
    print(f"  Saabas + top-3 sentences        {words * 1e6:9.0f} µs {words / predict:6.1f}×")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shops", type=int, default=50_000)
    ap.add_argument("--data", type=Path, default=None, help="use this marketplace instead of generating one")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        data = args.data
        if data is None:
            data = Path(tmp) / "market"
            t0 = time.perf_counter()
            generate(GeneratorConfig(shops=args.shops, seed=args.seed), data)
            print(f"generated {args.shops:,} shops in {time.perf_counter() - t0:.1f} s (not counted below)")
        t0 = time.perf_counter()
        mp = load_marketplace(data)
        gt = pd.read_parquet(data / GROUND_TRUTH_FILE) if (data / GROUND_TRUTH_FILE).exists() else None
        load_s = time.perf_counter() - t0
        print(f"loaded {len(mp.shops):,} shops in {load_s:.1f} s", flush=True)
        plan = ExamplePlan(seed=args.seed)
        config = BoosterConfig(seed=args.seed)
        policy = ThresholdPolicy(sweep_days=plan.step_days)
        t0 = time.perf_counter()
        run = train_marketplace(
            mp, plan, config, policy, gt, progress=lambda stage, s: print(f"  ... {stage} {s:.1f} s", flush=True)
        )
        train_s = time.perf_counter() - t0
        n_shops = len(mp.shops)
        print(
            f"\nshops {n_shops:,}; load {load_s:.1f} s; training run {train_s:.1f} s "
            f"({train_s / 60:.1f} min; target for 1,000,000 shops: 20 min)"
        )
        for k, v in run.timings.items():
            print(f"  {k:<24}{v:8.1f} s")
        ex = run.examples.frame
        print(
            f"  examples: train {int((ex['period'] == 'train').sum()):,} "
            f"(labelled {int(((ex['period'] == 'train') & ex['labelled']).sum()):,}), "
            f"valid labelled {int(((ex['period'] == 'valid') & ex['labelled']).sum()):,}, "
            f"test labelled {int(((ex['period'] == 'test') & ex['labelled']).sum()):,}"
        )

        # overhead of our training call vs bare lightgbm.train on the same matrix
        pipeline = run.model.pipeline
        train = run.examples.training()
        X_train = pipeline.transform_examples(mp, train[["shop_id", "as_of"]], oof=False)
        y_train = train["label"].to_numpy(dtype=np.float64)
        w_train = train["weight"].to_numpy(dtype=np.float64)
        valid = run.examples.part("valid", labelled_only=False)
        X_valid = pipeline.transform_examples(mp, valid[["shop_id", "as_of"]], oof=False)
        lab = valid["labelled"].to_numpy()
        y_valid = valid["label"].to_numpy(dtype=np.float64)[lab]
        ours, bare = [], []
        rounds = None
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            m = fit_risk_model(
                X_train,
                y_train,
                X_valid[lab],
                y_valid,
                config,
                policy,
                population_scores_X=X_valid,
                population_size=len(valid),
                pipeline=pipeline,
                weight=w_train,
            )
            ours.append(time.perf_counter() - t0)
            rounds = min(config.max_rounds, m.info["best_iteration"] + config.early_stopping_rounds)
            params = config.params_for(y_train, w_train)
            t0 = time.perf_counter()
            lgb.train(
                params,
                lgb.Dataset(X_train.to_numpy(dtype=np.float64), label=y_train, weight=w_train),
                num_boost_round=rounds,
            )
            bare.append(time.perf_counter() - t0)
        print(
            f"\ntraining call on {X_train.shape[0]:,} × {X_train.shape[1]} features, {rounds} rounds: "
            f"ours {min(ours):.3f} s, bare lightgbm.train {min(bare):.3f} s, ratio {min(ours) / min(bare):.2f}× "
            "(target ≤ 1.3×)"
        )
        _reason_costs(run.model, X_valid.to_numpy(dtype=np.float64))
        _table(
            "test period, verdict-based (labelled examples; precision@k among routed shops with a verdict)", run.metrics
        )
        if run.true_metrics:
            _table("test period, ground truth (all shops; precision@k of routed shops)", run.true_metrics)
            _misses(run.metrics, run.true_metrics)


if __name__ == "__main__":
    main()
