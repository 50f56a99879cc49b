"""The common shape of every marketplace feature builder (scikit-learn style).

A builder takes marketplace tables, not arrays, so it cannot be a plain sklearn transformer; it keeps
the contract anyway: ``__init__`` only stores hyperparameters, ``fit`` validates the input columns and
learns state into ``*_`` attributes and returns ``self``, ``transform`` checks it is fitted and checks
the columns, and ``get_feature_names_out`` names every output column. ``block(snapshot)`` is the
vectorised core the pipeline calls with one shared :class:`~features.context.Snapshot`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from features.context import Snapshot, require_columns
from features.docs import FeatureDoc
from marketplace.tables import Marketplace


class MarketplaceFeatureBuilder(BaseEstimator):
    """Base of the builders; subclasses set ``group``/``needs`` and implement ``_fit``/``_docs``/``block``."""

    group: ClassVar[str] = ""
    #: table -> columns this builder reads (checked in fit and transform)
    needs: ClassVar[dict[str, tuple[str, ...]]] = {}

    def fit(self, mp: Marketplace, examples: pd.DataFrame | None = None) -> MarketplaceFeatureBuilder:
        require_columns(mp, self.needs)
        self._fit(mp, examples)
        docs = self._docs()
        self.feature_docs_: dict[str, FeatureDoc] = {d.name: d for d in docs}
        self.feature_names_out_ = np.asarray([d.name for d in docs], dtype=object)
        return self

    def transform(
        self,
        mp: Marketplace,
        as_of: pd.Timestamp | str,
        shop_ids: Sequence[str] | pd.Index | None = None,
        oof: bool = False,
    ) -> pd.DataFrame:
        """Features of ``shop_ids`` (default: every shop) from events strictly before ``as_of``
        (``oof``: out-of-fold text scores for shops seen in fit; only the text builder uses it)."""
        check_is_fitted(self, "feature_names_out_")
        require_columns(mp, self.needs)
        snap = Snapshot.build(mp, as_of, shop_ids, oof=oof)
        snap.check_shops_exist()
        return pd.DataFrame(self.block(snap), index=snap.index, columns=list(self.feature_names_out_))

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        check_is_fitted(self, "feature_names_out_")
        return np.asarray(self.feature_names_out_, dtype=object)

    def describe(self, name: str) -> FeatureDoc:
        check_is_fitted(self, "feature_docs_")
        return self.feature_docs_[name]

    # -- for subclasses ------------------------------------------------------------------------
    def _fit(self, mp: Marketplace, examples: pd.DataFrame | None) -> None:
        """Learn state (``*_`` attributes); default: nothing to learn."""

    def _docs(self) -> list[FeatureDoc]:
        raise NotImplementedError

    def block(self, snap: Snapshot) -> np.ndarray:
        """The (n_shops, n_features) float64 matrix for the snapshot's target shops."""
        raise NotImplementedError


def fit_cutoff(mp: Marketplace, examples: pd.DataFrame | None) -> pd.Timestamp:
    """The latest time fit may learn population statistics from: the last example as-of, else the snapshot."""
    if examples is not None and len(examples):
        return pd.Timestamp(pd.to_datetime(examples["as_of"]).max())
    return pd.Timestamp(mp.snapshot_at)


def stack(columns: list[np.ndarray], n: int) -> np.ndarray:
    if not columns:
        return np.empty((n, 0))
    # one row per feature, filled by plain copies, then viewed transposed: cheaper than column_stack
    # (which checks every array: slow for 1 shop) and than np.array of a list (slow for 1M shops)
    out = np.empty((len(columns), n), dtype=np.float64)
    for j, col in enumerate(columns):
        out[j] = col
    return out.T
