"""The data contract: a valid marketplace loads with the contract dtypes (Parquet, CSV, frames),
and every kind of bad input is refused with one message naming the table, column and rows."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.errors import DataContractError
from marketplace.io import write_manifest, write_table
from marketplace.loader import SnapshotMissing, load_marketplace, validate_frames
from marketplace.schema import TABLES, TABLES_BY_NAME
from marketplace.tables import Marketplace

SNAPSHOT = pd.Timestamp("2025-06-30 00:00:00")
T = pd.Timestamp


def valid_frames() -> dict[str, pd.DataFrame]:
    """A tiny marketplace that obeys every rule (each test breaks one thing in a copy)."""
    shops = pd.DataFrame(
        {
            "shop_id": ["s1", "s2", "s3"],
            "shopkeeper_id": ["k1", "k2", "k1"],
            "name": ["潮流名品店", "Sneaker Hub", "Lux 二手"],
            "opened_at": [T("2023-01-01"), T("2023-03-05 10:00"), T("2024-02-01")],
            "category": ["bags", "shoes", "bags"],
            "business_registration": ["91310000MA1", "91310000MA2", "91310000MA3"],
            "business_phone": ["021-5550001", "021-5550002", "021-5550003"],
            "business_email": ["shop1@example.cn", "shop2@example.com", "shop3@example.cn"],
            "owner_phone": ["13800000001", "13800000002", "13800000001"],
            "owner_email": ["wang@example.cn", "li@example.com", "wang@example.cn"],
            "owner_address": ["上海市徐汇区 1号", "1 Main St\nApt 2", "上海市徐汇区 1号"],
            "id_number_hash": ["h1", "h2", "h1"],
            "bank_account_hash": ["b1", "b2", "b3"],
            "device_id": ["d1", "d2", "d1"],
        }
    )
    brands = pd.DataFrame(
        {
            "brand": ["Acme", "Lumiere"],
            "category": ["bags", "bags"],
            "reference_price": [1200.0, 15000.0],
            "premium": [False, True],
        }
    )
    authorisations = pd.DataFrame(
        {"brand": ["Acme", "Lumiere"], "shop_id": ["s1", "s1"], "granted_at": [T("2023-02-01"), T("2023-06-01")]}
    )
    listings = pd.DataFrame(
        {
            "listing_id": ["l1", "l2", "l3", "l4"],
            "shop_id": ["s1", "s1", "s2", "s3"],
            "created_at": [T("2023-02-01"), T("2023-04-01"), T("2023-03-06"), T("2024-02-02")],
            "title": ["Acme 托特包 正品", "Lumiere handbag 1:1", "Running shoes", "二手 Lumiere 包 (not a replica)"],
            "description": ["全新", "", "size 42", "九成新"],
            "brand": ["Acme", "Lumiere", None, "Lumiere"],
            "category": ["bags", "bags", "shoes", "bags"],
            "price": [1100.0, 300.0, 89.5, 6000.0],
            "delisted_at": [pd.NaT, T("2024-01-01"), pd.NaT, pd.NaT],
        }
    )
    listing_edits = pd.DataFrame(
        {
            "edit_id": ["e1"],
            "listing_id": ["l2"],
            "edited_at": [T("2023-05-01")],
            "title": ["Lumiere handbag"],
            "price": [320.0],
        }
    )
    orders = pd.DataFrame(
        {
            "order_id": ["o1", "o2", "o3", "o4"],
            "shop_id": ["s1", "s1", "s2", "s3"],
            "listing_id": ["l1", "l2", "l3", "l4"],
            "buyer_id": ["u1", "u2", "u1", "u3"],
            "ordered_at": [T("2023-02-10"), T("2023-04-02"), T("2023-03-07"), T("2024-03-01")],
            "amount": [1100.0, 300.0, 89.5, 6000.0],
            "refunded_at": [pd.NaT, T("2023-04-20"), pd.NaT, pd.NaT],
        }
    )
    complaints = pd.DataFrame(
        {
            "complaint_id": ["c1", "c2"],
            "shop_id": ["s1", "s2"],
            "order_id": ["o2", None],
            "filed_at": [T("2023-04-15"), T("2023-05-01")],
            "kind": ["counterfeit", "quality"],
            "source": ["consumer", "brand_owner"],
        }
    )
    reviews = pd.DataFrame(
        {
            "review_id": ["r1", "r2"],
            "shop_id": ["s1", "s1"],
            "order_id": ["o1", "o2"],
            "created_at": [T("2023-02-20"), T("2023-04-10")],
            "rating": [5, 1],
            "text": ["很好", "fake, 假货"],
        }
    )
    verdicts = pd.DataFrame(
        {
            "verdict_id": ["v1"],
            "shop_id": ["s1"],
            "decided_at": [T("2023-08-01")],
            "outcome": ["counterfeit"],
            "evidence_kind": ["test_buy"],
        }
    )
    return {
        "shops": shops,
        "brands": brands,
        "authorisations": authorisations,
        "listings": listings,
        "listing_edits": listing_edits,
        "orders": orders,
        "complaints": complaints,
        "reviews": reviews,
        "verdicts": verdicts,
    }


def write_parquet_folder(frames: dict[str, pd.DataFrame], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in frames.items():
        write_table(frame, folder, name)
    write_manifest(folder, SNAPSHOT, seed=0)
    return folder


def _csv_value(v: object) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NaT:
        return ""
    if isinstance(v, pd.Timestamp):
        return v.isoformat()
    if isinstance(v, bool | np.bool_):
        return "true" if v else "false"
    return str(v)


def write_csv_folder(frames: dict[str, pd.DataFrame], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in frames.items():
        out = frame.astype(object).map(_csv_value)
        out.to_csv(folder / f"{name}.csv", index=False, encoding="utf-8")
    write_manifest(folder, SNAPSHOT)
    return folder


def assert_same(mp: Marketplace, frames: dict[str, pd.DataFrame]) -> None:
    for spec in TABLES:
        got = mp.table(spec.name)
        want = frames.get(spec.name)
        assert list(got.columns) == spec.column_names
        if want is None:
            assert len(got) == 0
            continue
        assert len(got) == len(want), spec.name
        for name in spec.column_names:
            a, b = got[name], want[name]
            assert a.isna().tolist() == b.isna().tolist(), (spec.name, name)
            mask = ~a.isna().to_numpy()
            assert a[mask].tolist() == b[mask].tolist(), (spec.name, name)


def check_dtypes(mp: Marketplace) -> None:
    for spec in TABLES:
        frame = mp.table(spec.name)
        for col in spec.columns:
            dtype = frame[col.name].dtype
            if col.kind in ("string", "text"):
                assert isinstance(dtype, pd.StringDtype) and dtype.storage == "pyarrow", (spec.name, col.name)
            elif col.kind == "timestamp":
                assert dtype == np.dtype("datetime64[us]"), (spec.name, col.name, dtype)
            elif col.kind == "float":
                assert dtype == np.float64
            elif col.kind == "int":
                assert dtype == np.int64
            else:
                assert dtype == np.bool_


# -- valid input -------------------------------------------------------------------------------------


def test_parquet_round_trip(tmp_path: Path) -> None:
    frames = valid_frames()
    mp = load_marketplace(write_parquet_folder(frames, tmp_path / "mp"))
    assert mp.snapshot_at == SNAPSHOT
    assert_same(mp, frames)
    check_dtypes(mp)


def test_csv_round_trip(tmp_path: Path) -> None:
    frames = valid_frames()
    mp = load_marketplace(write_csv_folder(frames, tmp_path / "mp"))
    assert_same(mp, frames)
    check_dtypes(mp)
    # a required text column keeps its empty string; a nullable one reads empty as null
    assert mp.listings["description"].tolist()[1] == ""
    assert pd.isna(mp.listings["brand"].tolist()[2])


def test_frames_validate_and_keep_dtypes() -> None:
    frames = valid_frames()
    mp = validate_frames(frames, SNAPSHOT)
    assert_same(mp, frames)
    check_dtypes(mp)


def test_optional_table_absent_loads_empty_with_dtypes(tmp_path: Path) -> None:
    frames = valid_frames()
    del frames["listing_edits"]
    mp = load_marketplace(write_parquet_folder(frames, tmp_path / "mp"))
    assert len(mp.listing_edits) == 0
    check_dtypes(mp)


def test_snapshot_argument_overrides_manifest_and_tz_converts(tmp_path: Path) -> None:
    folder = write_parquet_folder(valid_frames(), tmp_path / "mp")
    mp = load_marketplace(folder, snapshot_at="2025-07-01T08:00:00+08:00")
    assert mp.snapshot_at == T("2025-07-01 00:00:00")
    (folder / "manifest.json").unlink()
    with pytest.raises(SnapshotMissing, match=r"has no manifest.json.*--snapshot-at"):
        load_marketplace(folder)  # no manifest: never a guess (issue 23)
    (folder / "manifest.json").write_text('{"seed": 0}', encoding="utf-8")
    with pytest.raises(SnapshotMissing, match=str(folder)):
        load_marketplace(folder)  # a manifest without snapshot_at: the same
    before = pd.Timestamp.now(tz="UTC").tz_localize(None)
    snap = load_marketplace(folder, snapshot_at="now").snapshot_at  # now, when asked for
    assert before <= snap <= pd.Timestamp.now(tz="UTC").tz_localize(None)


def test_tz_aware_and_offset_times_are_converted_to_utc(tmp_path: Path) -> None:
    frames = valid_frames()
    frames["shops"]["opened_at"] = frames["shops"]["opened_at"].dt.tz_localize("Asia/Shanghai")
    mp = validate_frames(frames, SNAPSHOT)
    assert mp.shops["opened_at"].iloc[0] == T("2022-12-31 16:00:00")
    assert mp.shops["opened_at"].dtype == np.dtype("datetime64[us]")
    folder = write_csv_folder(valid_frames(), tmp_path / "csv")
    text = (
        (folder / "verdicts.csv")
        .read_text(encoding="utf-8")
        .replace("2023-08-01T00:00:00", "2023-08-01T08:00:00+08:00")
    )
    (folder / "verdicts.csv").write_text(text, encoding="utf-8")
    assert load_marketplace(folder).verdicts["decided_at"].iloc[0] == T("2023-08-01")


# -- bad input: one case each ------------------------------------------------------------------------

Breaker = Callable[[dict[str, pd.DataFrame]], None]


def _set(table: str, column: str, row: int, value: object) -> Breaker:
    def go(frames: dict[str, pd.DataFrame]) -> None:
        frame = frames[table]
        if not pd.api.types.is_object_dtype(frame[column].dtype):
            frame[column] = frame[column].astype(object)
        frame.loc[row, column] = value

    return go


def _drop(table: str, column: str) -> Breaker:
    def go(frames: dict[str, pd.DataFrame]) -> None:
        frames[table] = frames[table].drop(columns=[column])

    return go


def _add(table: str, column: str) -> Breaker:
    def go(frames: dict[str, pd.DataFrame]) -> None:
        frames[table][column] = "x"

    return go


def _dup(table: str, row: int, onto: int) -> Breaker:
    def go(frames: dict[str, pd.DataFrame]) -> None:
        frame = frames[table]
        for k in TABLES_BY_NAME[table].key:
            frame.loc[onto, k] = frame.loc[row, k]

    return go


# (case id, breaker, table, column, row label expected in the message, words expected in the message)
BAD_CASES: list[tuple[str, Breaker, str, str, str, str]] = [
    ("missing column", _drop("orders", "amount"), "orders", "amount", "", "missing required column"),
    ("extra column", _add("reviews", "sentiment"), "reviews", "sentiment", "", "unknown column"),
    ("string in float", _set("listings", "price", 2, "cheap"), "listings", "price", "listing_id='l3'", "not a number"),
    ("string in int", _set("reviews", "rating", 1, "five"), "reviews", "rating", "review_id='r2'", "not a whole"),
    (
        "bad timestamp",
        _set("orders", "ordered_at", 3, "31/02/2024"),
        "orders",
        "ordered_at",
        "order_id='o4'",
        "ISO-8601",
    ),
    ("null required", _set("shops", "owner_phone", 1, None), "shops", "owner_phone", "shop_id='s2'", "missing value"),
    ("NaN price", _set("orders", "amount", 0, float("nan")), "orders", "amount", "order_id='o1'", "missing value"),
    (
        "infinite price",
        _set("brands", "reference_price", 1, float("inf")),
        "brands",
        "reference_price",
        "brand='Lumiere'",
        "infinite",
    ),
    ("negative price", _set("listings", "price", 0, -5.0), "listings", "price", "listing_id='l1'", "out of range"),
    ("absurd price", _set("listing_edits", "price", 0, 5e9), "listing_edits", "price", "edit_id='e1'", "out of range"),
    ("rating out of range", _set("reviews", "rating", 0, 6), "reviews", "rating", "review_id='r1'", "out of range"),
    ("not a choice", _set("complaints", "kind", 1, "fake"), "complaints", "kind", "complaint_id='c2'", "not allowed"),
    ("too long", _set("listings", "title", 3, "长" * 501), "listings", "title", "listing_id='l4'", "longer than 500"),
    (
        "control char",
        _set("shops", "device_id", 2, "d\x003"),
        "shops",
        "device_id",
        "shop_id='s3'",
        "control character",
    ),
    (
        "control char text",
        _set("reviews", "text", 1, "bad\x1bword"),
        "reviews",
        "text",
        "review_id='r2'",
        "control character",
    ),
    ("empty id", _set("orders", "buyer_id", 2, ""), "orders", "buyer_id", "order_id='o3'", "empty value"),
    ("duplicate key", _dup("orders", 0, 2), "orders", "order_id", "order_id='o1'", "duplicate key"),
    (
        "duplicate composite",
        _dup("authorisations", 0, 1),
        "authorisations",
        "brand, shop_id",
        "(brand='Acme', shop_id='s1')",
        "duplicate key",
    ),
    (
        "dangling fk",
        _set("orders", "listing_id", 1, "l99"),
        "orders",
        "listing_id",
        "order_id='o2'",
        "missing listings.listing_id",
    ),
    (
        "dangling composite-table fk",
        _set("authorisations", "brand", 1, "Nobody"),
        "authorisations",
        "brand",
        "(brand='Nobody', shop_id='s1')",
        "missing brands.brand",
    ),
    (
        "dangling nullable fk",
        _set("complaints", "order_id", 1, "o77"),
        "complaints",
        "order_id",
        "complaint_id='c2'",
        "missing orders.order_id",
    ),
    (
        "after snapshot",
        _set("verdicts", "decided_at", 0, T("2025-07-01")),
        "verdicts",
        "decided_at",
        "verdict_id='v1'",
        "after the snapshot",
    ),
    (
        "far future",
        _set("reviews", "created_at", 1, T("2999-01-01")),
        "reviews",
        "created_at",
        "review_id='r2'",
        "after the snapshot",
    ),
    ("far past", _set("shops", "opened_at", 0, T("1970-01-01")), "shops", "opened_at", "shop_id='s1'", "before 2000"),
    (
        "refund before order",
        _set("orders", "refunded_at", 1, T("2023-04-01")),
        "orders",
        "refunded_at",
        "order_id='o2'",
        "refunded before",
    ),
    (
        "delisted before created",
        _set("listings", "delisted_at", 1, T("2023-03-01")),
        "listings",
        "delisted_at",
        "listing_id='l2'",
        "delisted before",
    ),
    (
        "order before listing",
        _set("orders", "ordered_at", 0, T("2023-01-15")),
        "orders",
        "ordered_at",
        "order_id='o1'",
        "before its listing",
    ),
    (
        "review before order",
        _set("reviews", "created_at", 0, T("2023-02-01")),
        "reviews",
        "created_at",
        "review_id='r1'",
        "before its order",
    ),
    (
        "complaint before order",
        _set("complaints", "filed_at", 0, T("2023-04-01")),
        "complaints",
        "filed_at",
        "complaint_id='c1'",
        "before its order",
    ),
    (
        "listing before shop",
        _set("listings", "created_at", 2, T("2023-03-01")),
        "listings",
        "created_at",
        "listing_id='l3'",
        "before its shop opened",
    ),
    (
        "edit before listing",
        _set("listing_edits", "edited_at", 0, T("2023-03-01")),
        "listing_edits",
        "edited_at",
        "edit_id='e1'",
        "before its listing",
    ),
    (
        "order shop mismatch",
        _set("orders", "shop_id", 2, "s1"),
        "orders",
        "shop_id",
        "order_id='o3'",
        "not the shop of its listing",
    ),
    (
        "review shop mismatch",
        _set("reviews", "shop_id", 1, "s2"),
        "reviews",
        "shop_id",
        "review_id='r2'",
        "not the shop of its order",
    ),
]


CASE_FIELDS = ("case", "breaker", "table", "column", "row", "words")


def _check_message(exc: DataContractError, table: str, column: str, row: str, words: str) -> None:
    msg = str(exc)
    assert exc.table == table and f"table '{table}'" in msg, msg
    assert exc.column == column and f"column '{column}'" in msg, msg
    if row:
        assert exc.rows and exc.rows[0] == row and row in msg, msg
    assert words in msg, msg
    assert "\n" not in msg and "Traceback" not in msg


@pytest.mark.parametrize(
    ("case", "breaker", "table", "column", "row", "words"), BAD_CASES, ids=[c[0] for c in BAD_CASES]
)
def test_bad_frames_are_refused(case: str, breaker: Breaker, table: str, column: str, row: str, words: str) -> None:
    frames = {k: v.copy() for k, v in valid_frames().items()}
    breaker(frames)
    with pytest.raises(DataContractError) as info:
        validate_frames(frames, SNAPSHOT)
    _check_message(info.value, table, column, row, words)


def _parquet_ok(case: str) -> bool:
    # a string in a typed Parquet column is a whole-column type error (tested separately)
    return case not in {"string in float", "string in int", "bad timestamp"}


@pytest.mark.parametrize(
    ("case", "breaker", "table", "column", "row", "words"), BAD_CASES, ids=[c[0] for c in BAD_CASES]
)
def test_bad_csv_files_load_nothing(
    tmp_path: Path, case: str, breaker: Breaker, table: str, column: str, row: str, words: str
) -> None:
    frames = {k: v.copy() for k, v in valid_frames().items()}
    breaker(frames)
    folder = write_csv_folder(frames, tmp_path / "mp")
    with pytest.raises(DataContractError) as info:
        load_marketplace(folder)
    if case in ("NaN price", "empty id"):
        words = "missing value"  # an empty CSV field is null
    if row and not row.startswith("row"):
        data_row = int(np.flatnonzero(_row_matches(frames[table], row))[0]) + 1
        row = f"{row} (row {data_row})"
    _check_message(info.value, table, column, row, words)


def _row_matches(frame: pd.DataFrame, label: str) -> np.ndarray:
    mask = np.ones(len(frame), dtype=bool)
    for part in label.strip("()").split(", "):
        key, value = part.split("=", 1)
        mask &= (frame[key].astype(str) == value.strip("'")).to_numpy()
    return mask


@pytest.mark.parametrize(
    CASE_FIELDS,
    [c for c in BAD_CASES if _parquet_ok(c[0])],
    ids=[c[0] for c in BAD_CASES if _parquet_ok(c[0])],
)
def test_bad_parquet_files_load_nothing(
    tmp_path: Path, case: str, breaker: Breaker, table: str, column: str, row: str, words: str
) -> None:
    frames = {k: v.copy() for k, v in valid_frames().items()}
    breaker(frames)
    folder = tmp_path / "mp"
    folder.mkdir()
    for name, frame in frames.items():
        # write what the frame holds (not through the contract writer, which would refuse it)
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), folder / f"{name}.parquet")
    write_manifest(folder, SNAPSHOT)
    with pytest.raises(DataContractError) as info:
        load_marketplace(folder)
    if case == "NaN price":
        words = "missing value"  # pyarrow's from_pandas writes NaN as null (a real NaN: next test)
    _check_message(info.value, table, column, row, words)


def test_nan_stored_in_parquet_is_refused(tmp_path: Path) -> None:
    folder = write_parquet_folder(valid_frames(), tmp_path / "mp")
    table = pq.read_table(folder / "brands.parquet")
    prices = pa.array([float("nan"), 1.0], type=pa.float64(), from_pandas=False)
    pq.write_table(table.set_column(2, "reference_price", prices), folder / "brands.parquet")
    with pytest.raises(DataContractError) as info:
        load_marketplace(folder)
    _check_message(info.value, "brands", "reference_price", "brand='Acme'", "NaN or infinite")


def test_wrong_parquet_column_type_is_named(tmp_path: Path) -> None:
    folder = write_parquet_folder(valid_frames(), tmp_path / "mp")
    frame = valid_frames()["orders"]
    frame["amount"] = frame["amount"].astype(str).map(lambda s: "free" if s.startswith("89") else s)
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), folder / "orders.parquet")
    with pytest.raises(DataContractError) as info:
        load_marketplace(folder)
    _check_message(info.value, "orders", "amount", "order_id='o3'", "not a number")
    frame = valid_frames()["reviews"]
    frame["created_at"] = [True, False]
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), folder / "reviews.parquet")
    frames = valid_frames()
    write_table(frames["orders"], folder, "orders")
    with pytest.raises(DataContractError) as info:
        load_marketplace(folder)
    _check_message(info.value, "reviews", "created_at", "review_id='r1'", "stored as bool, expected a timestamp")


# -- broken files -------------------------------------------------------------------------------------


def test_empty_file(tmp_path: Path) -> None:
    folder = write_parquet_folder(valid_frames(), tmp_path / "mp")
    (folder / "orders.parquet").write_bytes(b"")
    with pytest.raises(DataContractError, match=r"table 'orders': orders.parquet is empty"):
        load_marketplace(folder)


def test_unreadable_parquet(tmp_path: Path) -> None:
    folder = write_parquet_folder(valid_frames(), tmp_path / "mp")
    (folder / "reviews.parquet").write_bytes(b"PAR1 this is not really parquet \x00\x01")
    with pytest.raises(DataContractError, match=r"table 'reviews': cannot read reviews.parquet as Parquet"):
        load_marketplace(folder)


def test_file_that_is_not_a_table(tmp_path: Path) -> None:
    folder = write_csv_folder(valid_frames(), tmp_path / "mp")
    (folder / "brands.csv").write_text("Dear team,\nhere are the brands you asked for.\n", encoding="utf-8")
    with pytest.raises(DataContractError) as info:
        load_marketplace(folder)
    assert info.value.table == "brands" and "missing required column" in str(info.value)


def test_ragged_csv(tmp_path: Path) -> None:
    folder = write_csv_folder(valid_frames(), tmp_path / "mp")
    with (folder / "verdicts.csv").open("a", encoding="utf-8") as fh:
        fh.write("v2,s2\n")
    with pytest.raises(DataContractError, match=r"table 'verdicts': cannot read verdicts.csv as CSV"):
        load_marketplace(folder)


def test_invalid_utf8_in_csv_names_the_row(tmp_path: Path) -> None:
    folder = write_csv_folder(valid_frames(), tmp_path / "mp")
    path = folder / "reviews.csv"
    path.write_bytes(path.read_bytes().replace("假货".encode(), b"\xe5\x81\xff\xfe"))
    with pytest.raises(DataContractError) as info:
        load_marketplace(folder)
    _check_message(info.value, "reviews", "text", "review_id='r2' (row 2)", "invalid UTF-8")


def test_required_table_missing_and_both_formats(tmp_path: Path) -> None:
    folder = write_parquet_folder(valid_frames(), tmp_path / "mp")
    (folder / "reviews.parquet").unlink()
    with pytest.raises(DataContractError, match=r"table 'reviews': file missing"):
        load_marketplace(folder)
    write_csv_folder({"reviews": valid_frames()["reviews"], "orders": valid_frames()["orders"]}, folder)
    with pytest.raises(DataContractError, match=r"both orders.parquet and orders.csv"):
        load_marketplace(folder)


def test_bad_manifest_and_folder(tmp_path: Path) -> None:
    with pytest.raises(DataContractError, match="is not a folder"):
        load_marketplace(tmp_path / "nowhere")
    folder = write_parquet_folder(valid_frames(), tmp_path / "mp")
    (folder / "manifest.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(DataContractError, match=r"table 'manifest'.*not valid UTF-8 JSON"):
        load_marketplace(folder)
    (folder / "manifest.json").write_text(json.dumps({"snapshot_at": "yesterday-ish"}), encoding="utf-8")
    with pytest.raises(DataContractError, match=r"column 'snapshot_at': not a time"):
        load_marketplace(folder)
    (folder / "manifest.json").write_text(json.dumps({"snapshot_at": "1990-01-01T00:00:00"}), encoding="utf-8")
    with pytest.raises(DataContractError, match=r"implausible snapshot time"):
        load_marketplace(folder)


# -- accepted variations ------------------------------------------------------------------------------


def test_parquet_type_variations_are_converted(tmp_path: Path) -> None:
    frames = valid_frames()
    folder = write_parquet_folder(frames, tmp_path / "mp")
    reviews = pq.read_table(folder / "reviews.parquet")
    reviews = reviews.set_column(4, "rating", reviews.column("rating").cast(pa.int8()))
    reviews = reviews.set_column(5, "text", reviews.column("text").dictionary_encode())
    pq.write_table(reviews, folder / "reviews.parquet")
    orders = pq.read_table(folder / "orders.parquet")
    ns_tz = orders.column("ordered_at").cast(pa.timestamp("ns", tz="UTC")).cast(pa.timestamp("ns", tz="Asia/Shanghai"))
    orders = orders.set_column(4, "ordered_at", ns_tz)
    orders = orders.set_column(5, "amount", orders.column("amount").cast(pa.float32()))
    pq.write_table(orders, folder / "orders.parquet")
    verdicts = pq.read_table(folder / "verdicts.parquet")
    verdicts = verdicts.set_column(2, "decided_at", verdicts.column("decided_at").cast(pa.date32()))
    pq.write_table(verdicts, folder / "verdicts.parquet")
    mp = load_marketplace(folder)
    check_dtypes(mp)
    assert mp.reviews["rating"].tolist() == [5, 1]
    assert mp.orders["ordered_at"].tolist() == frames["orders"]["ordered_at"].tolist()
    assert mp.orders["amount"].tolist() == frames["orders"]["amount"].tolist()  # these survive float32
    assert mp.verdicts["decided_at"].iloc[0] == T("2023-08-01")


def test_csv_with_bom_shuffled_columns_and_quoted_newlines(tmp_path: Path) -> None:
    frames = valid_frames()
    folder = write_csv_folder(frames, tmp_path / "mp")
    shops = frames["shops"].astype(object).map(_csv_value)
    shops = shops[list(reversed(shops.columns))]
    (folder / "shops.csv").write_bytes(b"\xef\xbb\xbf" + shops.to_csv(index=False).encode("utf-8"))
    mp = load_marketplace(folder)
    assert mp.shops["owner_address"].tolist()[1] == "1 Main St\nApt 2"
    assert list(mp.shops.columns) == TABLES_BY_NAME["shops"].column_names


# -- more bad input --------------------------------------------------------------------------------------


def test_bad_folder_loads_nothing_and_the_fixed_one_loads(tmp_path: Path) -> None:
    frames = valid_frames()
    frames["verdicts"].loc[0, "outcome"] = "probably"
    folder = write_parquet_folder(frames, tmp_path / "mp")
    result: Marketplace | None = None
    with pytest.raises(DataContractError, match=r"table 'verdicts', column 'outcome'"):
        result = load_marketplace(folder)
    assert result is None  # nothing was handed out, not even the valid tables
    write_table(valid_frames()["verdicts"], folder, "verdicts")
    assert len(load_marketplace(folder).verdicts) == 1


def test_huge_string_in_csv(tmp_path: Path) -> None:
    frames = valid_frames()
    frames["reviews"].loc[1, "text"] = "假" * 2_000_000
    folder = write_csv_folder(frames, tmp_path / "mp")
    with pytest.raises(DataContractError) as info:
        load_marketplace(folder)
    _check_message(info.value, "reviews", "text", "review_id='r2' (row 2)", "longer than 5000 characters")


def test_unreadable_key_names_the_row_number(tmp_path: Path) -> None:
    frames = valid_frames()
    frames["listings"].loc[2, "listing_id"] = None
    folder = write_csv_folder(frames, tmp_path / "mp")
    with pytest.raises(DataContractError) as info:
        load_marketplace(folder)
    _check_message(info.value, "listings", "listing_id", "row 3", "missing value")


def test_duplicate_and_unknown_names(tmp_path: Path) -> None:
    folder = write_parquet_folder(valid_frames(), tmp_path / "mp")
    table = pq.read_table(folder / "brands.parquet")
    doubled = pa.Table.from_arrays([*table.columns, table.column(0)], names=[*table.column_names, "brand"])
    pq.write_table(doubled, folder / "brands.parquet")
    with pytest.raises(DataContractError, match=r"table 'brands', column 'brand': column appears more than once"):
        load_marketplace(folder)
    with pytest.raises(DataContractError, match=r"table 'sellers': not a contract table"):
        validate_frames({"sellers": valid_frames()["shops"]}, SNAPSHOT)


# -- key encodings: numbered ids (fast path) and any other strings (hashed) agree -----------------------


def _rename(frames: dict[str, pd.DataFrame], column: str, mapping: dict[str, str]) -> None:
    for frame in frames.values():
        if column in frame.columns:
            frame[column] = frame[column].map(lambda v: mapping.get(v, v) if isinstance(v, str) else v)


def test_leading_zeros_make_different_ids() -> None:
    frames = valid_frames()
    _rename(frames, "order_id", {"o1": "o07", "o2": "o7", "o3": "o007", "o4": "o0"})
    mp = validate_frames(frames, SNAPSHOT)
    assert mp.orders["order_id"].tolist() == ["o07", "o7", "o007", "o0"]
    frames["reviews"].loc[0, "order_id"] = "o7"  # the review of o07 now points at o7 (a later order)
    with pytest.raises(DataContractError) as info:
        validate_frames(frames, SNAPSHOT)
    _check_message(info.value, "reviews", "created_at", "review_id='r1'", "before its order")


@pytest.mark.parametrize("style", ["uuid", "numbered", "sparse-numbers"])
def test_key_checks_do_not_depend_on_the_id_style(style: str) -> None:
    import uuid

    frames = valid_frames()
    for column, ids in (("shop_id", ["s1", "s2", "s3"]), ("order_id", ["o1", "o2", "o3", "o4"])):
        if style == "uuid":
            new = {i: str(uuid.uuid5(uuid.NAMESPACE_URL, i)) for i in ids}
        elif style == "numbered":
            new = {i: f"{column[0].upper()}{int(i[1:]):08d}" for i in ids}
        else:
            new = {i: f"{column[0]}{int(i[1:]) * 10**15}" for i in ids}
        _rename(frames, column, new)
    mp = validate_frames(frames, SNAPSHOT)
    assert len(mp.orders) == 4
    broken = {k: v.copy() for k, v in frames.items()}
    broken["reviews"].loc[1, "order_id"] = "X-not-an-order"  # a different shape: falls back to hashing
    with pytest.raises(DataContractError, match=r"table 'reviews', column 'order_id': refers to a missing orders"):
        validate_frames(broken, SNAPSHOT)
    broken = {k: v.copy() for k, v in frames.items()}
    broken["orders"].loc[3, "order_id"] = broken["orders"].loc[0, "order_id"]
    with pytest.raises(DataContractError, match=r"table 'orders', column 'order_id': duplicate key"):
        validate_frames(broken, SNAPSHOT)
    broken = {k: v.copy() for k, v in frames.items()}
    broken["complaints"].loc[0, "shop_id"] = broken["shops"].loc[1, "shop_id"]
    with pytest.raises(DataContractError, match=r"table 'complaints', column 'shop_id': complaint's shop is not"):
        validate_frames(broken, SNAPSHOT)


def test_partitioned_parquet_folder_and_pandas_index_columns(tmp_path: Path) -> None:
    frames = valid_frames()
    folder = write_parquet_folder(frames, tmp_path / "mp")
    (folder / "orders.parquet").unlink()
    parts = folder / "orders.parquet"
    parts.mkdir()
    orders = frames["orders"]
    for i, half in enumerate((orders.iloc[:2], orders.iloc[2:])):
        write_table(half, tmp_path / f"part{i}", "orders")
        (tmp_path / f"part{i}" / "orders.parquet").rename(parts / f"part-{i}.parquet")
    frames["reviews"].set_index(pd.Index([10, 20])).to_parquet(folder / "reviews.parquet")  # writes the index
    mp = load_marketplace(folder)
    assert mp.orders["order_id"].tolist() == ["o1", "o2", "o3", "o4"]
    assert list(mp.reviews.columns) == TABLES_BY_NAME["reviews"].column_names
    for p in parts.iterdir():
        p.unlink()
    with pytest.raises(DataContractError, match=r"table 'orders': orders.parquet is a folder without Parquet parts"):
        load_marketplace(folder)


def test_all_null_and_empty_reference_columns() -> None:
    frames = valid_frames()
    frames["complaints"]["order_id"] = None
    frames["listing_edits"] = frames["listing_edits"].iloc[:0]
    frames["reviews"] = frames["reviews"].iloc[:0]
    mp = validate_frames(frames, SNAPSHOT)
    assert mp.complaints["order_id"].isna().all() and len(mp.reviews) == 0
    check_dtypes(mp)


@pytest.mark.parametrize("style", ["naive", "zoned", "mixed"])
def test_csv_time_styles(tmp_path: Path, style: str) -> None:
    folder = write_csv_folder(valid_frames(), tmp_path / "mp")
    path = folder / "orders.csv"
    lines = path.read_text(encoding="utf-8").splitlines()
    if style != "naive":
        # every ordered_at moved to +08:00 (same instant); "mixed" leaves the first row naive
        for i in range(2 if style == "mixed" else 1, len(lines)):
            cells = lines[i].split(",")
            local = pd.Timestamp(cells[4]) + pd.Timedelta(hours=8)
            cells[4] = local.isoformat() + "+08:00"
            lines[i] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    mp = load_marketplace(folder)
    assert mp.orders["ordered_at"].tolist() == valid_frames()["orders"]["ordered_at"].tolist()


def test_unreadable_files_are_named(tmp_path: Path) -> None:
    import os

    if os.geteuid() == 0:
        # root reads anything: make the "file" unreadable another way (a dangling symlink)
        folder = write_csv_folder(valid_frames(), tmp_path / "mp")
        (folder / "orders.csv").unlink()
        (folder / "orders.csv").symlink_to(tmp_path / "gone.csv")
        with pytest.raises(DataContractError, match=r"table 'orders': file missing"):
            load_marketplace(folder)
        (folder / "manifest.json").unlink()
        (folder / "manifest.json").mkdir()
        write_csv_folder({"orders": valid_frames()["orders"]}, tmp_path / "other")
        (folder / "orders.csv").unlink()
        (tmp_path / "other" / "orders.csv").rename(folder / "orders.csv")
        with pytest.raises(DataContractError, match=r"table 'manifest': cannot read manifest.json"):
            load_marketplace(folder)
        return
    folder = write_csv_folder(valid_frames(), tmp_path / "mp")
    (folder / "orders.csv").chmod(0)
    with pytest.raises(DataContractError, match=r"table 'orders': cannot read orders.csv"):
        load_marketplace(folder)
