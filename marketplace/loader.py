"""Loading a marketplace folder (``<table>.parquet`` or ``<table>.csv`` per table) into a validated
:class:`~marketplace.tables.Marketplace`.

The folder is read whole, every rule of the data contract is checked (``marketplace.validate``),
and only then is a Marketplace returned: a bad folder raises one
:class:`~core.errors.DataContractError` and loads nothing. ``docs/data-contract.md`` describes the
contract for people who export into it.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from core.errors import DajiaError, DataContractError
from marketplace.schema import MANIFEST_FILE, TABLES, Table
from marketplace.tables import Marketplace
from marketplace.validate import RawTable, TableChecker, check_snapshot, validate_frames, validate_raw

__all__ = ["SnapshotMissing", "load_marketplace", "read_snapshot_at", "validate_frames"]


class SnapshotMissing(DataContractError):
    """The folder has no ``manifest.json`` with a ``snapshot_at`` and none was given: the snapshot time
    is never guessed (taking "now" would move every label window and fail far later, misleadingly)."""

    def __init__(self, folder: object):
        self.table, self.column, self.rows = "manifest", "snapshot_at", []
        self.problem = (
            f"marketplace folder '{folder}' has no {MANIFEST_FILE} with a snapshot_at, so its snapshot time "
            f"(no event after it) is unknown: pass --snapshot-at TIME (ISO-8601, or 'now') or add {MANIFEST_FILE} "
            '(e.g. {"snapshot_at": "2025-06-30T00:00:00"})'
        )
        DajiaError.__init__(self, self.problem)


def load_marketplace(path: str | Path, snapshot_at: object = None) -> Marketplace:
    """Read and validate the marketplace in folder ``path``.

    The snapshot time (no event may lie after it) comes from ``snapshot_at`` when given (the string
    ``"now"`` is now, UTC), else from ``manifest.json``'s ``snapshot_at``; with neither it is a
    :class:`SnapshotMissing` error. Tz-aware times are converted to UTC; naive ones are taken as UTC.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise DataContractError("marketplace", None, f"'{folder}' is not a folder")
    snap = check_snapshot(read_snapshot_at(folder, snapshot_at))
    raw: dict[str, RawTable] = {}
    for spec in TABLES:
        table = _read_table(folder, spec)
        if table is not None:
            raw[spec.name] = table
    mp = validate_raw(raw, snap)
    if mp.shops.empty:  # every table empty (no shop, so no child row either): nothing to learn or score
        raise DataContractError("shops", None, f"no rows: the marketplace in '{folder}' holds no shop")
    return mp


