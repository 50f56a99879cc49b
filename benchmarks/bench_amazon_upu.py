"""Real data: Amazon fraudulent users (UPU), our ``--table`` path vs a default ``LGBMClassifier``.

Reads ``/work/shared/data/real/amazon_upu/Amazon.mat`` in place (research-only data: never copied into
the repository). For each seed: one 70/30 stratified split; our model is trained through exactly the
code path of ``dajia train --table`` (``training.table.train_table``: inner hold-out slice, early
stopping, imbalance weighting, isotonic calibration) on the 70%, the anchor is
``lightgbm.LGBMClassifier()`` with default parameters on the same 70%; both are scored on the same 30%.
Done with all 25 columns and without column 19 (which may encode the label definition; see README).

    .venv/bin/python benchmarks/bench_amazon_upu.py [--seeds 10] [--data PATH]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
from scipy.io import loadmat
from sklearn.metrics import average_precision_score, roc_auc_score

from training.booster import BoosterConfig
from training.table import split_table, train_table

DEFAULT = Path("/work/shared/data/real/amazon_upu/Amazon.mat")


def run(X: np.ndarray, y: np.ndarray, seeds: int) -> dict[str, np.ndarray]:
    frame = pd.DataFrame(X, columns=[f"c{i}" for i in range(X.shape[1])])
    frame["label"] = y
    out: dict[str, list[float]] = {"ours_roc": [], "ours_pr": [], "lgbm_roc": [], "lgbm_pr": []}
    for seed in range(seeds):
        split = split_table(y, None, 0.3, seed)
        ours = train_table(frame, "label", config=BoosterConfig(seed=seed), split=split)
        clf = lgb.LGBMClassifier(random_state=seed, verbose=-1).fit(X[split.train], y[split.train])
        p = clf.predict_proba(X[split.test])[:, 1]
        out["ours_roc"].append(ours.metrics["roc_auc"])
        out["ours_pr"].append(ours.metrics["pr_auc"])
        out["lgbm_roc"].append(float(roc_auc_score(y[split.test], p)))
        out["lgbm_pr"].append(float(average_precision_score(y[split.test], p)))
    return {k: np.asarray(v) for k, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--data", type=Path, default=DEFAULT)
    args = ap.parse_args()
    d = loadmat(str(args.data))
    X = d["Attributes"].toarray()
    y = d["Label"].ravel().astype(np.float64)
    print(
        f"Amazon UPU: {X.shape[0]} users × {X.shape[1]} features, {int(y.sum())} fraudulent; "
        f"70/30 stratified, {args.seeds} seeds (mean ± sd)"
    )
    print(
        f"{'features':<16}{'metric':<9}{'ours':>17}{'LGBMClassifier()':>20}{'ours − default':>16}{'seeds ours ≥':>14}"
    )
    for label, cols in (
        ("all 25", list(range(X.shape[1]))),
        ("without col 19", [c for c in range(X.shape[1]) if c != 19]),
    ):
        t0 = time.perf_counter()
        r = run(X[:, cols], y, args.seeds)
        for metric in ("roc", "pr"):
            a, b = r[f"ours_{metric}"], r[f"lgbm_{metric}"]
            name = "ROC-AUC" if metric == "roc" else "PR-AUC"
            print(
                f"{label:<16}{name:<9}{a.mean():>10.4f} ± {a.std():.4f}{b.mean():>13.4f} ± {b.std():.4f}"
                f"{a.mean() - b.mean():>+16.4f}{int((a >= b).sum()):>10}/{args.seeds}"
            )
        print(f"  ({time.perf_counter() - t0:.1f} s)")


if __name__ == "__main__":
    main()
