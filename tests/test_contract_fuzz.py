"""Any junk value in any column is either accepted as a valid value or refused cleanly:
a DataContractError naming the table, the column and the row, never another exception."""

from __future__ import annotations

import math
from datetime import datetime

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.errors import DataContractError
from marketplace.loader import validate_frames
from marketplace.schema import TABLES_BY_NAME
from tests.test_contract import SNAPSHOT, valid_frames

# one column of each kind, in a table whose key is not that column
TARGETS = [
    ("reviews", "rating"),  # int
    ("orders", "amount"),  # float
    ("brands", "premium"),  # bool
    ("complaints", "filed_at"),  # timestamp
    ("listings", "title"),  # text
    ("shops", "device_id"),  # string
    ("complaints", "kind"),  # string with choices
]

junk = st.one_of(
    st.text(max_size=30),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=60, max_size=700),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)),
    st.sampled_from(["", " ", "NaN", "inf", "-0", "1e400", "2024-13-01", "TRUE", "0x10", "５", "\x00", "1,5"]),
)


@pytest.mark.parametrize(("table", "column"), TARGETS, ids=[f"{t}.{c}" for t, c in TARGETS])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=junk)
def test_junk_in_a_column_is_accepted_or_refused_cleanly(table: str, column: str, value: object) -> None:
    frames = {k: v.copy() for k, v in valid_frames().items()}
    frame = frames[table]
    frame[column] = frame[column].astype(object)
    frame.loc[0, column] = value
    try:
        mp = validate_frames(frames, SNAPSHOT)
    except DataContractError as exc:
        assert exc.table == table and exc.column == column, str(exc)
        key = TABLES_BY_NAME[table].key[0]
        assert exc.rows and str(exc.rows[0]) in (f"{key}={frame.loc[0, key]!r}", "row 1"), str(exc)
        assert str(exc).startswith(f"table '{table}', column '{column}': ")
        return
    got = mp.table(table)[column].iloc[0]
    assert not (isinstance(got, float) and math.isinf(got))
    assert not pd.isna(got)  # every target column is required


_BASE: dict[str, bytes] = {}


def _csv_base() -> dict[str, bytes]:
    """The valid marketplace as CSV bytes per table (built once)."""
    if not _BASE:
        import tempfile
        from pathlib import Path

        from tests.test_contract import write_csv_folder

        with tempfile.TemporaryDirectory() as tmp:
            folder = write_csv_folder(valid_frames(), Path(tmp) / "mp")
            _BASE.update({p.name: p.read_bytes() for p in folder.iterdir()})
    return _BASE


@pytest.mark.parametrize("table", ["orders", "shops", "reviews"])
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(junk_bytes=st.binary(max_size=40), at=st.integers(min_value=0, max_value=10_000))
def test_junk_bytes_in_a_csv_file_load_or_fail_cleanly(table: str, junk_bytes: bytes, at: int) -> None:
    import tempfile
    from pathlib import Path

    from marketplace.loader import load_marketplace

    files = dict(_csv_base())
    data = files[f"{table}.csv"]
    cut = at % (len(data) + 1)
    files[f"{table}.csv"] = data[:cut] + junk_bytes + data[cut:]
    with tempfile.TemporaryDirectory() as tmp:
        for name, content in files.items():
            (Path(tmp) / name).write_bytes(content)
        try:
            load_marketplace(tmp)
        except DataContractError as exc:
            assert "\n" not in str(exc) and "\r" not in str(exc), str(exc)
            assert exc.table in (*TABLES_BY_NAME, "manifest"), str(exc)


def test_corrupted_parquet_bytes_load_or_fail_cleanly(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Random byte flips in Parquet files (footer, pages, names): a clean error or a load, nothing else."""
    import random
    import shutil

    from marketplace.loader import load_marketplace
    from tests.test_contract import write_parquet_folder

    base = write_parquet_folder(valid_frames(), tmp_path_factory.mktemp("base") / "mp")
    rng = random.Random(20260630)
    refused = 0
    for i in range(40):
        folder = tmp_path_factory.mktemp(f"bad{i}") / "mp"
        shutil.copytree(base, folder)
        path = folder / f"{rng.choice(['orders', 'shops', 'reviews', 'listings'])}.parquet"
        data = bytearray(path.read_bytes())
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        path.write_bytes(bytes(data))
        try:
            load_marketplace(folder)
        except DataContractError as exc:
            refused += 1
            assert "\n" not in str(exc) and exc.table in TABLES_BY_NAME, str(exc)
    assert refused >= 20  # most flips break the file; some land where Parquet cannot notice
