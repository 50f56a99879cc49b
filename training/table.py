"""Bring-your-own features: train, evaluate and log a model from a ready feature table.

A table is Parquet or CSV with one row per example, a binary label column, an optional time column
and numeric feature columns (everything else). With ``--time`` the split is by time (oldest rows
train, newest test), otherwise stratified at random. Inside the training part a held-out slice (the
newest, or a stratified sample) drives early stopping and then fits the calibrator and thresholds, so
no score is calibrated on rows its booster trained on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from sklearn.model_selection import train_test_split

from core.errors import DajiaError
from models.model import ShopRiskModel
from models.thresholds import ThresholdPolicy
from training.booster import BoosterConfig
from training.fit import fit_risk_model
from training.metrics import binary_metrics


class TableError(DajiaError):
    """The feature table cannot be used for training; the message names the column or rows."""


def read_table(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise TableError(f"feature table {path} does not exist")
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return pd.read_parquet(path)
    if suffix in (".csv", ".txt"):
        return pd.read_csv(path)
    raise TableError(f"feature table {path}: unknown format {suffix!r} (use .parquet or .csv)")


def prepare_table(
    frame: pd.DataFrame, label: str, time_col: str | None = None, id_col: str | None = None
) -> tuple[pd.DataFrame, NDArray[np.float64], pd.Series | None]:
    """Split a table into numeric features, a 0/1 label and (optionally) times; clear errors otherwise."""
    if label not in frame.columns:
        raise TableError(f"label column {label!r} not in the table (columns: {list(frame.columns)[:20]})")
    if time_col is not None and time_col not in frame.columns:
        raise TableError(f"time column {time_col!r} not in the table")
    y_raw = frame[label]
    if y_raw.isna().any():
        bad = list(np.flatnonzero(y_raw.isna().to_numpy())[:5])
        raise TableError(f"label column {label!r} has missing values at rows {bad}")
    if y_raw.dtype == bool:
        y = y_raw.to_numpy(dtype=np.float64)
    else:
        try:
            y = pd.to_numeric(y_raw).to_numpy(dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise TableError(f"label column {label!r} is not numeric/boolean: {exc}") from exc
    bad_mask = ~np.isin(y, (0.0, 1.0))
    if bad_mask.any():
        rows = list(np.flatnonzero(bad_mask)[:5])
        raise TableError(f"label column {label!r} must be 0/1; rows {rows} hold {list(y[bad_mask][:5])}")
    times = None
    if time_col is not None:
        times = pd.to_datetime(frame[time_col], errors="coerce")
        if times.isna().any():
            rows = list(np.flatnonzero(times.isna().to_numpy())[:5])
            raise TableError(f"time column {time_col!r} has missing or unparseable values at rows {rows}")
    drop = [c for c in (label, time_col, id_col) if c is not None]
    X = frame.drop(columns=drop)
    non_numeric = [c for c in X.columns if not (pd.api.types.is_numeric_dtype(X[c]) or X[c].dtype == bool)]
    if non_numeric:
        raise TableError(f"feature columns must be numeric; not numeric: {non_numeric[:10]}")
    if X.shape[1] == 0:
        raise TableError("the table has no feature columns besides the label/time")
    X = X.astype(np.float64)
    X.columns = [str(c) for c in X.columns]
    return X.reset_index(drop=True), y, None if times is None else times.reset_index(drop=True)


@dataclass
class TableSplit:
    train: NDArray[np.int64]
    test: NDArray[np.int64]
    kind: str


def split_table(y: NDArray[np.float64], times: pd.Series | None, test_fraction: float, seed: int) -> TableSplit:
    idx = np.arange(len(y))
    if times is not None:
        order = np.argsort(times.to_numpy(), kind="stable")
        cut = round(len(y) * (1 - test_fraction))
        # never split rows with the same timestamp across train and test
        t_sorted = times.to_numpy()[order]
        while 0 < cut < len(y) and t_sorted[cut] == t_sorted[cut - 1]:
            cut += 1
        return TableSplit(train=np.sort(order[:cut]), test=np.sort(order[cut:]), kind="time")
    tr, te = train_test_split(idx, test_size=test_fraction, random_state=seed, stratify=y)
    return TableSplit(train=np.sort(tr), test=np.sort(te), kind="stratified")


@dataclass
class TableRun:
    model: ShopRiskModel
    metrics: dict[str, float]
    split: TableSplit
    test_scores: NDArray[np.float64]
    y_test: NDArray[np.float64]
    info: dict[str, Any] = field(default_factory=dict)


def fit_on_rows(
    X: pd.DataFrame,
    y: NDArray[np.float64],
    train_idx: NDArray[np.int64],
    times: pd.Series | None,
    config: BoosterConfig,
    policy: ThresholdPolicy,
    holdout_fraction: float = 0.2,
) -> ShopRiskModel:
    """Fit booster + calibrator + thresholds on ``train_idx``; the held-out slice is the newest rows
    (time split) or a stratified sample."""
    y_tr = y[train_idx]
    if times is not None:
        order = train_idx[np.argsort(times.to_numpy()[train_idx], kind="stable")]
        cut = round(len(order) * (1 - holdout_fraction))
        fit_idx, hold_idx = order[:cut], order[cut:]
    else:
        fit_idx, hold_idx = train_test_split(
            train_idx, test_size=holdout_fraction, random_state=config.seed, stratify=y_tr
        )
    if y[hold_idx].sum() == 0 or y[fit_idx].sum() == 0:
        raise TableError("the training part has too few positive rows to hold out a validation slice")
    return fit_risk_model(
        X.iloc[fit_idx],
        y[fit_idx],
        X.iloc[hold_idx],
        y[hold_idx],
        config,
        policy,
        population_scores_X=X.iloc[hold_idx],
        population_size=len(y),
    )


def train_table(
    frame: pd.DataFrame,
    label: str,
    time_col: str | None = None,
    test_fraction: float = 0.3,
    config: BoosterConfig | None = None,
    policy: ThresholdPolicy | None = None,
    k: int = 100,
    split: TableSplit | None = None,
) -> TableRun:
    """The whole ``--table`` path without tracking: prepare, split, fit, score the test part."""
    config = config or BoosterConfig()
    policy = policy or ThresholdPolicy()
    X, y, times = prepare_table(frame, label, time_col)
    if split is None:
        split = split_table(y, times, test_fraction, config.seed)
    model = fit_on_rows(X, y, split.train, times, config, policy)
    s = model.score_features(X.iloc[split.test])["score"].to_numpy()
    y_test = y[split.test]
    metrics = binary_metrics(y_test, s, k)
    return TableRun(
        model=model,
        metrics=metrics,
        split=split,
        test_scores=s,
        y_test=y_test,
        info={"rows": len(y), "features": X.shape[1], "split": split.kind},
    )
