"""``ShopRiskModel``: fitted feature pipeline + LightGBM booster + calibrator + thresholds + reasons.

One object, pickled whole into the MLflow model (``models.pyfunc``), so what is served is exactly what
was trained and evaluated. Scoring paths:

* ``score_features(X)`` — a feature frame (columns checked against training) → score and tier;
* ``explain(X)`` — reasons in words (Saabas path credits, see ``models.reasons``);
* ``score_marketplace(mp, as_of)`` / ``score_records(records, as_of)`` — raw marketplace data through the
  fitted feature pipeline (only for models trained from a marketplace).

LightGBM's thread count is pinned (``num_threads``, from ``settings.lightgbm_threads`` in serving):
unpinned OpenMP threads fighting another process cost ~80× on single-row predictions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from numpy.typing import NDArray

from models.calibration import Calibrator
from models.ranking import ScoreRanking
from models.reasons import FeatureText, ReasonExplainer
from models.thresholds import EXPLAINED_TIERS, Thresholds

if TYPE_CHECKING:
    from features.pipeline import ShopFeaturePipeline


class FeatureMismatch(ValueError):
    """The feature frame does not carry the columns the model was trained on."""


class ShopRiskModel:
    """A fitted shop-risk model (see module docstring). Build it with ``training.fit.fit_risk_model``."""

    def __init__(
        self,
        booster: lgb.Booster,
        calibrator: Calibrator,
        thresholds: Thresholds,
        explainer: ReasonExplainer,
        pipeline: ShopFeaturePipeline | None = None,
        info: dict[str, Any] | None = None,
        num_threads: int = 1,
        reference_scores: NDArray[np.float64] | None = None,
    ) -> None:
        self.booster = booster
        self.calibrator = calibrator
        self.thresholds = thresholds
        self.explainer = explainer
        self.pipeline = pipeline
        self.info = dict(info or {})
        self.num_threads = num_threads
        self.feature_names: list[str] = list(booster.feature_name())
        #: calibrated scores of the population sample the thresholds were placed on (sorted): the reference a
        #: score is ranked in when no marketplace is loaded (``models.ranking``); None in models older than it
        self.reference_scores = None if reference_scores is None else np.sort(np.asarray(reference_scores, np.float64))

    # -- features ---------------------------------------------------------------------------------
    def _matrix(self, X: pd.DataFrame | NDArray[np.float64]) -> NDArray[np.float64]:
        if isinstance(X, pd.DataFrame):
            cols = [str(c) for c in X.columns]
            if cols != self.feature_names:
                missing = [c for c in self.feature_names if c not in set(cols)]
                if missing:
                    raise FeatureMismatch(f"feature frame lacks {len(missing)} model features, e.g. {missing[:5]}")
                X = X[self.feature_names]
            return X.to_numpy(dtype=np.float64)
        a = np.asarray(X, dtype=np.float64)
        if a.ndim != 2 or a.shape[1] != len(self.feature_names):
            raise FeatureMismatch(f"expected {len(self.feature_names)} feature columns, got shape {a.shape}")
        return a

    def ranking(self) -> ScoreRanking | None:
        """The model's own reference for ranks: its population sample (None for a model pickled before it)."""
        ref = getattr(self, "reference_scores", None)
        return None if ref is None else ScoreRanking(ref, None, source="training_population")

    def set_threads(self, n: int) -> None:
        self.num_threads = int(n)

    # -- scoring ----------------------------------------------------------------------------------
    def raw_scores(self, X: pd.DataFrame | NDArray[np.float64]) -> NDArray[np.float64]:
        m = self._matrix(X)
        if len(m) == 0:
            return np.zeros(0)
        return np.asarray(self.booster.predict(m, num_threads=self.num_threads), dtype=np.float64)

    def predict_proba(self, X: pd.DataFrame | NDArray[np.float64]) -> NDArray[np.float64]:
        return self.calibrator.transform(self.raw_scores(X))

    def score_features(self, X: pd.DataFrame) -> pd.DataFrame:
        """Calibrated score and tier per row (index kept)."""
        s = self.predict_proba(X)
        index = X.index if isinstance(X, pd.DataFrame) else pd.RangeIndex(len(s))
        return pd.DataFrame({"score": s, "tier": self.thresholds.tier(s).astype(str)}, index=index)

    def explain(self, X: pd.DataFrame | NDArray[np.float64], top: int = 3) -> list[list[str]]:
        return self.explainer.explain(self.booster, self._matrix(X), top=top, num_threads=self.num_threads)

    def score_and_explain(
        self, X: pd.DataFrame, top: int = 3, tiers: tuple[str, ...] = EXPLAINED_TIERS
    ) -> pd.DataFrame:
        """Score every row; reasons only for rows in ``tiers`` (empty list otherwise) — the hot path."""
        m = self._matrix(X)
        out = self.score_features(X)
        reasons: list[list[str]] = [[] for _ in range(len(out))]
        want = np.flatnonzero(out["tier"].isin(tiers).to_numpy())
        if len(want):
            for i, r in zip(want, self.explainer.explain(self.booster, m[want], top, self.num_threads), strict=True):
                reasons[int(i)] = r
        out["reasons"] = reasons
        return out

    def _need_pipeline(self) -> ShopFeaturePipeline:
        if self.pipeline is None:
            raise RuntimeError("this model was trained from a feature table; it scores feature frames only")
        return self.pipeline

    def score_marketplace(
        self, mp: Any, as_of: pd.Timestamp, shop_ids: list[str] | None = None, top: int = 3, features: bool = False
    ) -> pd.DataFrame:
        """Score shops of a marketplace as of ``as_of`` (features from events strictly before it).
        ``features``: a ``features`` column too, the JSON of each explained row's feature values (what the
        score was computed from; a case's evidence snapshot keeps it), None for other rows."""
        X = self._need_pipeline().transform(mp, as_of, shop_ids=shop_ids)[self.feature_names]
        out = self.score_and_explain(X, top=top)
        if features:
            out["features"] = feature_json(X, out["tier"].isin(EXPLAINED_TIERS).to_numpy())
        return out

    def score_records(self, records: list[Any], as_of: pd.Timestamp, top: int = 3) -> pd.DataFrame:
        """Score raw shop records (``marketplace.records.ShopRecord``) as of ``as_of``."""
        X = self._need_pipeline().transform_records(records, as_of)
        return self.score_and_explain(X[self.feature_names], top=top)


def feature_json(X: pd.DataFrame, want: Any) -> list[str | None]:
    """Each wanted row of ``X`` as JSON ``{feature: value}`` (NaN as null), other rows None."""
    import json

    names = list(X.columns)
    values = X.to_numpy(dtype=np.float64)
    out: list[str | None] = [None] * len(X)
    for i in np.flatnonzero(want):
        row = values[int(i)].tolist()
        out[int(i)] = json.dumps({n: (None if v != v else v) for n, v in zip(names, row, strict=True)})
    return out


def feature_texts(pipeline: ShopFeaturePipeline | None, names: list[str]) -> dict[str, FeatureText]:
    """How each feature reads in a reason: its ``FeatureDoc`` from the pipeline's ``describe(name)``
    (features it does not document, and a model trained from a table, have none)."""
    out: dict[str, FeatureText] = {}
    if pipeline is None:
        return out
    for n in names:
        try:
            doc = pipeline.describe(n)
        except KeyError:
            continue
        if doc.template:
            out[n] = FeatureText(template=doc.template, higher_is_riskier=doc.higher_is_riskier)
    return out
