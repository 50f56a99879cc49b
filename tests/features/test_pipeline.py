"""The composed pipeline: shape, names, reasons, pickling, determinism, input checks."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from core.errors import DataContractError
from features.pipeline import ShopFeaturePipeline
from marketplace.tables import Marketplace
from tests.features.factory import AS_OF, examples_for, make_marketplace


@pytest.fixture(scope="module")
def market() -> tuple[Marketplace, pd.DataFrame]:
    return make_marketplace(40, seed=3)


@pytest.fixture(scope="module")
def fitted(market: tuple[Marketplace, pd.DataFrame]) -> ShopFeaturePipeline:
    mp, truth = market
    return ShopFeaturePipeline(text_n_features=2**14, text_folds=3).fit(mp, examples_for(truth))


def test_one_float_row_per_shop_with_named_columns(
    market: tuple[Marketplace, pd.DataFrame], fitted: ShopFeaturePipeline
) -> None:
    mp, _ = market
    X = fitted.transform(mp, AS_OF)
    assert list(X.index) == list(mp.shops["shop_id"])
    assert X.index.name == "shop_id"
    assert list(X.columns) == list(fitted.get_feature_names_out())
    assert (X.dtypes == np.float64).all()
    assert len(set(X.columns)) == X.shape[1] > 100


def test_every_feature_has_a_reason(fitted: ShopFeaturePipeline) -> None:
    for name in fitted.get_feature_names_out():
        doc = fitted.describe(name)
        assert doc.name == name
        assert isinstance(doc.reason(3.0), str) and doc.reason(3.0)
    assert fitted.reason("complaints_counterfeit_30d", 12) == "12 counterfeit complaints in 30 days"
    assert fitted.describe("price_ratio_min").higher_is_riskier is False
    with pytest.raises(KeyError):
        fitted.describe("nope")


def test_pickle_round_trip_and_determinism(
    market: tuple[Marketplace, pd.DataFrame], fitted: ShopFeaturePipeline
) -> None:
    mp, truth = market
    again = pickle.loads(pickle.dumps(fitted))
    a = fitted.transform(mp, AS_OF)
    pd.testing.assert_frame_equal(a, again.transform(mp, AS_OF), check_exact=True)
    refit = ShopFeaturePipeline(text_n_features=2**14, text_folds=3).fit(mp, examples_for(truth))
    pd.testing.assert_frame_equal(a, refit.transform(mp, AS_OF), check_exact=True)


def test_unknown_shop_and_missing_column_are_clear_errors(
    market: tuple[Marketplace, pd.DataFrame], fitted: ShopFeaturePipeline
) -> None:
    mp, _ = market
    with pytest.raises(DataContractError, match="not in the shops table"):
        fitted.transform(mp, AS_OF, ["no-such-shop"])
    from dataclasses import replace

    broken = replace(mp, orders=mp.orders.drop(columns=["amount"]))
    with pytest.raises(DataContractError, match=r"'orders'.*amount"):
        fitted.transform(broken, AS_OF)


def test_examples_are_checked(market: tuple[Marketplace, pd.DataFrame]) -> None:
    mp, truth = market
    with pytest.raises(DataContractError, match="label"):
        ShopFeaturePipeline().fit(mp, examples_for(truth).drop(columns=["label"]))
    bad = examples_for(truth).assign(label=2)
    with pytest.raises(DataContractError, match="0/1"):
        ShopFeaturePipeline().fit(mp, bad)


def test_fit_transform_rows_follow_examples(market: tuple[Marketplace, pd.DataFrame]) -> None:
    mp, truth = market
    ex = pd.concat([examples_for(truth), examples_for(truth, AS_OF - pd.Timedelta(days=60))], ignore_index=True)
    pipe = ShopFeaturePipeline(text_n_features=2**14, text_folds=3)
    X = pipe.fit_transform(mp, ex)
    assert X.index.equals(ex.index)
    later = pipe.transform(mp, AS_OF, oof=True)
    np.testing.assert_array_equal(X.iloc[: len(truth)].to_numpy(), later.to_numpy())
    assert pipe.percentile("orders_365d", 1e9) == 99.0
