"""The one fit of a shop-risk model, for local and Dask training alike: booster (early stopping on the
held-out slice), isotonic calibration and thresholds on that slice, the reason explainer."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from models.calibration import CALIBRATORS, DEFAULT_CALIBRATION
from models.model import ShopRiskModel, feature_texts
from models.reasons import FeatureText, ReasonExplainer
from models.thresholds import ThresholdPolicy, choose_thresholds
from training.booster import BoosterConfig, FitResult, fit_booster

if TYPE_CHECKING:
    from features.pipeline import ShopFeaturePipeline

#: population rows scored to place the capacity threshold (seeded sample beyond this)
POPULATION_SAMPLE = 20_000


def fit_risk_model(
    X_fit: pd.DataFrame,
    y_fit: NDArray[np.float64],
    X_hold: pd.DataFrame,
    y_hold: NDArray[np.float64],
    config: BoosterConfig,
    policy: ThresholdPolicy,
    population_scores_X: pd.DataFrame | None = None,
    population_size: int | None = None,
    pipeline: ShopFeaturePipeline | None = None,
    texts: dict[str, FeatureText] | None = None,
    info: dict[str, Any] | None = None,
    weight: NDArray[np.float64] | None = None,
    fitted: FitResult | None = None,
    calibration: str = DEFAULT_CALIBRATION,
) -> ShopRiskModel:
    """Booster with early stopping on the held-out slice, then calibrator and thresholds on that slice.

    ``population_scores_X`` is a sample of the population that will be scored (e.g. every shop at the
    held-out as-of dates, labelled or not), used for the capacity threshold; ``population_size`` is how
    many shops one sweep scores. ``fitted``: a booster already fitted on these rows elsewhere (Dask:
    ``dajia.scaleout.training.fit_booster_on_cluster``), so local and cluster training share the rest.
    ``calibration``: a name of ``models.calibration.CALIBRATORS``.
    """
    fit = fitted if fitted is not None else fit_booster(X_fit, y_fit, X_hold, y_hold, config, weight=weight)
    if calibration not in CALIBRATORS:
        raise ValueError(f"calibration must be one of {', '.join(CALIBRATORS)}, got {calibration!r}")
    calibrator = CALIBRATORS[calibration]().fit(fit.valid_raw, y_hold)
    hold_scores = calibrator.transform(fit.valid_raw)
    if population_scores_X is None:
        pop_scores = hold_scores
    else:
        pop = population_scores_X.to_numpy(dtype=np.float64)
        if len(pop) > POPULATION_SAMPLE:  # a quantile needs no more rows; predicting all cost 20% of the fit
            pop = pop[np.sort(np.random.default_rng(config.seed).choice(len(pop), POPULATION_SAMPLE, replace=False))]
        pop_raw = np.asarray(fit.booster.predict(pop, num_threads=config.num_threads), dtype=np.float64)
        pop_scores = calibrator.transform(pop_raw)
    thresholds = choose_thresholds(hold_scores, y_hold, pop_scores, population_size or len(pop_scores), policy)
    names = [str(c) for c in X_fit.columns]
    explainer = ReasonExplainer(fit.booster, texts or feature_texts(pipeline, names), X_fit.to_numpy(np.float64))
    meta = {"best_iteration": fit.best_iteration, "params": fit.params, **(info or {})}
    return ShopRiskModel(
        fit.booster, calibrator, thresholds, explainer, pipeline=pipeline, info=meta, reference_scores=pop_scores
    )
