"""Baselines trained and scored in the same run, on the same examples: what the model must beat.

* **Blatant-keyword rule** — the share of a shop's listings (titles and descriptions at creation, and
  title edits, before the as-of time) that say they are copies ("replica", "1:1", "A货", "高仿", …;
  ``features.lexicon.blatant_title``, negations removed). What a trust-and-safety team runs before any
  model; it catches the counterfeiters that say so and misses the ones that hide it.
* **Logistic regression on the same features** — median imputation, standardisation, L2 logistic
  regression (class-balanced), fitted on the same training examples as the booster.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from features.lexicon import blatant_title
from marketplace.tables import Marketplace


class KeywordRule:
    """Share of listings with blatant copy wording, as of a time (event times strictly before it)."""

    def __init__(self, mp: Marketplace, shop_ids: pd.Series | None = None) -> None:
        """``shop_ids``: only these shops will be scored (reads only their listings: the regex is the cost)."""
        lst = mp.listings
        edits = mp.listing_edits
        if shop_ids is not None:
            wanted = pd.Index(pd.unique(shop_ids.astype(str)))
            lst = lst[pd.Index(lst["shop_id"].astype(str)).isin(wanted)]
            edits = edits[pd.Index(edits["listing_id"].astype(str)).isin(pd.Index(lst["listing_id"].astype(str)))]
        text = lst["title"].astype(str).fillna("") + " " + lst["description"].astype(str).fillna("")
        self._l_shop = lst["shop_id"].astype(str).to_numpy()
        self._l_time = lst["created_at"].to_numpy()
        self._l_hit = np.fromiter((blatant_title(t.lower()) for t in text), dtype=bool, count=len(text))
        shop_of = pd.Series(self._l_shop, index=lst["listing_id"].astype(str).to_numpy())
        self._e_shop = shop_of.reindex(edits["listing_id"].astype(str).to_numpy()).to_numpy()
        self._e_time = edits["edited_at"].to_numpy()
        titles = edits["title"].astype(str).fillna("")
        self._e_hit = np.fromiter((blatant_title(t.lower()) for t in titles), dtype=bool, count=len(titles))

    def score(self, shop_ids: pd.Series, as_of: pd.Timestamp) -> NDArray[np.float64]:
        t = np.datetime64(pd.Timestamp(as_of).to_datetime64())
        lm = self._l_time < t
        n = pd.Series(self._l_shop[lm]).value_counts()
        hits = pd.Series(self._l_shop[lm & self._l_hit]).value_counts()
        ehits = pd.Series(self._e_shop[(self._e_time < t) & self._e_hit]).value_counts()
        ids = shop_ids.astype(str).to_numpy()
        total = n.reindex(ids).fillna(0).to_numpy()
        flagged = hits.reindex(ids).fillna(0).to_numpy() + ehits.reindex(ids).fillna(0).to_numpy()
        with np.errstate(invalid="ignore", divide="ignore"):
            share = np.where(total > 0, np.minimum(flagged / np.maximum(total, 1), 1.0), 0.0)
        return share.astype(np.float64)

    def score_examples(self, examples: pd.DataFrame) -> NDArray[np.float64]:
        out = np.zeros(len(examples))
        for as_of, idx in examples.groupby("as_of", sort=False).groups.items():
            pos = examples.index.get_indexer(idx)
            out[pos] = self.score(examples.loc[idx, "shop_id"], pd.Timestamp(str(as_of)))
        return out


def fit_logistic(
    X: pd.DataFrame, y: NDArray[np.float64], seed: int, weight: NDArray[np.float64] | None = None
) -> Pipeline:
    """Fitted on the booster's training examples with the same example weights."""
    model = make_pipeline(
        SimpleImputer(strategy="median", keep_empty_features=True),
        StandardScaler(),
        LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000, random_state=seed),
    )
    model.fit(X.to_numpy(dtype=np.float64), y, logisticregression__sample_weight=weight)
    return model


def logistic_scores(model: Pipeline, X: pd.DataFrame) -> NDArray[np.float64]:
    return np.asarray(model.predict_proba(X.to_numpy(dtype=np.float64))[:, 1], dtype=np.float64)
