"""One LightGBM fit, shared by every training path (``--table``, ``--data``, the benchmarks).

Why these choices:

* **Deterministic.** ``deterministic=True``, ``force_row_wise=True``, a fixed ``num_threads`` and
  every seed derived from one ``seed``: the same data and seed give bit-identical trees.
* **Class imbalance** with ``scale_pos_weight = sqrt(neg / pos)``. Counterfeiters are a few percent of
  labelled shops; unweighted, the gradient from positives is small and early stopping fires before the
  minority patterns are learnt. Full re-weighting (``is_unbalance``, i.e. ``neg / pos``) makes each rare
  positive weigh 15-50×, so a handful of noisy labels dominate the splits and the validation loss is
  noisy. The square root sits between the two. The probability shift it causes is undone by the
  isotonic calibration fitted afterwards on held-out rows, so the weighting only changes ranking.
* **Early stopping** on a validation set the booster never trains on (binary log-loss, unweighted).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from numpy.typing import NDArray


@dataclass(frozen=True)
class BoosterConfig:
    learning_rate: float = 0.02
    num_leaves: int = 31
    min_child_samples: int = 20
    feature_fraction: float = 0.8
    bagging_fraction: float = 0.8
    bagging_freq: int = 1
    lambda_l2: float = 1.0
    max_rounds: int = 2000
    early_stopping_rounds: int = 100
    #: early stopping evaluates its validation set after every round; beyond this many rows (a
    #: stratified, seeded sample) the loss estimate is already stable and the evaluation only costs time
    early_stopping_max_rows: int = 10_000
    #: "sqrt" (default), "full" (neg/pos, like is_unbalance) or "none"
    imbalance: str = "sqrt"
    #: one thread by default: on a shared machine OpenMP threads that wait for a busy core make
    #: LightGBM 30× slower (measured here: 1 s with 1 thread, 35 s with 2 under load)
    num_threads: int = 1
    #: marketplace runs constrain the features whose risk direction is known (linkage to convicted shops,
    #: counterfeit complaints, fake-goods reviews, cheap unauthorised premium listings) to raise the score
    #: monotonically (``features.pipeline.MONOTONE_INCREASING``): labels biased toward blatant shops then
    #: cannot teach the trees that such evidence lowers risk where blatant wording is absent
    monotone: bool = True
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def for_pipeline(self, pipeline: Any) -> BoosterConfig:
        """This config with the fitted ``pipeline``'s monotone constraints when ``monotone`` (local and Dask
        training alike)."""
        if not self.monotone:
            return self
        return replace(self, extra={"monotone_constraints": pipeline.monotone_constraints(), **self.extra})

    def params_for(self, y: NDArray[np.float64], weight: NDArray[np.float64] | None = None) -> dict[str, Any]:
        """Parameters for labels ``y`` (imbalance from the weighted class totals)."""
        w = np.ones(len(y)) if weight is None else np.asarray(weight, dtype=np.float64)
        return self.params(float(np.sum(w * y)), float(np.sum(w * (1.0 - y))))

    def params(self, n_pos: float, n_neg: float) -> dict[str, Any]:
        if self.imbalance not in ("sqrt", "full", "none"):
            raise ValueError(f"imbalance must be sqrt, full or none, got {self.imbalance!r}")
        ratio = n_neg / max(n_pos, 1)
        spw = {"sqrt": math.sqrt(ratio), "full": ratio, "none": 1.0}[self.imbalance]
        p: dict[str, Any] = {
            "objective": "binary",
            "metric": "binary_logloss",
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_child_samples": self.min_child_samples,
            "feature_fraction": self.feature_fraction,
            "bagging_fraction": self.bagging_fraction,
            "bagging_freq": self.bagging_freq,
            "lambda_l2": self.lambda_l2,
            "scale_pos_weight": spw,
            "num_threads": self.num_threads,
            "deterministic": True,
            "force_row_wise": True,
            "seed": self.seed,
            "bagging_seed": self.seed + 1,
            "feature_fraction_seed": self.seed + 2,
            "data_random_seed": self.seed + 3,
            "verbosity": -1,
        }
        p.update(self.extra)
        return p

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _early_stopping_rows(y: NDArray[np.float64], max_rows: int, seed: int) -> NDArray[np.int64]:
    """All rows, or a class-stratified seeded sample of ``max_rows`` of them."""
    n = len(y)
    if n <= max_rows:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    picks = []
    for cls in (0.0, 1.0):
        idx = np.flatnonzero(y == cls)
        k = max(1, round(max_rows * len(idx) / n))
        picks.append(rng.choice(idx, min(k, len(idx)), replace=False))
    return np.sort(np.concatenate(picks))


@dataclass
class FitResult:
    booster: lgb.Booster
    best_iteration: int
    params: dict[str, Any]
    #: raw (uncalibrated) booster scores on the validation rows
    valid_raw: NDArray[np.float64]


def check_training_data(X_train: pd.DataFrame, y_train: NDArray[np.float64], X_valid: pd.DataFrame) -> None:
    """What every fit needs (local or on a cluster): the same feature columns, and both classes."""
    if list(X_train.columns) != list(X_valid.columns):
        raise ValueError("training and validation feature columns differ")
    n_pos = int(np.sum(y_train))
    n_neg = len(y_train) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"training data needs both classes; got {n_pos} positive and {n_neg} negative rows")


def fit_booster(
    X_train: pd.DataFrame,
    y_train: NDArray[np.float64],
    X_valid: pd.DataFrame,
    y_valid: NDArray[np.float64],
    config: BoosterConfig,
    weight: NDArray[np.float64] | None = None,
) -> FitResult:
    """Train with early stopping on ``(X_valid, y_valid)``; returns the booster cut at its best round.

    ``weight``: optional per-row training weights (e.g. unlabelled negatives down-weighted)."""
    check_training_data(X_train, y_train, X_valid)
    params = config.params_for(y_train, weight)
    names = [str(c) for c in X_train.columns]
    train_ds = lgb.Dataset(
        X_train.to_numpy(dtype=np.float64),
        label=y_train,
        weight=weight,
        feature_name=names,
        free_raw_data=True,
        params={"verbosity": -1},
    )
    Xv = X_valid.to_numpy(dtype=np.float64)
    es = _early_stopping_rows(y_valid, config.early_stopping_max_rows, config.seed)
    valid_ds = lgb.Dataset(Xv[es], label=y_valid[es], reference=train_ds)
    booster = lgb.train(
        params,
        train_ds,
        num_boost_round=config.max_rounds,
        valid_sets=[valid_ds],
        valid_names=["valid"],
        callbacks=[lgb.early_stopping(config.early_stopping_rounds, verbose=False)],
    )
    best = int(booster.best_iteration or booster.current_iteration())
    # keep only the trees up to the best round: smaller model, faster serving
    booster = lgb.Booster(model_str=booster.model_to_string(num_iteration=best))
    valid_raw = np.asarray(booster.predict(Xv, num_threads=config.num_threads), dtype=np.float64)
    return FitResult(booster=booster, best_iteration=best, params=params, valid_raw=valid_raw)
