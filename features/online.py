"""Inline shop records (``marketplace.records.ShopRecord``) as numpy column tables, for the online path.

``records_to_frames`` (pandas) is the general conversion; for one shop its DataFrame construction alone
costs several milliseconds, more than every feature together. This builds the same tables, same
columns and values, as :class:`~features.context.ColumnTable` (object arrays for strings,
``datetime64[us]`` with NaT for null times, float64, int64, bool), which the feature builders read
through exactly the same code as the batch frames. Brands and verdicts are not in records: they are
empty here and the fitted pipeline's brand table and adverse-linkage index are used.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import cache
from typing import Any

import numpy as np

from features.context import ColumnTable
from marketplace.records import record_lists
from marketplace.schema import TABLES_BY_NAME, Kind, Table

#: the dtype of the numeric kinds (strings and times are handled in ``_array``)
_NUMPY: dict[Kind, Any] = {"int": np.int64, "float": np.float64, "bool": np.bool_}


def _array(values: list[Any], kind: Kind) -> np.ndarray:
    if kind == "timestamp":  # datetimes (naive UTC, as records hold them); None -> NaT
        return np.array(values, dtype="datetime64[us]")
    if kind in ("string", "text"):
        out = np.empty(len(values), dtype=object)
        out[:] = values
        return out
    return np.asarray(values, dtype=_NUMPY[kind])


def _table(spec: Table, columns: Mapping[str, list[Any]], n: int) -> ColumnTable:
    return ColumnTable({c.name: _array(columns[c.name], c.kind) for c in spec.columns}, n)


@cache
def empty_table(name: str) -> ColumnTable:
    """An empty contract table as columns (shared; never mutated)."""
    spec = TABLES_BY_NAME[name]
    return _table(spec, {c.name: [] for c in spec.columns}, 0)


def records_to_tables(records: Iterable[Any]) -> dict[str, ColumnTable]:
    """All nine contract tables for the records (``ShopRecord``; brands and verdicts empty)."""
    tables = {
        spec.name: _table(spec, columns, n) if n else empty_table(spec.name)
        for spec, columns, n in record_lists(list(records))
    }
    return _with_reference(tables)


def tables_from_columns(
    columns: Mapping[str, Mapping[str, np.ndarray]], rows: Mapping[str, int]
) -> dict[str, ColumnTable]:
    """All nine contract tables from columns already built and checked (the API's fast path, ``serving.record_columns``:
    the same arrays as :func:`records_to_tables` makes from ``ShopRecord`` objects; brands and verdicts empty)."""
    return _with_reference({name: ColumnTable(cols, rows[name]) for name, cols in columns.items()})


def _with_reference(tables: dict[str, ColumnTable]) -> dict[str, ColumnTable]:
    tables["brands"] = empty_table("brands")
    tables["verdicts"] = empty_table("verdicts")
    return tables
