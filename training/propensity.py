"""Inverse-propensity weights for the labelled training examples: a correction for investigation bias.

Verdicts come from investigations, and investigators pick the shops that look blatant; the labelled set
over-represents them and a model fitted on it learns "the chance an investigation finds counterfeits" for
the kind of shop that gets investigated. Weighting each labelled example by 1 / P(labelled | features)
(estimated on the training rows, labelled against the unlabelled sample) gives the rarely-investigated
kind of shop the weight of the population it stands for, as in selection-bias corrections for
positive-unlabelled learning. The weights are clipped (``clip``) and rescaled to a mean of 1 over the
labelled rows, so the labelled / unlabelled balance is unchanged.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import NDArray


def propensity_weights(
    X: pd.DataFrame, labelled: NDArray[np.bool_], seed: int = 0, clip: tuple[float, float] = (0.25, 4.0)
) -> NDArray[np.float64]:
    """A weight per row of ``X``: 1 / P(labelled | x), relative, for labelled rows; 1 for the others.

    P(labelled | x) comes from a small LightGBM classifier (labelled vs the unlabelled sample) fitted
    out-of-fold (two folds), so no row's weight comes from a model that saw it."""
    import lightgbm as lgb

    lab = np.asarray(labelled, dtype=bool)
    out = np.ones(len(lab))
    if lab.all() or not lab.any():
        return out
    m = X.to_numpy(dtype=np.float64)
    fold = np.random.default_rng(seed).permutation(len(lab)) % 2
    p = np.empty(len(lab))
    params = {
        "objective": "binary",
        "learning_rate": 0.05,
        "num_leaves": 15,
        "min_data_in_leaf": 50,
        "feature_fraction": 0.8,
        "verbose": -1,
        "seed": seed,
        "num_threads": 1,
        "deterministic": True,
        "force_row_wise": True,
    }
    for k in (0, 1):
        tr = fold != k
        booster = lgb.train(params, lgb.Dataset(m[tr], label=lab[tr].astype(float)), num_boost_round=100)
        p[~tr] = booster.predict(m[~tr], num_threads=1)
    inv = 1.0 / np.clip(p[lab], 1e-6, 1.0)
    inv = inv / np.mean(inv)
    inv = np.clip(inv, *clip)
    out[lab] = inv / np.mean(inv)
    return out
