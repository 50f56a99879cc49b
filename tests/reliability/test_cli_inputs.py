"""Bad arguments and bad folders end with exit code 2 and one line naming what is wrong, never a
traceback (issue 23): ``crackdown --out`` on a file or an unwritable path, a Parquet table storing its
prices as text, a marketplace whose tables are all empty."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pandas as pd
import pytest

from tests.serving.conftest import dajia_cmd


def _one_line_error(args: list[str], *words: str) -> str:
    done = subprocess.run([*dajia_cmd(), *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("where", ["a file", "under a file", "unwritable"])
def test_crackdown_out_that_cannot_be_a_run_folder(tmp_path: Path, where: str) -> None:
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    out = {"a file": afile, "under a file": afile / "run", "unwritable": Path("/proc/dajia-run")}[where]
    _one_line_error(["crackdown", "--shops", "200", "--out", str(out)], "--out", str(out))
    assert afile.read_text() == "not a folder"


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli-inputs") / "m"
    subprocess.run([*dajia_cmd(), "generate", "--shops", "30", "--seed", "3", "--out", str(root)],
                   check=True, capture_output=True, timeout=300)  # fmt: skip
    return root


def test_prices_stored_as_text_are_refused(market: Path, tmp_path: Path) -> None:
    bad = tmp_path / "m"
    subprocess.run(["cp", "-r", str(market), str(bad)], check=True)
    listings = pd.read_parquet(bad / "listings.parquet")
    listings["price"] = listings["price"].map(lambda v: f"{v:.2f}")  # "12.50": a number written as text
    listings.to_parquet(bad / "listings.parquet", index=False)
    _one_line_error(["validate", "--data", str(bad)], "listings", "price", "stored as text")


def test_a_marketplace_of_empty_tables_is_invalid(market: Path, tmp_path: Path) -> None:
    empty = tmp_path / "m"
    subprocess.run(["cp", "-r", str(market), str(empty)], check=True)
    for file in empty.glob("*.parquet"):
        pd.read_parquet(file).head(0).to_parquet(file, index=False)
    _one_line_error(["validate", "--data", str(empty)], "shops", "no shop")
