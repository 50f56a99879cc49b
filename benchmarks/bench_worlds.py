"""Does the model generalise? The normal training path on differently-configured generated worlds.

    .venv/bin/python benchmarks/bench_worlds.py [--shops 20000] [--seeds 11 12] [--worlds home camouflage alt]
        [--json results.json] [--keep-data DIR] [--unlabelled-weight W] [--propensity] [--no-monotone]

Each world is a ``GeneratorConfig`` (``WORLDS`` below: the default marketplace, a camouflaged world with
sideline sellers, fakes priced near the real thing and more honest look-alikes, and a world written in another
counterfeit vocabulary with other brands); each is generated at two seeds and trained with
``training.marketplace_run.train_marketplace`` (what ``dajia train --data`` runs; model seed 0). Reported
per world and seed, on the test period:

* ground-truth PR-AUC and recall at 90% precision (all test-date shops, the generator's ``is_counterfeiter``);
* ECE against test-period verdicts (labelled examples; 10 equal-mass bins) and the ``suspected`` threshold;
  beside it the ECE a perfectly calibrated model would show on as many labelled examples (``ece_noise_floor``);
* share of each archetype's shop-dates routed at reviewer capacity (1×) and at 4× (ground truth archetypes;
  for honest archetypes this is the false-alarm rate per segment);
* shops linked to a convicted shop (sharing a linkage identifier with a shop that got a counterfeit verdict
  before the as-of) and re-registered shops: share routed at 1×, beside the counterfeiters' average.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from marketplace.generator import GeneratorConfig, generate
from marketplace.loader import load_marketplace
from marketplace.schema import GROUND_TRUTH_FILE
from marketplace.synth.plan import LINKAGE
from marketplace.tables import Marketplace
from models.calibration import CALIBRATORS
from models.thresholds import ThresholdPolicy
from training.booster import BoosterConfig
from training.evaluation import routed_mask
from training.examples import ExamplePlan
from training.marketplace_run import train_marketplace
from training.metrics import expected_calibration_error

WORLDS: dict[str, dict[str, Any]] = {
    "home": {},
    "camouflage": {
        "camouflage_share": 0.75,
        "camouflage_depth": 0.7,
        "sideline_share": 0.25,
        "price_regime": "tight",
        "lookalike_share": 0.4,
    },
    "alt": {
        "vocabulary": "alt",
        "camouflage_depth": 0.4,
        "sideline_share": 0.2,
        "lookalike_share": 0.45,
        "label_coverage": 0.4,
    },
}


def linked_to_convicted(mp: Marketplace, frame: pd.DataFrame) -> np.ndarray:
    """Per (shop_id, as_of) row: does the shop share a linkage identifier with another shop that got a
    counterfeit verdict strictly before the as-of? (Computed from the tables, apart from the features.)"""
    shops = mp.shops.set_index(mp.shops["shop_id"].astype(str))
    v = mp.verdicts[mp.verdicts["outcome"].astype(str) == "counterfeit"]
    out = np.zeros(len(frame), dtype=bool)
    ids = frame["shop_id"].astype(str).to_numpy()
    as_of = frame["as_of"].to_numpy()
    for d in np.unique(as_of):
        rows = np.flatnonzero(as_of == d)
        convicted = pd.Index(v.loc[v["decided_at"] < d, "shop_id"].astype(str).unique())
        hit = np.zeros(len(rows), dtype=bool)
        for f in LINKAGE:
            bad = shops.loc[shops.index.intersection(convicted), f].astype(str)
            values = shops[f].astype(str).reindex(ids[rows]).to_numpy()
            holders = bad.groupby(bad.to_numpy()).size()  # convicted shops holding each value
            n_bad = holders.reindex(values).fillna(0).to_numpy()
            own = pd.Index(ids[rows]).isin(convicted)  # a convicted shop does not link to itself
            hit |= (n_bad - own.astype(int)) > 0
        out[rows] = hit
    return out


def calibration_comparison(mp: Marketplace, run: Any) -> dict[str, dict[str, float]]:
    """Each calibrator of ``models.calibration.CALIBRATORS`` fitted on the run's labelled validation raw
    scores (what ``fit_risk_model`` calibrates on): ECE against test verdicts, and how many distinct
    calibrated values (rounded to 1e-4) the test population gets — a staircase map ties thousands of shops."""
    pipe = run.model.pipeline
    valid = run.examples.part("valid", labelled_only=True)
    v_raw = run.model.raw_scores(pipe.transform_examples(mp, valid[["shop_id", "as_of"]], oof=True))
    test = run.test
    t_raw = run.model.raw_scores(pipe.transform_examples(mp, test[["shop_id", "as_of"]], oof=True))
    lab = test["labelled"].to_numpy()
    out = {}
    for name, cls in CALIBRATORS.items():
        cal = cls().fit(v_raw, valid["label"].to_numpy(dtype=np.float64))
        p = cal.transform(t_raw)
        out[name] = {
            "ece": expected_calibration_error(test.loc[lab, "label"], p[lab]),
            "levels": float(len(np.unique(np.round(p, 4)))),
        }
    return out


def ece_noise_floor(scores: np.ndarray, draws: int = 200, seed: int = 0) -> tuple[float, float]:
    """(mean, 95th percentile) ECE of a perfectly calibrated model on these scores: labels drawn from the
    scores themselves. With a few hundred labelled test examples the ECE of 10 equal-mass bins is not zero
    even then; a measured ECE near this floor is sampling noise, not miscalibration."""
    rng = np.random.default_rng(seed)
    s = np.asarray(scores, dtype=np.float64)
    eces = [expected_calibration_error((rng.random(len(s)) < s).astype(float), s) for _ in range(draws)]
    return float(np.mean(eces)), float(np.quantile(eces, 0.95))


def world_report(mp: Marketplace, gt: pd.DataFrame, run: Any) -> dict[str, Any]:
    test = run.test
    truth = gt.set_index(gt["shop_id"].astype(str))
    arch = truth["archetype"].astype(str).reindex(test["shop_id"].astype(str)).to_numpy()
    parent = truth["parent_shop_id"].reindex(test["shop_id"].astype(str)).notna().to_numpy()
    cf = test["true_label"].to_numpy() == 1
    r1 = routed_mask(test, "model", run.capacity)
    r4 = routed_mask(test, "model", {d: 4 * k for d, k in run.capacity.items()})
    linked = linked_to_convicted(mp, test)
    lab = test["labelled"].to_numpy()
    tm = run.true_metrics["model"]
    out: dict[str, Any] = {
        "true_pr_auc": tm["pr_auc"],
        "true_recall_at_90p": tm["recall_at_90_precision"],
        "true_precision_at_k": tm["precision_at_k"],
        "verdict_pr_auc": run.metrics["model"]["pr_auc"],
        "logistic_true_pr_auc": run.true_metrics["logistic"]["pr_auc"],
        "ece_verdicts": expected_calibration_error(test.loc[lab, "label"], test.loc[lab, "model"]),
        "test_labelled": int(lab.sum()),
        "ece_floor": ece_noise_floor(test.loc[lab, "model"].to_numpy()),
        "suspected_threshold": run.model.thresholds.suspected,
        "routed_counterfeiters_1x": float(r1[cf].mean()),
        "routed_counterfeiters_4x": float(r4[cf].mean()),
        "linked_rows": int(linked.sum()),
        "linked_counterfeit_share": float(cf[linked].mean()) if linked.any() else float("nan"),
        "routed_linked_1x": float(r1[linked].mean()) if linked.any() else float("nan"),
        "routed_reregistered_1x": float(r1[parent].mean()) if parent.any() else float("nan"),
        "archetypes": {},
        "calibration": calibration_comparison(mp, run),
    }
    for a in sorted(set(arch)):
        m = arch == a
        out["archetypes"][a] = {
            "rows": int(m.sum()),
            "routed_1x": float(r1[m].mean()),
            "routed_4x": float(r4[m].mean()),
        }
    return out


def run_world(
    name: str,
    knobs: dict[str, Any],
    shops: int,
    seed: int,
    root: Path,
    plan: ExamplePlan | None = None,
    config: BoosterConfig | None = None,
    pipeline_params: dict[str, Any] | None = None,
) -> dict[str, Any]:
    data = root / f"{name}-{seed}-{shops}"
    t0 = time.perf_counter()
    if not (data / "manifest.json").exists():  # a kept world (--keep-data) is generated once
        generate(GeneratorConfig(shops=shops, seed=seed, **knobs), data)
    mp = load_marketplace(data)
    gt = pd.read_parquet(data / GROUND_TRUTH_FILE)
    plan = plan or ExamplePlan(seed=0)
    config = config or BoosterConfig(seed=0)
    policy = ThresholdPolicy(sweep_days=plan.step_days)
    run = train_marketplace(mp, plan, config, policy, gt, pipeline_params=pipeline_params)
    report = world_report(mp, gt, run)
    report.update({"world": name, "seed": seed, "shops": shops, "seconds": round(time.perf_counter() - t0, 1)})
    return report


def print_report(results: list[dict[str, Any]]) -> None:
    print(
        f"\n{'world':<11}{'seed':>5}{'PR-AUC':>8}{'R@90P':>7}{'ECE':>7}{'susp':>6}{'cf@1x':>7}{'cf@4x':>7}"
        f"{'link':>6}{'lnk@1x':>7}{'rereg':>7}{'camo@1x':>8}{'side@1x':>8}{'blat@1x':>8}{'logit':>7}"
    )
    for r in results:
        a = r["archetypes"]

        def at(k: str, arch: dict[str, Any] = a) -> str:
            return f"{arch[k]['routed_1x']:.3f}" if k in arch else "-"

        print(
            f"{r['world']:<11}{r['seed']:>5}{r['true_pr_auc']:>8.3f}{r['true_recall_at_90p']:>7.3f}"
            f"{r['ece_verdicts']:>7.3f}{r['suspected_threshold']:>6.2f}{r['routed_counterfeiters_1x']:>7.3f}"
            f"{r['routed_counterfeiters_4x']:>7.3f}{r['linked_counterfeit_share']:>6.2f}{r['routed_linked_1x']:>7.3f}"
            f"{r['routed_reregistered_1x']:>7.3f}{at('counterfeit_camouflaged'):>8}{at('counterfeit_sideline'):>8}"
            f"{at('counterfeit_blatant'):>8}{r['logistic_true_pr_auc']:>7.3f}"
        )
    print("\ncalibrators on the same validation scores: ECE vs test verdicts (distinct values on the test population)")
    for r in results:
        parts = [f"{k} {v['ece']:.3f} ({v['levels']:.0f})" for k, v in r["calibration"].items()]
        floor = r["ece_floor"]
        parts.append(f"floor {floor[0]:.3f} (95%: {floor[1]:.3f}) on {r['test_labelled']} labelled")
        print(f"  {r['world']}-{r['seed']}: " + ", ".join(parts))
    print("\nrouted share per archetype, 1× / 4× capacity (honest archetypes: false alarms)")
    for r in results:
        parts = [f"{k} {v['routed_1x']:.3f}/{v['routed_4x']:.3f}" for k, v in r["archetypes"].items()]
        print(f"  {r['world']}-{r['seed']}: " + ", ".join(parts))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shops", type=int, default=20_000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[11, 12])
    ap.add_argument("--worlds", nargs="+", default=list(WORLDS), choices=list(WORLDS))
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    ap.add_argument("--unlabelled-weight", type=float, default=None, help="ablation: ExamplePlan.unlabelled_weight")
    ap.add_argument(
        "--propensity", action="store_true", help="ExamplePlan(labelled_propensity=True): inverse-propensity weights"
    )
    ap.add_argument("--no-monotone", action="store_true", help="ablation: BoosterConfig(monotone=False)")
    ap.add_argument("--text-solver", default=None, help="ablation: ShopFeaturePipeline(text_solver=...)")
    ap.add_argument("--text-C", type=float, default=None, help="ablation: ShopFeaturePipeline(text_C=...)")
    ap.add_argument(
        "--keep-data", type=Path, default=None, help="generate the worlds here and reuse them on later runs"
    )
    args = ap.parse_args()
    plan_args: dict[str, Any] = {"seed": 0, "labelled_propensity": args.propensity}
    if args.unlabelled_weight is not None:
        plan_args["unlabelled_weight"] = args.unlabelled_weight
    plan = ExamplePlan(**plan_args)
    config = BoosterConfig(seed=0, monotone=not args.no_monotone)
    params: dict[str, Any] = {}
    if args.text_solver is not None:
        params["text_solver"] = args.text_solver
    if args.text_C is not None:
        params["text_C"] = args.text_C
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep_data or Path(tmp)
        for name in args.worlds:
            for seed in args.seeds:
                r = run_world(name, WORLDS[name], args.shops, seed, root, plan, config, params)
                print(
                    f"{name} seed {seed}: PR-AUC {r['true_pr_auc']:.3f}, ECE {r['ece_verdicts']:.3f} "
                    f"({r['seconds']:.0f} s)",
                    flush=True,
                )
                results.append(r)
                if args.json:
                    args.json.write_text(json.dumps(results, indent=1))
    print_report(results)


if __name__ == "__main__":
    main()
