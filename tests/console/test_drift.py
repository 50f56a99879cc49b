"""Drift that means something: quantile bins with a minimum mass, point masses and constants handled,
small samples flagged; no alarm between two samples of one marketplace, an alarm on the features a
shifted generator knob moves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.pipeline import ShopFeaturePipeline
from marketplace.generator import GeneratorConfig, generate
from marketplace.loader import load_marketplace
from marketplace.tables import Marketplace
from serving.console.monitor import MIN_BIN_MASS, drift_of, drift_table, quantile_bins, shares


def test_same_distribution_is_stable_at_every_sample_size() -> None:
    rng = np.random.default_rng(0)
    for n in (300, 2_000, 20_000):
        ref, now = rng.lognormal(0, 1, n), rng.lognormal(0, 1, n)
        d = drift_of(ref, now)
        assert d.band == "stable", (n, d)
        assert d.kind == "continuous" and not d.small_sample


def test_zero_inflated_feature_keeps_its_point_mass_in_one_bin() -> None:
    rng = np.random.default_rng(1)

    def sample(n: int, zeros: float) -> np.ndarray:
        return np.where(rng.random(n) < zeros, 0.0, rng.exponential(0.2, n))

    ref = sample(5_000, 0.7)
    edges = quantile_bins(ref)
    mass = shares(ref, edges)
    assert 0.0 in edges and mass[0] == pytest.approx(np.mean(ref == 0))
    assert mass.min() >= MIN_BIN_MASS
    same = drift_of(ref, sample(5_000, 0.7))
    assert same.kind == "zero-inflated" and same.band == "stable" and same.psi < 0.02
    # with the old decile bins a 70% point mass collapsed to one edge and a tiny shift read as huge
    moved = drift_of(ref, sample(5_000, 0.4))
    assert moved.band == "major shift"
    assert moved.ref_median == 0.0


def test_constant_and_missing_and_small_samples() -> None:
    rng = np.random.default_rng(2)
    const = np.zeros(2_000)
    assert drift_of(const, np.zeros(2_000)).band == "stable"
    d = drift_of(const, np.where(rng.random(2_000) < 0.5, 1.0, 0.0))
    assert d.kind == "constant" and d.band == "major shift"
    # a feature that starts missing has drifted, though its present values did not move
    x = rng.normal(0, 1, 2_000)
    gone = np.where(rng.random(2_000) < 0.5, np.nan, rng.normal(0, 1, 2_000))
    assert drift_of(x, gone).band == "major shift"
    # 40 rows: flagged small, never a major shift, even when the values moved
    small = drift_of(x, rng.normal(1.0, 1, 40))
    assert small.small_sample and small.band != "major shift"
    assert drift_of(x, rng.normal(0, 1, 40)).band == "stable"


# --------------------------------------------------------------------------- on generated marketplaces

SHOPS = 2_000


def _market(root: Path, name: str, **knobs: float) -> Marketplace:
    out = root / name
    generate(GeneratorConfig(shops=SHOPS, chunk_shops=1_000, **knobs), out)  # type: ignore[arg-type]
    return load_marketplace(out)


@pytest.fixture(scope="module")
def markets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Marketplace]:
    root = tmp_path_factory.mktemp("drift")
    return {
        "a": _market(root, "a", seed=31),
        "b": _market(root, "b", seed=32),
        "listings": _market(root, "listings", seed=33, listings_per_shop=10.0),
    }


def _features(pipeline: ShopFeaturePipeline, mp: Marketplace) -> pd.DataFrame:
    shops = mp.shops
    ids = shops.loc[shops["closed_at"].isna(), "shop_id"].astype(str).tolist() if "closed_at" in shops else None
    return pipeline.transform(mp, mp.scoring_time(), shop_ids=ids)


def test_two_samples_of_one_marketplace_raise_no_major_shift_and_a_shifted_knob_is_flagged(
    markets: dict[str, Marketplace],
) -> None:
    a = markets["a"]
    as_of = a.scoring_time() - pd.Timedelta(days=60)
    open_ = a.shops[a.shops["opened_at"] < as_of]
    ex = pd.DataFrame({"shop_id": open_["shop_id"].astype(str).to_numpy(), "as_of": as_of, "label": 0.0}).reset_index(
        drop=True
    )
    ex.loc[::7, "label"] = 1.0
    pipeline = ShopFeaturePipeline(random_state=0, text_folds=3)
    pipeline.fit_transform(a, ex)
    Xa = _features(pipeline, a)
    names = list(Xa.columns)
    Xb = _features(pipeline, markets["b"])[names]
    Xl = _features(pipeline, markets["listings"])[names]
    same = drift_table(names, Xa.to_numpy(np.float64), Xb.to_numpy(np.float64))
    worst = same[0]
    print("same marketplace, two samples: worst", worst.name, round(worst.psi, 3), worst.band)
    assert not [d.name for d in same if d.band == "major shift"]

    shifted = drift_table(names, Xa.to_numpy(np.float64), Xl.to_numpy(np.float64))
    major = [d.name for d in shifted if d.band == "major shift"]
    print("listings_per_shop 5 → 10: major shift in", major)
    assert major, "doubling the listings per shop must move some feature"
    assert any("listing" in n for n in major)
    assert shifted[0].name in major
