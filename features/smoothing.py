"""Additive (Bayesian) smoothing of rates toward a population rate learned in ``fit``.

A shop with 2 orders and 2 refunds is not "100% refunds": with ``prior_strength`` a pseudo-events at
the population rate p0, its rate reads (2 + a*p0) / (2 + a). This is the beta-binomial posterior mean
with a Beta(a*p0, a*(1-p0)) prior.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data


def smooth_rate(hits: np.ndarray, total: np.ndarray, prior: float, strength: float) -> np.ndarray:
    """(hits + strength*prior) / (total + strength); the prior itself where there is nothing to count."""
    if strength > 0:
        out: np.ndarray = (hits + strength * prior) / (total + strength)
        return out
    return np.where(total > 0, hits / np.maximum(total, 1e-300), prior)


class SmoothedShares(TransformerMixin, BaseEstimator):
    """Array component: per-row counts over categories in, smoothed shares out.

    ``X[i, j]`` counts events of category ``j`` for row ``i`` (e.g. complaints by kind). ``fit`` learns
    the population mix ``shares_[j]`` = column sum / total; ``transform`` returns
    ``(X[i, j] + a * shares_[j]) / (X[i].sum() + a)``: the row's own mix when it has many events, the
    population's when it has none. Counts must be non-negative.
    """

    def __init__(self, prior_strength: float = 10.0) -> None:
        self.prior_strength = prior_strength

    def fit(self, X: Any, y: Any = None) -> SmoothedShares:
        X = validate_data(self, X, dtype=np.float64, reset=True)
        if self.prior_strength < 0:
            raise ValueError(f"prior_strength must be >= 0, got {self.prior_strength}")
        _non_negative(X)
        sums = X.sum(axis=0)
        total = float(sums.sum())
        self.shares_ = sums / total if total > 0 else np.full(X.shape[1], 1.0 / X.shape[1])
        return self

    def transform(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "shares_")
        X = validate_data(self, X, dtype=np.float64, reset=False)
        _non_negative(X)
        totals = X.sum(axis=1, keepdims=True)
        a = float(self.prior_strength)
        if a > 0:
            out: np.ndarray = (X + a * self.shares_[None, :]) / (totals + a)
            return out
        return np.where(totals > 0, X / np.where(totals > 0, totals, 1.0), self.shares_[None, :])

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        check_is_fitted(self, "shares_")
        names = input_features if input_features is not None else [f"x{j}" for j in range(self.n_features_in_)]
        return np.asarray([f"{n}_share" for n in names], dtype=object)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.positive_only = True
        return tags


def _non_negative(X: np.ndarray) -> None:
    if (X < 0).any():
        raise ValueError("Negative values in data passed to SmoothedShares: counts must be non-negative")
