"""scikit-learn's estimator checks for the array components of the feature builders.

The marketplace builders (``SellerHistoryFeatures``, ``ShopTextFeatures``, ``BrandPriceFeatures``,
``LinkedShopFeatures``, ``ShopFeaturePipeline``) take a ``Marketplace`` of tables plus a time, not an
array ``X``: none of sklearn's array checks can be fed to them. They keep the contract by hand and are
tested for it below (hyperparameters only in ``__init__``, ``get_params``/``set_params``/``clone``,
unfitted transform refused, names out).

The only array components are the text ones (``HashedTextClassifier``, ``TextNormaliser``); they take
arrays of *strings*: sklearn's data checks feed
numeric blobs and multi-class targets, which do not apply to a binary text model (char n-grams of
"0.4967" carry none of the blobs' geometry; the model is binary by design), so they run only the
checks that need no data, plus a behaviour test of the classifier API on real texts.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.estimator_checks import (
    check_get_params_invariance,
    check_no_attributes_set_in_init,
    check_parameters_default_constructible,
    check_set_params,
)

from features.history import SellerHistoryFeatures
from features.linkage import LinkedShopFeatures
from features.pipeline import ShopFeaturePipeline
from features.price import BrandPriceFeatures
from features.shop_text import ShopTextFeatures
from features.text import HashedTextClassifier, TextNormaliser
from tests.features.factory import AS_OF, make_marketplace

#: sklearn checks that run on every estimator and need no numeric data: they do apply to the text components
DATA_FREE_CHECKS = (
    check_no_attributes_set_in_init,
    check_get_params_invariance,
    check_set_params,
    check_parameters_default_constructible,
)


@pytest.mark.parametrize("estimator", [HashedTextClassifier(n_features=2**10), TextNormaliser()], ids=repr)
@pytest.mark.parametrize("check", DATA_FREE_CHECKS, ids=lambda c: c.__name__)
def test_text_components_pass_the_data_free_checks(estimator: Any, check: Any) -> None:
    check(type(estimator).__name__, estimator)


def test_text_classifier_behaves_like_a_classifier() -> None:
    texts = ["高仿 a货 包", "replica 1:1 watch", "正品 官方 授权", "genuine leather official"] * 5
    y = [1, 1, 0, 0] * 5
    clf = HashedTextClassifier(n_features=2**10, max_iter=20).fit(texts, y)
    assert clf.n_features_in_ == 1 and list(clf.classes_) == [0, 1]
    assert list(clf.predict(["ＲＥＰＬＩＣＡ　１：１ watch", "正品 官方"])) == [1, 0]
    proba = clf.predict_proba(texts)
    assert proba.shape == (20, 2) and ((proba >= 0) & (proba <= 1)).all()
    with pytest.raises(ValueError, match="2 classes"):
        HashedTextClassifier().fit(texts[:3], [0, 1, 2])
    with pytest.raises(NotFittedError):
        HashedTextClassifier().predict(texts)
    with pytest.raises(ValueError, match="features"):
        clf.predict(np.asarray([["a", "b"]], dtype=object))
    normaliser = TextNormaliser().fit(texts)
    assert normaliser.transform(["ＡＢＣ　Ｄ"])[0, 0] == "abc d"


@pytest.mark.parametrize(
    "builder",
    [
        SellerHistoryFeatures(prior_strength=3.0),
        ShopTextFeatures(n_features=2**10, n_folds=3),
        BrandPriceFeatures(low_price_ratio=0.25),
        LinkedShopFeatures(),
        ShopFeaturePipeline(text_n_features=2**10),
    ],
    ids=lambda b: type(b).__name__,
)
def test_marketplace_builders_keep_the_contract_by_hand(builder: Any) -> None:
    mp, truth = make_marketplace(12, seed=2)
    params = builder.get_params()
    cloned = clone(builder)
    assert cloned.get_params() == params
    assert not [k for k in vars(cloned) if k.endswith("_")], "__init__ must not learn state"
    with pytest.raises(NotFittedError):
        cloned.transform(mp, AS_OF)
    examples = truth.assign(as_of=AS_OF, label=truth["is_counterfeiter"].astype(int))[["shop_id", "as_of", "label"]]
    fitted = cloned.fit(mp, examples)
    assert fitted is cloned
    names = list(fitted.get_feature_names_out())
    X = fitted.transform(mp, AS_OF)
    assert list(X.columns) == names and len(X) == len(mp.shops)
    assert all(fitted.describe(n).name == n for n in names)
    fitted.set_params(**params)
