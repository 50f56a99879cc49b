"""Validation of the marketplace data contract: the whole marketplace, vectorised with Arrow.

Every table arrives as Arrow columns (read from Parquet or CSV by ``marketplace.loader``, or
converted from in-memory pandas frames by :func:`validate_frames`). The checks run in three
passes, and the first broken rule raises one :class:`core.errors.DataContractError` naming the
table, the column and the first offending rows, so a bad marketplace never becomes a partial
:class:`Marketplace`:

1. every table, in load order: columns present and known, each column coerced to its contract type
   and its values checked, then time order inside rows (``marketplace.validate_columns``);
2. every table, in load order: its key is unique, its foreign keys resolve, and the consistency
   rules that go through them hold (``marketplace.validate_keys``);
3. the checked Arrow tables become pandas frames in the contract dtypes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pyarrow as pa

from core.errors import DataContractError
from marketplace.io import arrow_schema
from marketplace.schema import TABLES, TABLES_BY_NAME
from marketplace.tables import Marketplace
from marketplace.validate_columns import (
    EARLIEST,
    SNAPSHOT_LEEWAY,
    Origin,
    RowRef,
    TableChecker,
    as_utc_naive,
    series_to_arrow,
    string_dtype,
)
from marketplace.validate_keys import (
    CROSS_RULES,
    ROW_RULES,
    KeyIndex,
    check_references,
    check_row_rules,
    check_unique,
)

__all__ = [
    "CROSS_RULES",
    "EARLIEST",
    "ROW_RULES",
    "RawTable",
    "RowRef",
    "TableChecker",
    "check_snapshot",
    "string_dtype",
    "validate_frames",
    "validate_raw",
]


@dataclass
class RawTable:
    """A table as read, before coercion: Arrow columns by name, where it came from."""

    name: str
    columns: list[str]
    arrays: dict[str, pa.ChunkedArray]
    nrows: int
    origin: Origin


def check_snapshot(snapshot_at: object) -> pd.Timestamp:
    """The snapshot time as naive UTC, refused when absurd (before 2000, or over a year after now)."""
    ts = as_utc_naive(snapshot_at)
    now = pd.Timestamp(datetime.now(UTC)).tz_localize(None)
    if ts < EARLIEST or ts > now + SNAPSHOT_LEEWAY:
        raise DataContractError(
            "manifest", "snapshot_at", f"implausible snapshot time {ts.isoformat()} (must lie between 2000 and now)"
        )
    return ts


def validate_raw(raw: Mapping[str, RawTable], snapshot_at: pd.Timestamp) -> Marketplace:
    """Coerce and check every table (absent tables load empty), then build the Marketplace.

    A foreign key into a table that is absent from ``raw`` is not checked: the caller has no
    such table (inline records carry no brands). ``load_marketplace`` never passes an absent
    required table. The raw columns are consumed (popped) as they are converted, to bound memory.
    """
    for name in raw:
        if name not in TABLES_BY_NAME:
            raise DataContractError(name, None, f"not a contract table (tables: {', '.join(TABLES_BY_NAME)})")
    columns: dict[str, dict[str, pa.ChunkedArray]] = {}
    checkers: dict[str, TableChecker] = {}
    for spec in TABLES:  # pass 1: columns and values
        if spec.name not in raw:
            continue
        table = raw[spec.name]
        checker = TableChecker(spec, table.origin, table.nrows)
        checker.check_columns(table.columns)
        arrays: dict[str, pa.ChunkedArray] = {}
        for name in list(spec.key) + [c for c in spec.column_names if c not in spec.key]:
            col = spec.column(name)
            arrays[name] = checker.coerce(col, table.arrays.pop(name))  # the raw column is not kept
            if name in spec.key and all(k in arrays for k in spec.key):
                checker.keys = [arrays[k] for k in spec.key]
            checker.check_column(col, arrays[name], snapshot_at)
        check_row_rules(checker, arrays)
        columns[spec.name] = arrays
        checkers[spec.name] = checker
    index = KeyIndex(columns)
    for spec in TABLES:  # pass 2: keys and references
        if spec.name in columns:
            check_unique(checkers[spec.name], index)
            check_references(checkers[spec.name], index, columns)
    del index
    frames: dict[str, pd.DataFrame] = {}
    for spec in TABLES:  # pass 3: pandas frames in the contract dtypes
        if spec.name in columns:
            arrays = columns.pop(spec.name)
            table = pa.table([arrays[c] for c in spec.column_names], names=spec.column_names)
            del arrays
        else:
            table = arrow_schema(spec).empty_table()
        frames[spec.name] = _to_pandas(table)
    return Marketplace(**frames, snapshot_at=snapshot_at)


def _types_mapper(t: pa.DataType) -> Any:
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return string_dtype()
    return None


def _to_pandas(table: pa.Table) -> pd.DataFrame:
    frame = table.to_pandas(types_mapper=_types_mapper, split_blocks=True, self_destruct=True)
    for name in frame.columns:
        if pd.api.types.is_datetime64_any_dtype(frame[name].dtype) and frame[name].dtype != "datetime64[us]":
            frame[name] = frame[name].astype("datetime64[us]")
    return frame


def validate_frames(frames: Mapping[str, pd.DataFrame], snapshot_at: object = None) -> Marketplace:
    """Validate tables already in memory, with the same checks and messages as ``load_marketplace``.

    ``frames`` maps table names to DataFrames (any index; columns by name). A table missing from
    the mapping loads empty and foreign keys into it are not checked (inline records carry no
    brands or verdicts). ``snapshot_at`` defaults to now (UTC).
    """
    snap = check_snapshot(pd.Timestamp(datetime.now(UTC)) if snapshot_at is None else snapshot_at)
    raw: dict[str, RawTable] = {}
    for name, frame in frames.items():
        if name not in TABLES_BY_NAME:
            raise DataContractError(name, None, f"not a contract table (tables: {', '.join(TABLES_BY_NAME)})")
        if not isinstance(frame, pd.DataFrame):
            raise DataContractError(name, None, f"expected a pandas DataFrame, got {type(frame).__name__}")
        spec = TABLES_BY_NAME[name]
        checker = TableChecker(spec, "frame", len(frame))
        names = [str(c) for c in frame.columns]
        checker.check_columns(names)
        flat = frame.reset_index(drop=True)
        arrays = {c: series_to_arrow(checker, spec.column(c), flat[c]) for c in spec.column_names}
        raw[name] = RawTable(name, names, arrays, len(frame), "frame")
    return validate_raw(raw, snap)
