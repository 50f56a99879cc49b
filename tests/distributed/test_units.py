"""Fast checks of the scale-out plumbing that need no cluster: addresses, hashing, refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.errors import DajiaError, DataContractError
from core.settings import Settings
from dajia.scaleout.cluster import ClusterError, connect, scheduler_address
from dajia.scaleout.partition import PartitionedMarketplace, PartitionError, partition_marketplace, partition_of


def test_scheduler_option_wins_over_the_setting() -> None:
    s = Settings(DASK_SCHEDULER_ADDRESS="tcp://from-env:8786")
    assert scheduler_address("tcp://from-option:8786", s) == "tcp://from-option:8786"
    assert scheduler_address(None, s) == "tcp://from-env:8786"
    assert scheduler_address("  ", Settings()) is None


def test_unreachable_scheduler_is_a_clear_error() -> None:
    with pytest.raises(ClusterError, match=r"cannot reach the Dask scheduler at 'tcp://127\.0\.0\.1:9'"):  # noqa: SIM117
        with connect("tcp://127.0.0.1:9", timeout=2):
            pass
    assert issubclass(ClusterError, DajiaError)


def test_partition_of_is_stable_and_spreads_shops() -> None:
    ids = np.asarray([f"S{i:07d}" for i in range(20_000)], dtype=object)
    parts = partition_of(ids, 8)
    assert np.array_equal(parts, partition_of(ids.copy(), 8))
    # SipHash with pandas' fixed key: the same number on every machine and Python version
    assert partition_of(np.asarray(["S0000001"], dtype=object), 1_000_003).tolist() == [
        int(pd.util.hash_array(np.asarray(["S0000001"], dtype=object))[0] % 1_000_003)
    ]
    counts = np.bincount(parts, minlength=8)
    assert counts.min() > 0.9 * len(ids) / 8 and counts.max() < 1.1 * len(ids) / 8


def test_csv_tables_and_incomplete_layouts_are_refused(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "shops.csv").write_text("shop_id\nS1\n")
    with pytest.raises(DataContractError, match=r"table 'shops'.*read Parquet tables only"):
        partition_marketplace(str(tmp_path / "m"), str(tmp_path / "p"))
    with pytest.raises(PartitionError, match=r"no partitions\.json"):
        PartitionedMarketplace.open(str(tmp_path / "nowhere"))
