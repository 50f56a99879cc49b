"""Score calibration: a raw booster output becomes a probability a reviewer can read.

Three calibrators share one interface (``fit(raw, y)``, ``transform(raw)``; ``CALIBRATORS`` by name):
plain isotonic, cross-fitted isotonic (the default of ``models.model.fit_risk_model``: more levels, same
calibration, chosen by measurement on six generated worlds) and beta calibration (smooth). What follows
describes the isotonic map they build on.

Isotonic regression fitted on a held-out slice (scores from a model that never saw those rows),
stored as its breakpoints and applied with ``np.interp`` so serving needs neither sklearn nor a
Python loop. Isotonic steps create ties, and ties lose ranking information (PR-AUC and precision@k
would drop a little); a tiny, strictly increasing term in the raw score breaks the ties without
moving any probability by more than ``tie_break`` (1e-6).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.isotonic import IsotonicRegression


def _slice(raw: ArrayLike, y: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The calibration slice as two float arrays; a clear error when it cannot be calibrated on."""
    raw_a = np.asarray(raw, dtype=np.float64)
    y_a = np.asarray(y, dtype=np.float64)
    if raw_a.shape != y_a.shape or raw_a.ndim != 1:
        raise ValueError(f"calibration needs two 1-d arrays of equal length, got {raw_a.shape} and {y_a.shape}")
    if len(np.unique(y_a)) < 2:
        raise ValueError("calibration slice holds only one class; cannot calibrate")
    return raw_a, y_a


class IsotonicCalibrator:
    """Monotone map from raw score in [0, 1] to a calibrated probability."""

    def __init__(self, tie_break: float = 1e-6) -> None:
        self.tie_break = tie_break

    def fit(self, raw: ArrayLike, y: ArrayLike) -> IsotonicCalibrator:
        raw_a, y_a = _slice(raw, y)
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip", increasing=True)
        iso.fit(raw_a, y_a)
        self.x_: NDArray[np.float64] = np.asarray(iso.X_thresholds_, dtype=np.float64)
        self.y_: NDArray[np.float64] = np.asarray(iso.y_thresholds_, dtype=np.float64)
        self.n_fit_ = len(raw_a)
        return self

    def transform(self, raw: ArrayLike) -> NDArray[np.float64]:
        if not hasattr(self, "x_"):
            raise RuntimeError("IsotonicCalibrator is not fitted")
        r = np.asarray(raw, dtype=np.float64)
        p = np.interp(r, self.x_, self.y_)
        # strictly increasing tie-breaker, bounded by tie_break, keeps the booster's ranking
        p = p * (1.0 - self.tie_break) + self.tie_break * r
        return np.clip(p, 0.0, 1.0)


class CrossFitIsotonicCalibrator(IsotonicCalibrator):
    """Isotonic maps fitted on ``folds`` overlapping subsets of the slice (each leaves one fold out), averaged.

    One isotonic fit on a few hundred labels is a staircase of a handful of steps (thousands of shops share
    each value); the average of maps whose steps fall in different places is a monotone map with many more
    levels, nearer the smooth curve it estimates. Stored, like the plain map, as breakpoints applied with
    ``np.interp`` (the union of every fold map's breakpoints)."""

    def __init__(self, tie_break: float = 1e-6, folds: int = 5, seed: int = 0) -> None:
        super().__init__(tie_break)
        self.folds = folds
        self.seed = seed

    def fit(self, raw: ArrayLike, y: ArrayLike) -> CrossFitIsotonicCalibrator:
        raw_a, y_a = _slice(raw, y)
        super().fit(raw_a, y_a)  # checks the inputs; the full map is one of the averaged maps
        fold = np.random.default_rng(self.seed).permutation(len(raw_a)) % max(2, self.folds)
        maps = [(self.x_, self.y_)]
        for k in range(max(2, self.folds)):
            keep = fold != k
            if len(np.unique(y_a[keep])) < 2:
                continue
            iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip", increasing=True)
            iso.fit(raw_a[keep], y_a[keep])
            maps.append((np.asarray(iso.X_thresholds_, np.float64), np.asarray(iso.y_thresholds_, np.float64)))
        grid = np.unique(np.concatenate([x for x, _ in maps]))
        self.x_ = grid
        self.y_ = np.mean([np.interp(grid, x, v) for x, v in maps], axis=0)
        return self


class BetaCalibrator:
    """Beta calibration (Kull et al., 2017): ``sigmoid(a·ln s − b·ln(1 − s) + c)`` fitted by logistic
    regression on the two log terms; smooth, and monotone when ``a, b ≥ 0`` (a negative one is dropped and
    the other refitted)."""

    def __init__(self, tie_break: float = 1e-6) -> None:
        self.tie_break = tie_break

    @staticmethod
    def _terms(raw: NDArray[np.float64]) -> NDArray[np.float64]:
        s = np.clip(raw, 1e-9, 1.0 - 1e-9)
        return np.column_stack([np.log(s), -np.log1p(-s)])

    def fit(self, raw: ArrayLike, y: ArrayLike) -> BetaCalibrator:
        from sklearn.linear_model import LogisticRegression

        raw_a, y_a = _slice(raw, y)
        X = self._terms(raw_a)
        use = np.array([True, True])
        coef = np.zeros(2)
        for _ in range(3):
            lr = LogisticRegression(C=1e4, max_iter=1000).fit(X[:, use], y_a)
            coef = np.zeros(2)
            coef[use] = lr.coef_[0]
            intercept = float(lr.intercept_[0])
            if (coef >= 0).all() or use.sum() == 1:
                break
            use = use & (coef > 0)
            if not use.any():
                use = np.array([True, False])
        self.coef_: NDArray[np.float64] = np.maximum(coef, 0.0)
        self.intercept_ = intercept
        self.n_fit_ = len(raw_a)
        return self

    def transform(self, raw: ArrayLike) -> NDArray[np.float64]:
        if not hasattr(self, "coef_"):
            raise RuntimeError("BetaCalibrator is not fitted")
        r = np.asarray(raw, dtype=np.float64)
        z = self._terms(r.ravel()) @ self.coef_ + self.intercept_
        p = (1.0 / (1.0 + np.exp(-z))).reshape(r.shape)
        p = p * (1.0 - self.tie_break) + self.tie_break * r
        return np.clip(p, 0.0, 1.0)


Calibrator = IsotonicCalibrator | BetaCalibrator
#: what ``fit_risk_model`` may calibrate with, by name
CALIBRATORS: dict[str, type[IsotonicCalibrator] | type[BetaCalibrator]] = {
    "isotonic": IsotonicCalibrator,
    "crossfit_isotonic": CrossFitIsotonicCalibrator,
    "beta": BetaCalibrator,
}

#: the calibrator ``training.fit.fit_risk_model`` uses by default: chosen by ECE against test verdicts over
#: six generated worlds (docs/training.md, "Calibration")
DEFAULT_CALIBRATION = "crossfit_isotonic"
