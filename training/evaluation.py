"""Test-period evaluation: verdict-based (labelled examples) and, apart from it, against ground truth.

Reviewer capacity: each sweep (an as-of date) routes the ``K`` highest-scored shops of the whole
population (``capacity_per_day × step_days``). Precision@k is measured on what would be routed:

* verdict-based: among routed shops that received a verdict within the horizon, the share found
  counterfeit (pooled over the test dates); the other metrics use the labelled examples only;
* ground truth (generator's ``is_counterfeiter``; all open shops): the share of routed shops that are
  counterfeiters, averaged over test dates.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from training.metrics import binary_metrics, recall_at_precision

SCORERS = ("model", "logistic", "keyword")
#: precision is also reported at these multiples of reviewer capacity (``precision_at_2k`` …): the
#: 1× figure of a good scorer sits near 1.0, where a few investigator errors decide the order
CAPACITY_MULTIPLES = (2, 4, 8)


def routed_mask(frame: pd.DataFrame, col: str, capacity: dict[Any, float], seed: int = 0) -> NDArray[np.bool_]:
    """Rows among the top ``capacity[as_of]`` scores of their as-of date.

    Ties (the keyword rule scores most shops 0) are broken at random (seeded), never by row order: the
    rows are stored labelled-first, and an order tie-break would route exactly the labelled ones."""
    mask = np.zeros(len(frame), dtype=bool)
    rng = np.random.default_rng(seed)
    for as_of, idx in frame.groupby("as_of", sort=True).groups.items():
        pos = frame.index.get_indexer(idx)
        k = round(capacity.get(as_of, 0))
        if k <= 0:
            continue
        s = frame[col].to_numpy()[pos]
        top = pos[np.lexsort((rng.random(len(pos)), -s))[:k]]
        mask[top] = True
    return mask


def _scaled(capacity: dict[Any, float], multiple: int) -> dict[Any, float]:
    return {d: k * multiple for d, k in capacity.items()}


def _precision_key(multiple: int) -> str:
    return "precision_at_k" if multiple == 1 else f"precision_at_{multiple}k"


def verdict_metrics(frame: pd.DataFrame, col: str, capacity: dict[Any, float], probabilities: bool) -> dict[str, float]:
    lab = frame[frame["labelled"]]
    m = binary_metrics(lab["label"].to_numpy(), lab[col].to_numpy(), k=1, probabilities=probabilities)
    labelled = frame["labelled"].to_numpy()
    label = frame["label"].to_numpy()
    for multiple in (1, *CAPACITY_MULTIPLES):
        routed = routed_mask(frame, col, _scaled(capacity, multiple)) & labelled
        y = label[routed]
        m[_precision_key(multiple)] = float(np.mean(y)) if len(y) else float("nan")
        if multiple == 1:
            m["routed_with_verdict"] = float(len(y))
    m["k"] = float(np.mean(list(capacity.values()))) if capacity else float("nan")
    return m


def investigator_misses(frame: pd.DataFrame, routed: NDArray[np.bool_]) -> dict[str, float]:
    """What the verdict-based precision@k counts as the scorer's errors, judged by ground truth.

    Among the ``routed`` test examples (a scorer's ``routed_mask`` at capacity) whose verdict was
    "genuine", how many are counterfeiters by the generator's ground truth (an investigation that
    missed the fake). Needs ``true_label``."""
    genuine = routed & frame["labelled"].to_numpy() & (frame["label"].to_numpy() == 0)
    fooled = genuine & (frame["true_label"].to_numpy() == 1)
    return {
        "routed_genuine_verdicts": float(genuine.sum()),
        "routed_genuine_verdicts_counterfeit": float(fooled.sum()),
        "routed_genuine_verdict_shops": float(frame.loc[genuine, "shop_id"].nunique()),
    }


def truth_metrics(frame: pd.DataFrame, col: str, capacity: dict[Any, float]) -> dict[str, float]:
    y = frame["true_label"].to_numpy(dtype=np.float64)
    s = frame[col].to_numpy(dtype=np.float64)
    m = binary_metrics(y, s, k=1, probabilities=False)
    for multiple in (1, *CAPACITY_MULTIPLES):
        routed = routed_mask(frame, col, _scaled(capacity, multiple))
        per_date = [float(np.mean(y[routed & (frame["as_of"] == d).to_numpy()])) for d in capacity if capacity[d] > 0]
        m[_precision_key(multiple)] = float(np.nanmean(per_date)) if per_date else float("nan")
        if multiple == 1:
            m.update(investigator_misses(frame, routed))
    m["k"] = float(np.mean(list(capacity.values()))) if capacity else float("nan")
    m["recall_at_90_precision"] = recall_at_precision(y, s, 0.9)
    return m


def comparison_table(metrics: dict[str, dict[str, float]]) -> list[dict[str, Any]]:
    keys = ("pr_auc", "roc_auc", "precision_at_k", "recall_at_90_precision", "brier", "routed_with_verdict")
    return [{"scorer": name, **{k: m[k] for k in keys if k in m}} for name, m in metrics.items()]


def segment_table(
    frame: pd.DataFrame, segments: list[str], capacity_share: float, min_labelled: int = 10
) -> list[dict[str, Any]]:
    """Verdict-based metrics of every scorer within each segment value (labelled examples)."""
    rows: list[dict[str, Any]] = []
    lab = frame[frame["labelled"]]
    for seg in segments:
        for value, part in lab.groupby(seg, sort=True, observed=True):
            if len(part) < min_labelled or part["label"].nunique() < 2:
                continue
            k = max(1, round(capacity_share * len(part)))
            for col in SCORERS:
                m = binary_metrics(part["label"].to_numpy(), part[col].to_numpy(), k, probabilities=col != "keyword")
                rows.append(
                    {
                        "segment": seg,
                        "value": str(value),
                        "scorer": col,
                        "n": len(part),
                        "positives": int(part["label"].sum()),
                        "pr_auc": m["pr_auc"],
                        "roc_auc": m["roc_auc"],
                        "precision_at_k": m["precision_at_k"],
                    }
                )
    return rows
