"""``dajia features`` without a cluster, streamed by shop partition: the pipeline is fitted without the
whole marketplace in memory (population counts summed partition by partition, the text model and the
linkage index from the labelled and verdict shops only) and must equal the in-memory fit; the rows must
equal the in-memory rows exactly; a run that fails part-way leaves the previous output whole."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dajia.cli import main
from dajia.scaleout.features import fit_streamed, stream_features, write_feature_rows
from dajia.scaleout.partition import PartitionedMarketplace, partition_marketplace
from features.history import SellerHistoryFeatures
from features.pipeline import ShopFeaturePipeline
from marketplace.generator import GeneratorConfig, generate
from marketplace.loader import load_marketplace
from marketplace.tables import Marketplace
from training.examples import labels_before

RATES = (
    "refund_rate_",
    "counterfeit_complaint_rate_",
    "rating_mean_",
    "low_rating_share_",
    "fake_review_share_",
    "delisted_share_",
    "fit_cutoff_",
)


def _same(got: pd.DataFrame, want: pd.DataFrame) -> None:
    """Every column exactly equal, except the text scores: equal to rounding (see the coefficients)."""
    text = [c for c in want.columns if "_text_" in str(c)]
    rest = [c for c in want.columns if c not in text]
    assert text and rest
    pd.testing.assert_frame_equal(got[rest], want[rest], check_exact=True)
    pd.testing.assert_frame_equal(got[text], want[text], check_exact=False, rtol=1e-6, atol=1e-9)


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("market")
    generate(GeneratorConfig(shops=900, seed=11), out)
    return out


@pytest.fixture(scope="module")
def mp(market: Path) -> Marketplace:
    return load_marketplace(market)


@pytest.fixture(scope="module")
def as_of(mp: Marketplace) -> pd.Timestamp:
    return pd.Timestamp(mp.snapshot_at) - pd.Timedelta(days=30)


@pytest.fixture(scope="module")
def parts(market: Path, tmp_path_factory: pytest.TempPathFactory) -> PartitionedMarketplace:
    return partition_marketplace(str(market), str(tmp_path_factory.mktemp("parts") / "p"), shops_per_partition=200)


@pytest.fixture(scope="module")
def fitted(
    mp: Marketplace, parts: PartitionedMarketplace, as_of: pd.Timestamp
) -> tuple[ShopFeaturePipeline, ShopFeaturePipeline]:
    whole = ShopFeaturePipeline().fit(mp, labels_before(mp.verdicts, as_of))
    streamed, examples = fit_streamed(parts, as_of)
    assert len(examples) > 20 and examples["label"].nunique() == 2
    return whole, streamed


def test_the_streamed_fit_learns_what_the_whole_marketplace_teaches(
    fitted: tuple[ShopFeaturePipeline, ShopFeaturePipeline], parts: PartitionedMarketplace
) -> None:
    assert parts.n_partitions == 5
    whole, streamed = fitted
    h_whole, h_streamed = whole.builders_[0], streamed.builders_[0]
    assert isinstance(h_whole, SellerHistoryFeatures) and isinstance(h_streamed, SellerHistoryFeatures)
    for name in RATES:
        assert getattr(h_streamed, name) == getattr(h_whole, name), name
    _same(streamed.percentiles_, whole.percentiles_)
    text_whole, text_streamed = whole.builders_[1], streamed.builders_[1]
    assert text_whole.coef_ is not None and text_streamed.coef_ is not None
    for kind, coef in text_whole.coef_.items():
        # the same documents reach the solver in another row order (the labelled shops come partition by
        # partition): its coefficients agree to rounding, not bit for bit
        np.testing.assert_allclose(text_streamed.coef_[kind], coef, rtol=1e-6, atol=1e-9)


def test_streamed_rows_equal_the_in_memory_rows(
    fitted: tuple[ShopFeaturePipeline, ShopFeaturePipeline],
    mp: Marketplace,
    parts: PartitionedMarketplace,
    as_of: pd.Timestamp,
    tmp_path: Path,
) -> None:
    whole, streamed = fitted
    out = tmp_path / "f.parquet"
    rows = stream_features(parts, streamed, as_of, str(out), oof=True)
    got = pd.read_parquet(out).set_index("shop_id").sort_index()
    want = whole.transform(mp, as_of, oof=True).sort_index()
    assert rows == len(mp.shops) == len(got)
    got.index = got.index.astype(want.index.dtype)
    got.index.name = want.index.name
    got.columns = got.columns.astype(object)
    _same(got, want)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.parquet"]  # no temporary left behind


def test_a_failure_part_way_leaves_the_previous_output_whole(tmp_path: Path) -> None:
    pipe = ShopFeaturePipeline()
    pipe.feature_names_out_ = np.asarray(["x"], dtype=object)
    out = tmp_path / "f.parquet"
    frame = pd.DataFrame({"x": [1.0, 2.0]}, index=pd.Index(["a", "b"], name="shop_id"))
    assert write_feature_rows([frame], pipe, str(out)) == 2
    before = out.read_bytes()

    def failing() -> Iterator[pd.DataFrame]:
        yield frame
        raise RuntimeError("partition 2: worker lost")

    with pytest.raises(RuntimeError, match="worker lost"):
        write_feature_rows(failing(), pipe, str(out))
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.parquet"]


def test_the_command_streams_a_parquet_folder(market: Path, mp: Marketplace, tmp_path: Path) -> None:
    out = tmp_path / "f.parquet"
    argv = ["features", "--data", str(market), "--as-of", "2026-03-01", "--out", str(out)]
    assert main([*argv, "--no-labels"]) == 0
    X = pd.read_parquet(out)
    assert len(X) == len(mp.shops) and X["shop_id"].is_unique
    # the marketplace's one shared partitioned copy, beside its tables (docs/scale-out.md)
    assert len(list((market / "_partitions").glob("*/partitions.json"))) == 1
