"""Real Chinese reviews: our text model (hashed char n-grams, idf-weighted logistic regression) vs baselines.

Data: ../shared/data/real/consumer_fraud_cn (read in place, never copied; research use only, see its
PROVENANCE.md). Positives: reviews of merchants penalised for selling counterfeits
(SellingCounterfeitProducts.csv), or with ``--all-fraud`` every penalised class; negatives: normal
merchants. Texts are deduplicated (exact duplicates after normalisation, and texts found in both classes
are dropped). 5-fold stratified cross-validation; there is no merchant id, so reviews of one merchant
can sit in train and test (as in the source paper) -- the figures are optimistic for both models alike.

    .venv/bin/python benchmarks/bench_text_real.py [--all-fraud] [--data DIR]

Also compared on the same folds: scikit-learn's ``TfidfVectorizer`` (char 1-3 n-grams, default, and the tuned
baseline: ``C=4``, ``class_weight="balanced"``), the same with ``char_wb`` n-grams and sublinear tf, and a
``HashingVectorizer`` (char_wb 1-3, 2^18 columns) + ``TfidfTransformer`` (sublinear) + the tuned logistic
regression, with each one's transform cost per text (the serving-side cost: vectorise + one dot product).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import HashingVectorizer, TfidfTransformer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline, make_pipeline

from features.text import HashedTextClassifier, normalise_text

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "consumer_fraud_cn"
FRAUD = ("SellingCounterfeitProducts", "DoNotMeetHealthStandards", "Receipt", "MissingQuantity", "UnclearPrice")


def load(folder: Path, all_fraud: bool) -> pd.DataFrame:
    frames = []
    for name in ("NormalMerchant", *(FRAUD if all_fraud else FRAUD[:1])):
        df = pd.read_csv(folder / f"{name}.csv", dtype=str)
        frames.append(pd.DataFrame({"text": df["reviews"], "label": int(name != "NormalMerchant")}))
    data = pd.concat(frames, ignore_index=True).dropna()
    data["norm"] = data["text"].map(normalise_text)
    data = data[data["norm"].str.len() > 0]
    both = data.groupby("norm")["label"].nunique()
    data = data[~data["norm"].isin(both[both > 1].index)]
    return data.drop_duplicates("norm").reset_index(drop=True)


def sklearn_models() -> dict[str, Pipeline]:
    def tuned() -> LogisticRegression:
        return LogisticRegression(C=4, class_weight="balanced", max_iter=2000)

    return {
        "tfidf char 1-3 + LR (default)": make_pipeline(
            TfidfVectorizer(analyzer="char", ngram_range=(1, 3)), LogisticRegression(max_iter=2000)
        ),
        "tfidf char 1-3 + LR (C=4, bal.)": make_pipeline(TfidfVectorizer(analyzer="char", ngram_range=(1, 3)), tuned()),
        "tfidf char_wb 1-3 sublin + LR": make_pipeline(
            TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3), sublinear_tf=True), tuned()
        ),
        "hashing char_wb 1-3 sublin + LR": make_pipeline(
            HashingVectorizer(analyzer="char_wb", ngram_range=(1, 3), n_features=2**18, alternate_sign=False),
            TfidfTransformer(sublinear_tf=True),
            tuned(),
        ),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT)
    ap.add_argument("--all-fraud", action="store_true", help="every penalised class vs normal merchants")
    ap.add_argument("--folds", type=int, default=5)
    args = ap.parse_args()
    data = load(args.data, args.all_fraud)
    y = data["label"].to_numpy()
    print(f"{len(data):,} distinct reviews, {y.sum():,} positive ({y.mean():.1%})")
    text_scores = np.zeros(len(data))
    sgd_scores = np.zeros(len(data))
    c4_scores = np.zeros(len(data))
    length_scores = np.zeros(len(data))
    others = sklearn_models()
    other_scores = {name: np.zeros(len(data)) for name in others}
    mine = ["char n-grams + linear (ours)", "ours with C=4", "ours, earlier SGD solver"]
    cost = {name: 0.0 for name in [*mine, *others]}
    texts = data["text"].to_numpy()
    t0 = time.perf_counter()
    for train, test in StratifiedKFold(args.folds, shuffle=True, random_state=0).split(data, y):
        model = HashedTextClassifier(n_features=2**18, ngram_range=(1, 3), max_iter=20)
        model.fit(texts[train], y[train])
        t1 = time.perf_counter()
        text_scores[test] = model.predict_proba(texts[test])[:, 1]
        cost["char n-grams + linear (ours)"] += time.perf_counter() - t1
        for name, scores, kw in (
            ("ours with C=4", c4_scores, {"C": 4.0}),
            ("ours, earlier SGD solver", sgd_scores, {"solver": "sgd"}),
        ):
            variant = HashedTextClassifier(n_features=2**18, ngram_range=(1, 3), max_iter=20, **kw)  # type: ignore[arg-type]
            variant.fit(texts[train], y[train])
            t1 = time.perf_counter()
            scores[test] = variant.predict_proba(texts[test])[:, 1]
            cost[name] += time.perf_counter() - t1
        length = np.log1p(data["norm"].str.len().to_numpy(dtype=float))[:, None]
        base = LogisticRegression().fit(length[train], y[train])
        length_scores[test] = base.predict_proba(length[test])[:, 1]
        for name, pipe in others.items():
            # the same normalised text our builder sees (NFKC + casefold), so only the model differs
            pipe.fit(data["norm"].to_numpy()[train], y[train])
            t1 = time.perf_counter()
            other_scores[name][test] = pipe.predict_proba(data["norm"].to_numpy()[test])[:, 1]
            cost[name] += time.perf_counter() - t1
    seconds = time.perf_counter() - t0
    rows = {
        "char n-grams + linear (ours)": (roc_auc_score(y, text_scores), average_precision_score(y, text_scores)),
        "ours with C=4": (roc_auc_score(y, c4_scores), average_precision_score(y, c4_scores)),
        "ours, earlier SGD solver": (roc_auc_score(y, sgd_scores), average_precision_score(y, sgd_scores)),
        "review length only": (roc_auc_score(y, length_scores), average_precision_score(y, length_scores)),
    }
    print(f"{'model':<34} {'ROC-AUC':>8} {'PR-AUC':>8} {'µs/text':>8}")
    for name, (roc, pr) in rows.items():
        us = f"{cost[name] / len(data) * 1e6:>8.1f}" if name in cost else f"{'-':>8}"
        print(f"{name:<34} {roc:>8.3f} {pr:>8.3f} {us}")
    for name, s in other_scores.items():
        us = cost[name] / len(data) * 1e6
        print(f"{name:<34} {roc_auc_score(y, s):>8.3f} {average_precision_score(y, s):>8.3f} {us:>8.1f}")
    (ro, po), _, _, (rb, pb) = rows.values()
    print(f"ours vs length: ROC-AUC +{ro - rb:.3f} ({ro / rb:.2f}x), PR-AUC +{po - pb:.3f} ({po / pb:.2f}x)")
    print(f"prevalence (PR-AUC of a random score): {y.mean():.3f}; {args.folds}-fold CV in {seconds:.1f} s")


if __name__ == "__main__":
    main()
