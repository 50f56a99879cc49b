"""The synthetic marketplace generator: valid, deterministic, and every knob and error path works."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from dajia.cli import main
from marketplace.generator import GeneratorConfig, InvalidGeneratorConfig, generate
from marketplace.loader import load_marketplace
from marketplace.schema import GROUND_TRUTH_FILE, MANIFEST_FILE, TABLES

N_SHOPS = 2_000


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("market")
    generate(GeneratorConfig(shops=N_SHOPS, seed=7, chunk_shops=1_000), out)
    return out


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_every_table_passes_the_loader(market: Path) -> None:
    mp = load_marketplace(market)
    for table in TABLES:
        assert len(mp.table(table.name)) > 0, table.name
    assert len(mp.shops) == N_SHOPS
    manifest = json.loads((market / MANIFEST_FILE).read_text(encoding="utf-8"))
    assert manifest["seed"] == 7 and manifest["knobs"]["shops"] == N_SHOPS
    assert manifest["counts"]["orders"] == len(mp.orders)
    assert pd.Timestamp(manifest["snapshot_at"]) == mp.snapshot_at


def test_same_seed_same_bytes_other_seed_differs(market: Path, tmp_path: Path) -> None:
    generate(GeneratorConfig(shops=N_SHOPS, seed=7, chunk_shops=1_000), tmp_path / "again")
    generate(GeneratorConfig(shops=N_SHOPS, seed=8, chunk_shops=1_000), tmp_path / "other")
    first, again, other = _files(market), _files(tmp_path / "again"), _files(tmp_path / "other")
    assert set(first) == {*(f"{t.name}.parquet" for t in TABLES), GROUND_TRUTH_FILE, MANIFEST_FILE}
    assert first == again
    differing = [name for name in first if first[name] != other[name]]
    assert set(differing) >= {"shops.parquet", "listings.parquet", "orders.parquet", "reviews.parquet"}


def test_ground_truth_beside_the_verdicts(market: Path) -> None:
    truth = pd.read_parquet(market / GROUND_TRUTH_FILE)
    assert list(truth.columns[:3]) == ["shop_id", "is_counterfeiter", "archetype"]
    assert truth["shop_id"].is_unique and len(truth) == N_SHOPS
    assert set(truth["archetype"]) == {
        "honest",
        "authorised",
        "discounter",
        "second_hand",
        "grey_import",
        "counterfeit_blatant",
        "counterfeit_camouflaged",
    }
    assert (truth["is_counterfeiter"] == truth["archetype"].str.startswith("counterfeit")).all()


def test_cli_generate_prints_json_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["generate", "--shops", "1500", "--seed", "3", "--out", str(tmp_path / "m"), "--json"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["shops"] == 1500
    assert summary["counts"]["shops"] == 1500 and summary["counts"]["orders"] > 1500
    assert sum(summary["archetypes"].values()) == 1500
    assert 0 < summary["verdict_coverage"] < 1
    assert 0.03 < summary["counterfeit_rate"] < 0.13


def test_cli_generate_bad_knob_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate", "--shops", "100", "--counterfeit-rate", "1.5", "--out", str(tmp_path / "m")]) == 2
    assert "counterfeit_rate" in capsys.readouterr().err
    assert main(["generate", "--shops", "100", "--crackdown", "1999-01-01", "--out", str(tmp_path / "m")]) == 2


def test_refuses_a_folder_holding_csv_tables(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "orders.csv").write_text("order_id\n", encoding="utf-8")
    assert main(["generate", "--shops", "50", "--out", str(tmp_path)]) == 2
    assert "orders.csv" in capsys.readouterr().err
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x", encoding="utf-8")
    with pytest.raises(InvalidGeneratorConfig, match="not a folder"):
        generate(GeneratorConfig(shops=50), not_a_folder)


def test_config_validation_names_the_knob() -> None:
    with pytest.raises(InvalidGeneratorConfig, match="label_delay_days"):
        GeneratorConfig(label_delay_days=3)
    with pytest.raises(InvalidGeneratorConfig, match="snapshot_at"):
        GeneratorConfig(snapshot_at="not a date")


@pytest.mark.parametrize(("shops", "seed"), [(1, 1), (1, 4), (3, 2), (3, 5), (40, 9)])
def test_tiny_marketplaces_are_valid(tmp_path: Path, shops: int, seed: int) -> None:
    summary = generate(GeneratorConfig(shops=shops, seed=seed), tmp_path)
    mp = load_marketplace(tmp_path)
    assert len(mp.shops) == shops == summary["counts"]["shops"]
    assert len(mp.orders) == summary["counts"]["orders"] > 0


def test_knobs_change_the_world(tmp_path: Path) -> None:
    base = generate(GeneratorConfig(shops=3_000, seed=4), tmp_path / "base")
    more = generate(
        GeneratorConfig(shops=3_000, seed=4, counterfeit_rate=0.2, label_coverage=0.9, reregister_rate=1.0),
        tmp_path / "more",
    )
    assert more["counterfeiters"] > 2 * base["counterfeiters"]
    assert more["verdict_coverage"] > base["verdict_coverage"] + 0.1
    assert more["reregistered_shops"] > 2 * base["reregistered_shops"]
    late = generate(GeneratorConfig(shops=3_000, seed=4, label_delay_days=120), tmp_path / "late")
    assert late["pending_verdicts"] > base["pending_verdicts"]
    short = generate(GeneratorConfig(shops=3_000, seed=4, history_months=6), tmp_path / "short")
    opened = load_marketplace(tmp_path / "short").shops["opened_at"]
    assert opened.min() >= pd.Timestamp(short["snapshot_at"]) - pd.Timedelta(days=6 * 31)


def test_acceptance_cli_10000_shops_twice_identical(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The issue's words: `dajia generate --shops 10000 --seed 1` twice -> identical tables; seed 2 differs."""
    for name, seed in (("a", "1"), ("b", "1"), ("c", "2")):
        assert main(["generate", "--shops", "10000", "--seed", seed, "--out", str(tmp_path / name)]) == 0
    human = capsys.readouterr().out
    assert "rows per table" in human and "counterfeit_camouflaged" in human and "re-registered" in human
    a, b, c = _files(tmp_path / "a"), _files(tmp_path / "b"), _files(tmp_path / "c")
    assert a == b
    assert all(a[name] != c[name] for name in a if name.endswith(".parquet"))


@pytest.mark.parametrize(
    "knobs",
    [
        {"counterfeit_rate": 0.0},
        {"counterfeit_rate": 1.0, "camouflage_share": 1.0},
        {"counterfeit_rate": 0.5, "camouflage_share": 0.0, "label_coverage": 1.0, "reregister_rate": 1.0},
        {"label_coverage": 0.0, "honest_investigation_rate": 0.0},
        {"history_months": 2, "label_delay_days": 365},
        {"crackdown_at": "2024-07-02", "orders_per_shop": 0.5, "listings_per_shop": 1.0},
        {"snapshot_at": "2021-02-28T12:00:00+08:00", "history_months": 120},
    ],
)
def test_extreme_knobs_still_give_a_valid_marketplace(tmp_path: Path, knobs: dict[str, object]) -> None:
    config = GeneratorConfig(shops=400, seed=13, **knobs)
    summary = generate(config, tmp_path)
    mp = load_marketplace(tmp_path)
    assert len(mp.shops) == 400 and summary["counts"]["orders"] == len(mp.orders)
    truth = pd.read_parquet(tmp_path / GROUND_TRUTH_FILE)
    assert truth["is_counterfeiter"].mean() == pytest.approx(knobs.get("counterfeit_rate", 0.08), abs=0.05)
