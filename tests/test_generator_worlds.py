"""The generator's world-style knobs: other vocabulary, price regime, camouflage depth, sideline sellers and
honest look-alikes. The defaults leave the marketplace as it was; each knob changes what it says."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.lexicon import blatant_title
from features.text import normalise_text
from marketplace.generator import GeneratorConfig, InvalidGeneratorConfig, generate
from marketplace.loader import load_marketplace
from marketplace.schema import GROUND_TRUTH_FILE, MANIFEST_FILE
from marketplace.synth.vocab import brand_names

STYLED = {
    "vocabulary": "alt",
    "price_regime": "tight",
    "camouflage_depth": 0.8,
    "sideline_share": 0.4,
    "lookalike_share": 0.5,
}


@pytest.fixture(scope="module")
def worlds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("worlds")
    out = {"base": root / "base", "styled": root / "styled"}
    generate(GeneratorConfig(shops=3_000, seed=21), out["base"])
    generate(GeneratorConfig(shops=3_000, seed=21, **STYLED), out["styled"])
    return out


def _listings(folder: Path) -> pd.DataFrame:
    mp = load_marketplace(folder)
    truth = pd.read_parquet(folder / GROUND_TRUTH_FILE).set_index("shop_id")
    ref = mp.brands.set_index("brand")
    lst = mp.listings.assign(archetype=mp.listings["shop_id"].map(truth["archetype"]))
    lst["premium"] = lst["brand"].map(ref["premium"]).fillna(False).astype(bool)
    lst["ratio"] = lst["price"] / lst["brand"].map(ref["reference_price"])
    return lst


@pytest.mark.parametrize(
    ("knob", "value"),
    [
        ("vocabulary", "klingon"),
        ("price_regime", "free"),
        ("camouflage_depth", 1.5),
        ("sideline_share", -0.1),
        ("lookalike_share", 0.95),
    ],
)
def test_bad_style_knob_names_the_knob(knob: str, value: object) -> None:
    with pytest.raises(InvalidGeneratorConfig, match=knob):
        GeneratorConfig(**{knob: value})  # type: ignore[arg-type]


def test_default_manifest_lists_no_style_knob_and_a_styled_one_lists_them(worlds: dict[str, Path]) -> None:
    base = json.loads((worlds["base"] / MANIFEST_FILE).read_text())
    styled = json.loads((worlds["styled"] / MANIFEST_FILE).read_text())
    assert not set(STYLED) & set(base["knobs"])
    assert "counterfeit_sideline" not in base["summary"]["archetypes"]
    assert {k: styled["knobs"][k] for k in STYLED} == STYLED


def test_styled_world_is_deterministic(worlds: dict[str, Path], tmp_path: Path) -> None:
    generate(GeneratorConfig(shops=3_000, seed=21, **STYLED), tmp_path)
    for name in ("listings.parquet", "reviews.parquet", "shops.parquet", GROUND_TRUTH_FILE):
        assert (tmp_path / name).read_bytes() == (worlds["styled"] / name).read_bytes()


def test_sideline_sellers_are_honest_shops_with_a_few_cheap_premium_fakes(worlds: dict[str, Path]) -> None:
    truth = pd.read_parquet(worlds["styled"] / GROUND_TRUTH_FILE)
    side = truth["archetype"] == "counterfeit_sideline"
    assert side.sum() > 0.25 * truth["is_counterfeiter"].sum()
    assert truth.loc[side, "is_counterfeiter"].all()
    lst = _listings(worlds["styled"])
    s, h = lst[lst["archetype"] == "counterfeit_sideline"], lst[lst["archetype"] == "honest"]
    # mostly ordinary listings, a minority of premium ones, those far below the reference price
    assert 0.1 < s["premium"].mean() < 0.35
    assert s.loc[s["premium"], "ratio"].median() < 0.6 < h.loc[h["premium"], "ratio"].median()
    # worded like an honest shop: no blatant words
    blatant = s["title"].map(lambda t: blatant_title(normalise_text(t)))
    assert blatant.mean() < 0.02


def test_alt_vocabulary_uses_other_brands_and_words_the_lexicon_does_not_know(worlds: dict[str, Path]) -> None:
    mp = load_marketplace(worlds["styled"])
    assert set(mp.brands["brand"]) == set(brand_names("alt"))
    assert not set(brand_names("alt")) & set(brand_names())
    lst = _listings(worlds["styled"])
    base = _listings(worlds["base"])

    def blatant_share(frame: pd.DataFrame) -> float:
        part = frame[frame["archetype"] == "counterfeit_blatant"]
        return float(part["title"].map(lambda t: blatant_title(normalise_text(t))).mean())

    assert blatant_share(base) > 0.3
    assert blatant_share(lst) < 0.05


def test_camouflage_depth_and_tight_prices_hide_camouflaged_fakes(worlds: dict[str, Path]) -> None:
    styled, base = _listings(worlds["styled"]), _listings(worlds["base"])

    def camo(frame: pd.DataFrame) -> pd.DataFrame:
        return frame[(frame["archetype"] == "counterfeit_camouflaged") & frame["premium"]]

    assert camo(styled)["ratio"].median() > camo(base)["ratio"].median() * 1.2
    # deeper camouflage: fewer "same style" brand suffixes than the default world
    hint = r"同款|风格|款式|style|inspired"
    assert camo(styled)["title"].str.contains(hint).mean() < camo(base)["title"].str.contains(hint).mean()


def test_lookalike_share_sets_the_honest_lookalike_mix(worlds: dict[str, Path]) -> None:
    looks = ("discounter", "second_hand", "grey_import")
    for name, want in (("base", 0.28), ("styled", 0.5)):
        truth = pd.read_parquet(worlds[name] / GROUND_TRUTH_FILE)
        honest = truth[~truth["is_counterfeiter"]]
        share = float(np.isin(honest["archetype"], looks).mean())
        assert share == pytest.approx(want, abs=0.04)
