"""Evaluation metrics a fraud team signs off: ranking, capacity, calibration, per segment."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score


def precision_at_k(y: NDArray[np.float64], s: NDArray[np.float64], k: int) -> float:
    """Precision of the ``k`` highest scores (ties broken by order, stable)."""
    if len(y) == 0 or k <= 0:
        return float("nan")
    k = min(k, len(y))
    top = np.argsort(-s, kind="stable")[:k]
    return float(np.mean(y[top]))


def recall_at_precision(y: NDArray[np.float64], s: NDArray[np.float64], target: float = 0.9) -> float:
    """Largest recall reachable by a threshold whose precision is at least ``target``."""
    if len(y) == 0 or y.sum() == 0:
        return float("nan")
    order = np.argsort(-s, kind="stable")
    ss, t = s[order], y[order]
    tp = np.cumsum(t)
    prec = tp / np.arange(1, len(t) + 1)
    last = np.r_[ss[1:] != ss[:-1], True]
    ok = (prec >= target) & last
    if not ok.any():
        return 0.0
    return float(tp[ok].max() / t.sum())


def reliability_curve(y: NDArray[np.float64], s: NDArray[np.float64], bins: int = 10) -> list[dict[str, float]]:
    """Mean predicted vs observed rate in equal-width score bins (empty bins left out)."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.clip(np.digitize(s, edges[1:-1]), 0, bins - 1)
    out = []
    for b in range(bins):
        m = idx == b
        if m.any():
            out.append(
                {
                    "bin_low": float(edges[b]),
                    "bin_high": float(edges[b + 1]),
                    "n": int(m.sum()),
                    "mean_score": float(s[m].mean()),
                    "observed_rate": float(y[m].mean()),
                }
            )
    return out


def binary_metrics(y_in: ArrayLike, s_in: ArrayLike, k: int, probabilities: bool = True) -> dict[str, float]:
    """PR-AUC, ROC-AUC, precision@k, recall at 90% precision and (for probabilities) Brier score."""
    y = np.asarray(y_in, dtype=np.float64)
    s = np.asarray(s_in, dtype=np.float64)
    n_pos = int(y.sum())
    both = 0 < n_pos < len(y)
    out = {
        "n": float(len(y)),
        "positives": float(n_pos),
        "pr_auc": float(average_precision_score(y, s)) if both else float("nan"),
        "roc_auc": float(roc_auc_score(y, s)) if both else float("nan"),
        "precision_at_k": precision_at_k(y, s, k),
        "k": float(min(k, len(y))),
        "recall_at_90_precision": recall_at_precision(y, s, 0.9),
    }
    if probabilities:
        out["brier"] = float(brier_score_loss(y, np.clip(s, 0.0, 1.0))) if len(y) else float("nan")
    return out


def reliability_equal_mass(y_in: ArrayLike, s_in: ArrayLike, bins: int = 10) -> list[dict[str, float]]:
    """Reliability curve over equal-mass bins: the scores sorted and cut into ``bins`` groups of (nearly)
    the same count, so a few high scores get a bin of their own instead of sharing a mostly empty one.
    Each bin: its score range, count, mean score and observed rate."""
    y = np.asarray(y_in, dtype=np.float64)
    s = np.asarray(s_in, dtype=np.float64)
    if y.shape != s.shape or y.ndim != 1:
        raise ValueError(f"reliability needs two 1-d arrays of equal length, got {y.shape} and {s.shape}")
    order = np.argsort(s, kind="stable")
    out = []
    for part in np.array_split(order, min(bins, len(s))) if len(s) else []:
        out.append(
            {
                "bin_low": float(s[part].min()),
                "bin_high": float(s[part].max()),
                "n": len(part),
                "mean_score": float(s[part].mean()),
                "observed_rate": float(y[part].mean()),
            }
        )
    return out


def expected_calibration_error(y: ArrayLike, s: ArrayLike, bins: int = 10) -> float:
    """ECE over equal-mass bins: the count-weighted mean |mean score − observed rate| of the bins."""
    curve = reliability_equal_mass(y, s, bins)
    n = sum(b["n"] for b in curve)
    if n == 0:
        return float("nan")
    return float(sum(b["n"] * abs(b["mean_score"] - b["observed_rate"]) for b in curve) / n)