def read_snapshot_at(folder: Path, given: object = None) -> object:
    """The snapshot time: ``given`` when it is not None (``"now"``: now, UTC), else ``snapshot_at`` from
    the folder's manifest; :class:`SnapshotMissing` when there is neither."""
    if given is not None:
        return snapshot_value(given)
    manifest = folder / MANIFEST_FILE
    if not manifest.exists():
        raise SnapshotMissing(folder)
    try:
        doc = json.loads(manifest.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DataContractError("manifest", None, f"cannot read {MANIFEST_FILE}: {_one_line(exc)}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataContractError(
            "manifest", None, f"{MANIFEST_FILE} is not valid UTF-8 JSON: {_one_line(exc)}"
        ) from None
    if not isinstance(doc, dict):
        raise DataContractError("manifest", None, f"{MANIFEST_FILE} must hold a JSON object")
    value = doc.get("snapshot_at")
    if value is None:
        raise SnapshotMissing(folder)
    if not isinstance(value, str):
        raise DataContractError("manifest", "snapshot_at", f"expected an ISO-8601 time string, got {value!r}")
    return value


def snapshot_value(given: object) -> object:
    """A snapshot time given by a person: ``"now"`` (any case) is now in UTC; anything else as given."""
    if isinstance(given, str) and given.strip().lower() == "now":
        return pd.Timestamp(datetime.now(UTC))
    return given


def _one_line(exc: BaseException) -> str:
    """A library's error text on one line (messages are printed as a single line)."""
    text = " ".join(str(exc).split())
    return text if len(text) <= 300 else text[:297] + "..."


def _read_table(folder: Path, spec: Table) -> RawTable | None:
    parquet = folder / f"{spec.name}.parquet"
    text = folder / f"{spec.name}.csv"
    if parquet.exists() and text.exists():
        raise DataContractError(spec.name, None, f"both {parquet.name} and {text.name} exist: keep one")
    if not parquet.exists() and not text.exists():
        if spec.optional:
            return None
        raise DataContractError(spec.name, None, f"file missing: expected {parquet.name} or {text.name} in {folder}")
    file = parquet if parquet.exists() else text
    try:
        if file is parquet and file.is_dir():
            return _read_parquet(file, spec)  # a partitioned export: a folder of Parquet parts
        if not file.is_file():
            raise DataContractError(spec.name, None, f"{file.name} is not a file")
        if file.stat().st_size == 0:
            raise DataContractError(spec.name, None, f"{file.name} is empty (0 bytes)")
        return _read_parquet(file, spec) if file is parquet else _read_csv(file, spec)
    except OSError as exc:  # permissions, a file vanishing while read, a broken disk
        raise DataContractError(spec.name, None, f"cannot read {file.name}: {_one_line(exc)}") from None


def _is_pandas_index(name: str) -> bool:
    """``__index_level_0__``: a pandas index written by ``DataFrame.to_parquet``, not data."""
    return name.startswith("__index_level_") and name.endswith("__")


def _read_parquet(file: Path, spec: Table) -> RawTable:
    try:
        if file.is_dir():
            parts = sorted(p for p in file.rglob("*") if p.is_file() and not p.name.startswith((".", "_")))
            if not parts:
                raise DataContractError(spec.name, None, f"{file.name} is a folder without Parquet parts")
            schema = pq.ParquetDataset(file).schema
        else:
            schema = pq.read_schema(file)
        names = [n for n in schema.names if not _is_pandas_index(n)]
        TableChecker(spec, "parquet", 0).check_columns(names)
        table = pq.read_table(file, columns=names)
    except (pa.ArrowException, OSError, ValueError) as exc:  # a corrupt footer can fail to decode names
        raise DataContractError(spec.name, None, f"cannot read {file.name} as Parquet: {_one_line(exc)}") from None
    arrays = {name: table.column(i) for i, name in enumerate(table.column_names)}
    return RawTable(spec.name, list(table.column_names), arrays, table.num_rows, "parquet")


def _csv_header(file: Path, spec: Table) -> list[str]:
    with file.open("rb") as fh:
        first = fh.readline(1 << 20)
    try:
        line = first.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DataContractError(spec.name, None, f"{file.name}: header line is not UTF-8 text") from None
    try:
        header = next(csv.reader(io.StringIO(line, newline="")), [])
    except csv.Error as exc:
        raise DataContractError(spec.name, None, f"{file.name}: unreadable header line ({exc})") from None
    if not header or all(not h.strip() for h in header):
        raise DataContractError(spec.name, None, f"{file.name}: no header line (expected column names)")
    return header


def _read_csv(file: Path, spec: Table) -> RawTable:
    header = _csv_header(file, spec)
    TableChecker(spec, "csv", 0).check_columns(header)  # a file that is not this table fails here
    # every field is read as raw bytes: UTF-8, empties and types are checked per column afterwards
    options = pacsv.ConvertOptions(
        column_types={name: pa.binary() for name in header},
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
    )
    try:
        try:
            table = pacsv.read_csv(file, read_options=pacsv.ReadOptions(block_size=8 << 20), convert_options=options)
        except pa.ArrowInvalid as exc:
            if "straddl" not in str(exc):
                raise
            # a single field longer than a block: read again in one block, so the length rule names it
            whole = pacsv.ReadOptions(block_size=min(file.stat().st_size + 1, (1 << 31) - 1))
            table = pacsv.read_csv(file, read_options=whole, convert_options=options)
    except (pa.ArrowException, OSError) as exc:
        raise DataContractError(spec.name, None, f"cannot read {file.name} as CSV: {_one_line(exc)}") from None
    names = list(table.column_names)
    arrays: dict[str, pa.ChunkedArray] = {}
    for i, name in enumerate(names):
        column = table.column(i)
        if name in spec.column_names:
            col = spec.column(name)
            # an empty field is null, except in a required text column where it is the empty string
            if not (col.kind == "text" and not col.nullable):
                column = _empty_to_null(column)
        arrays[name] = column
    return RawTable(spec.name, names, arrays, table.num_rows, "csv")


def _empty_to_null(column: pa.ChunkedArray) -> pa.ChunkedArray:
    empty = pc.equal(pc.binary_length(column), 0)
    if not pc.any(empty).as_py():
        return column
    return pc.if_else(empty, pa.scalar(None, type=column.type), column)
