"""``ShopFeaturePipeline``: the one feature code path for training, batch scoring and online scoring.

It composes the builders (seller history, listing/review text, brand and price, linked shops) over one
shared point-in-time :class:`~features.context.Snapshot` and returns one float64 row per shop, indexed
by ``shop_id``, columns ``get_feature_names_out()``. ``transform_records`` turns inline shop records
(the API's shape) into contract frames and runs the very same ``transform``. The fitted pipeline is
plain picklable state (numpy arrays, pandas indexes, floats) and deterministic.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from core.errors import DataContractError
from features.base import MarketplaceFeatureBuilder
from features.context import Snapshot, require_columns
from features.docs import FeatureDoc
from features.history import WINDOWS, PopulationCounts, SellerHistoryFeatures
from features.linkage import LinkedShopFeatures
from features.price import BrandPriceFeatures
from features.shop_text import ShopTextFeatures
from marketplace.schema import TABLES, Kind
from marketplace.tables import Marketplace

EXAMPLE_COLUMNS = ("shop_id", "as_of", "label")
#: features whose risk direction is known whatever the world's vocabulary, prices or label bias: more of them
#: never makes a shop less likely a counterfeiter (name prefixes; the booster may constrain them monotone)
MONOTONE_INCREASING = (
    "linked_by_",
    "linked_kinds",
    "linked_counterfeit_shops",
    "complaints_counterfeit_all",
    "complaints_by_test_buy_",
    "complaints_by_brand_owner_",
    "fake_reviews_all",
    "unauthorised_premium_below_half",
)
PERCENTILES = (1, 5, 10, 25, 50, 75, 90, 95, 99)

_DTYPES: dict[Kind, str] = {
    "string": "str",
    "text": "str",
    "int": "int64",
    "float": "float64",
    "bool": "bool",
    "timestamp": "datetime64[us]",
}


def empty_frame(table: str) -> pd.DataFrame:
    """An empty contract table with the loaded dtypes."""
    spec = next(t for t in TABLES if t.name == table)
    return pd.DataFrame({c.name: pd.Series([], dtype=_DTYPES[c.kind]) for c in spec.columns})


def marketplace_from_frames(frames: Mapping[str, pd.DataFrame], snapshot_at: pd.Timestamp) -> Marketplace:
    """A ``Marketplace`` from (some) contract frames; absent tables are empty."""
    tables = {t.name: frames[t.name] if t.name in frames else empty_frame(t.name) for t in TABLES}
    return Marketplace(**tables, snapshot_at=pd.Timestamp(snapshot_at))


def check_examples(examples: pd.DataFrame) -> pd.DataFrame:
    """Examples (shop_id, as_of, label) with as_of as timestamps and 0/1 labels; clear error otherwise."""
    missing = [c for c in EXAMPLE_COLUMNS if c not in examples.columns]
    if missing:
        raise DataContractError("examples", ", ".join(missing), "column(s) missing; need shop_id, as_of, label")
    out = examples.copy()
    try:
        out["as_of"] = pd.to_datetime(out["as_of"])
    except (ValueError, TypeError) as exc:
        raise DataContractError("examples", "as_of", f"not a time: {exc}") from exc
    labels = pd.Series(out["label"]).astype(object)
    bad = ~labels.isin([0, 1, True, False])
    if bad.any():
        raise DataContractError("examples", "label", "labels must be 0/1", out.index[bad].tolist())
    out["label"] = labels.astype(np.int64)
    if out["shop_id"].isna().any():
        raise DataContractError("examples", "shop_id", "missing shop ids", out.index[out["shop_id"].isna()].tolist())
    return out


class ShopFeaturePipeline(BaseEstimator):
    """Seller history + text + brand/price + linkage features of shops at a point in time."""

    def __init__(
        self,
        windows: tuple[int, ...] = WINDOWS,
        prior_strength: float = 10.0,
        low_price_ratio: float = 0.3,
        text_n_features: int = 2**18,
        text_ngram_range: tuple[int, int] = (1, 3),
        text_folds: int = 5,
        text_alpha: float = 1e-5,
        text_max_iter: int = 10,
        text_threshold: float = 0.5,
        text_max_train_texts: int = 200_000,
        text_solver: str = "idf_logistic",
        text_C: float = 0.25,
        random_state: int = 0,
        batch_shops: int = 250_000,
    ) -> None:
        self.windows = windows
        self.prior_strength = prior_strength
        self.low_price_ratio = low_price_ratio
        self.text_n_features = text_n_features
        self.text_ngram_range = text_ngram_range
        self.text_folds = text_folds
        self.text_alpha = text_alpha
        self.text_max_iter = text_max_iter
        self.text_threshold = text_threshold
        self.text_max_train_texts = text_max_train_texts
        self.text_solver = text_solver
        self.text_C = text_C
        self.random_state = random_state
        self.batch_shops = batch_shops

    def _make_builders(self) -> list[MarketplaceFeatureBuilder]:
        return [
            SellerHistoryFeatures(windows=tuple(self.windows), prior_strength=self.prior_strength),
            ShopTextFeatures(
                n_features=self.text_n_features,
                ngram_range=tuple(self.text_ngram_range),  # type: ignore[arg-type]
                n_folds=self.text_folds,
                alpha=self.text_alpha,
                max_iter=self.text_max_iter,
                threshold=self.text_threshold,
                max_train_texts=self.text_max_train_texts,
                solver=self.text_solver,
                C=self.text_C,
                random_state=self.random_state,
            ),
            BrandPriceFeatures(low_price_ratio=self.low_price_ratio),
            LinkedShopFeatures(),
        ]

    # -- fit -----------------------------------------------------------------------------------------------
    def fit(
        self, mp: Marketplace, examples: pd.DataFrame, population: PopulationCounts | None = None
    ) -> ShopFeaturePipeline:
        """Learn population rates, the brand table, the adverse-linkage index, the OOF text models and the
        percentile tables used for reasons. ``examples``: shop_id, as_of, label (1 = counterfeit).

        ``population``: the history builder's population counts summed over a marketplace larger than
        ``mp`` (a streamed fit: ``mp`` then needs only the examples' shops, the verdict shops and the
        global tables; everything else the fit learns comes from those)."""
        self.fit_transform(mp, examples, population)
        return self

    def fit_transform(
        self, mp: Marketplace, examples: pd.DataFrame, population: PopulationCounts | None = None
    ) -> pd.DataFrame:
        """Fit, then return the training matrix: features of each example row at its own ``as_of`` with
        out-of-fold text scores (index = ``examples.index``)."""
        examples = check_examples(examples)
        builders = self._make_builders()
        for b in builders:
            if isinstance(b, SellerHistoryFeatures):
                b.fit(mp, examples, population)
            else:
                b.fit(mp, examples)
        self.builders_ = builders
        names: list[str] = []
        docs: dict[str, FeatureDoc] = {}
        for b in builders:
            names += list(b.get_feature_names_out())
            docs.update(b.feature_docs_)
        if len(set(names)) != len(names):
            raise RuntimeError("feature names collide between builders")
        self.feature_names_out_ = np.asarray(names, dtype=object)
        #: the output columns as one Index, built once (a list costs an Index per call online)
        self.columns_ = pd.Index(names, dtype=object)
        self.feature_docs_ = docs
        self.n_features_out_ = len(names)
        X = self.transform_examples(mp, examples, oof=True)
        values = X.to_numpy(dtype=np.float64)
        with np.errstate(all="ignore"):
            table = np.full((len(PERCENTILES), values.shape[1]), np.nan)
            for j in range(values.shape[1]):
                col = values[:, j]
                col = col[~np.isnan(col)]
                if len(col):
                    table[:, j] = np.percentile(col, PERCENTILES)
        self.percentiles_ = pd.DataFrame(table, index=list(PERCENTILES), columns=names)
        return X

    # -- transform -----------------------------------------------------------------------------------------
    def transform(
        self,
        mp: Marketplace | Mapping[str, Any],
        as_of: pd.Timestamp | str,
        shop_ids: Sequence[str] | pd.Index | None = None,
        oof: bool = False,
    ) -> pd.DataFrame:
        """Features of ``shop_ids`` (default: every shop of ``mp``) from events strictly before ``as_of``.

        ``mp``: a ``Marketplace``, or a mapping of all nine table names to DataFrames / ColumnTables."""
        check_is_fitted(self, "builders_")
        for b in self.builders_:
            require_columns(mp, b.needs)
        snap = Snapshot.build(mp, as_of, shop_ids, oof=oof)
        batch = int(getattr(self, "batch_shops", 250_000))  # pipelines pickled before this knob existed
        if snap.n > batch > 0:
            # shops in batches: a row depends only on its own shop (partition safety, tested), so the
            # result is identical and the per-event working arrays are a batch's, not all shops'
            parts = [self.transform(mp, as_of, snap.index[lo : lo + batch], oof=oof) for lo in range(0, snap.n, batch)]
            return pd.concat(parts)
        snap.check_shops_exist()
        blocks = [b.block(snap) for b in self.builders_]
        values = np.concatenate(blocks, axis=1) if blocks else np.empty((snap.n, 0))
        frame = pd.DataFrame(values, index=snap.index, columns=self.columns_, copy=False)
        return frame

    def transform_examples(self, mp: Marketplace, examples: pd.DataFrame, oof: bool = True) -> pd.DataFrame:
        """Features of each (shop_id, as_of) example row at its own as_of; index = ``examples.index``."""
        check_is_fitted(self, "builders_")
        ex = (
            check_examples(examples)
            if "label" in examples.columns
            else examples.assign(as_of=pd.to_datetime(examples["as_of"]))
        )
        parts: list[pd.DataFrame] = []
        for as_of, group in ex.groupby("as_of", sort=True):
            ids = group["shop_id"].astype("str")
            unique_ids = pd.Index(ids).unique()
            X = self.transform(mp, pd.Timestamp(str(as_of)), unique_ids, oof=oof)
            rows = X.reindex(pd.Index(ids.to_numpy(), dtype="str"))
            rows.index = group.index
            parts.append(rows)
        if not parts:
            return pd.DataFrame(columns=self.feature_names_out_.tolist(), dtype=np.float64)
        return pd.concat(parts).reindex(ex.index)

    def transform_records(self, records: Sequence[Any], as_of: pd.Timestamp | str) -> pd.DataFrame:
        """The online path: inline shop records (``marketplace.records.ShopRecord``) -> column tables
        (:mod:`features.online`, the same columns as ``records_to_frames`` without pandas' per-frame cost)
        -> the same ``transform``. Equals the batch rows exactly (tested)."""
        from features.online import records_to_tables

        return self.transform(records_to_tables(records), as_of)

    def transform_frames(
        self, frames: Mapping[str, pd.DataFrame], as_of: pd.Timestamp | str, shop_ids: Sequence[str] | None = None
    ) -> pd.DataFrame:
        """Features from contract frames already in memory (absent tables read as empty)."""
        return self.transform(marketplace_from_frames(frames, pd.Timestamp(as_of)), as_of, shop_ids)

    # -- names and reasons ---------------------------------------------------------------------------------
    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        check_is_fitted(self, "feature_names_out_")
        return np.asarray(self.feature_names_out_, dtype=object)

    def monotone_constraints(self) -> list[int]:
        """Per output column, LightGBM's ``monotone_constraints`` entry: 1 for ``MONOTONE_INCREASING``, else 0."""
        return [int(str(n).startswith(MONOTONE_INCREASING)) for n in self.get_feature_names_out()]

    def describe(self, name: str) -> FeatureDoc:
        """Reason template and direction of feature ``name``."""
        check_is_fitted(self, "feature_docs_")
        try:
            return self.feature_docs_[name]
        except KeyError:
            raise KeyError(f"unknown feature {name!r}") from None

    def reason(self, name: str, value: float) -> str:
        """``describe(name)`` filled with ``value``, e.g. "12 counterfeit complaints in 30 days"."""
        return self.describe(name).reason(value)

    def percentile(self, name: str, value: float) -> float:
        """Approximate percentile (0-100) of ``value`` among the training examples' values of ``name``."""
        check_is_fitted(self, "percentiles_")
        q = self.percentiles_[name].to_numpy()
        if np.isnan(value) or np.isnan(q).all():
            return float("nan")
        return float(np.interp(value, q, np.asarray(PERCENTILES, dtype=float)))
