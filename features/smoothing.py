"""Additive (Bayesian) smoothing of rates toward a population rate learned in ``fit``.

A shop with 2 orders and 2 refunds is not "100% refunds": with ``prior_strength`` a pseudo-events at
the population rate p0, its rate reads (2 + a*p0) / (2 + a). This is the beta-binomial posterior mean
with a Beta(a*p0, a*(1-p0)) prior.
"""

from __future__ import annotations

import numpy as np


def smooth_rate(hits: np.ndarray, total: np.ndarray, prior: float, strength: float) -> np.ndarray:
    """(hits + strength*prior) / (total + strength); the prior itself where there is nothing to count."""
    if strength > 0:
        out: np.ndarray = (hits + strength * prior) / (total + strength)
        return out
    return np.where(total > 0, hits / np.maximum(total, 1e-300), prior)
