"""``dajia features`` end to end on a generated marketplace: output shape, saved pipeline, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dajia.cli import main


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("mp")
    assert main(["generate", "--shops", "600", "--seed", "5", "--out", str(out), "--json"]) == 0
    return out


def test_features_command_writes_one_row_per_shop(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, pkl = tmp_path / "f.parquet", tmp_path / "pipe.pkl"
    capsys.readouterr()
    argv = ["features", "--data", str(data), "--as-of", "2026-03-01", "--out", str(out), "--save-pipeline", str(pkl)]
    assert main([*argv, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    X = pd.read_parquet(out)
    shops = pd.read_parquet(data / "shops.parquet")
    assert X.columns[0] == "shop_id" and len(X) == len(shops) == summary["shops"]
    assert X.shape[1] - 1 == summary["features"]
    again = tmp_path / "g.parquet"
    assert (
        main(["features", "--data", str(data), "--as-of", "2026-03-01", "--out", str(again), "--model", str(pkl)]) == 0
    )
    Y = pd.read_parquet(again)
    # same pipeline, full model instead of out-of-fold text scores: all non-text columns agree exactly
    non_text = [c for c in X.columns if "_text_" not in c]
    pd.testing.assert_frame_equal(X[non_text], Y[non_text], check_exact=True)


def test_no_labels_gives_nan_text_scores(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "f.parquet"
    assert main(["features", "--data", str(data), "--as-of", "2026-03-01", "--out", str(out), "--no-labels"]) == 0
    X = pd.read_parquet(out)
    pruned = tmp_path / "p.parquet"
    argv = ["features", "--data", str(data), "--as-of", "2026-03-01", "--out", str(pruned), "--no-labels"]
    assert main([*argv, "--no-validate"]) == 0
    pd.testing.assert_frame_equal(X, pd.read_parquet(pruned), check_exact=True)
    assert X["listing_text_max"].isna().all() and np.isfinite(X["orders_30d"]).all()


def test_bad_input_exits_2(data: Path, tmp_path: Path) -> None:
    out = str(tmp_path / "f.parquet")
    assert main(["features", "--data", str(data), "--as-of", "not-a-date", "--out", out]) == 2
    assert main(["features", "--data", str(data), "--as-of", "2026-03-01", "--out", out, "--model", "/nope.pkl"]) == 2


def test_pruned_read_gives_the_same_features(data: Path) -> None:
    from features.io import read_feature_tables
    from features.pipeline import ShopFeaturePipeline
    from marketplace.loader import load_marketplace

    full = load_marketplace(data)
    pruned = read_feature_tables(data)
    assert pruned.snapshot_at == full.snapshot_at
    assert "shopkeeper_id" not in pruned.shops.columns and "buyer_id" not in pruned.orders.columns
    as_of = pd.Timestamp("2026-03-01")
    verdicts = full.verdicts[full.verdicts["decided_at"] < as_of]
    examples = pd.DataFrame(
        {"shop_id": verdicts["shop_id"], "as_of": as_of, "label": (verdicts["outcome"] == "counterfeit").astype(int)}
    ).drop_duplicates("shop_id")
    pipe = ShopFeaturePipeline(text_n_features=2**12).fit(full, examples)
    a = pipe.transform(full, as_of)
    b = pipe.transform(pruned, as_of)
    pd.testing.assert_frame_equal(a, b, check_exact=True)
