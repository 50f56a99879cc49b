"""A point-in-time view of a marketplace for a set of target shops, shared by all builders.

Every builder reads its tables through one :class:`Snapshot`, so the expensive steps happen once per
transform: mapping each event row to its shop's row number (``codes``, -1 for shops that are not
targets), turning timestamps into int64 microseconds, and normalising texts. All group-bys are then
``np.bincount`` over those codes: fully vectorised for a million shops, and only a few microseconds
of numpy per call for the single shop of the online path (pandas' per-call overhead would dominate).

Point in time: :meth:`Snapshot.before` keeps rows whose event time is strictly before ``as_of``;
a missing (NaT) time is read as "never happened" (``NEVER``), so a NaT ``refunded_at`` or
``delisted_at`` never counts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from core.errors import DataContractError
from marketplace.tables import Marketplace

DAY_US = 86_400_000_000
NEVER = np.iinfo(np.int64).max


def to_us(ts: pd.Timestamp | str) -> int:
    """A timestamp (naive UTC) as int64 microseconds since the epoch."""
    t = pd.Timestamp(ts)
    if t.tzinfo is not None:
        t = t.tz_convert("UTC").tz_localize(None)
    return int(t.to_datetime64().astype("datetime64[us]").astype(np.int64))


def time_array(column: Any) -> np.ndarray:
    """A timestamp column (Series or datetime64 array) as int64 microseconds; NaT becomes ``NEVER``."""
    if isinstance(column, np.ndarray):
        values = column.astype("datetime64[us]", copy=False).view(np.int64)
    else:
        values = column.to_numpy(dtype="datetime64[us]", copy=False).view(np.int64)
    nat = np.iinfo(np.int64).min
    if (values == nat).any():
        values = np.where(values == nat, NEVER, values)
    return values


class ColumnTable:
    """A table as plain numpy columns: the online path's stand-in for a DataFrame.

    For one shop, building pandas frames and going through pandas indexing costs more than all the
    feature arithmetic; the builders only need ``len``, ``columns`` and whole columns as arrays, which
    this gives with no overhead. Strings are object arrays, times ``datetime64[us]`` (NaT for null).
    """

    def __init__(self, columns: Mapping[str, np.ndarray], n_rows: int) -> None:
        self._columns = dict(columns)
        self._n = n_rows

    def __len__(self) -> int:
        return self._n

    @property
    def columns(self) -> list[str]:
        return list(self._columns)

    def __getitem__(self, name: str) -> np.ndarray:
        return self._columns[name]


def as_tables(source: Marketplace | Mapping[str, Any]) -> Mapping[str, Any]:
    """Table name -> DataFrame or ColumnTable, from a ``Marketplace`` or a mapping of tables."""
    if isinstance(source, Marketplace):
        return {name: source.table(name) for name in source.table_names()}
    return source


def column_values(column: Any, dtype: Any = None) -> np.ndarray:
    """A Series or array column as a numpy array of ``dtype`` (strings: ``object``)."""
    if isinstance(column, np.ndarray):
        return column if dtype is None else column.astype(dtype, copy=False)
    out: np.ndarray = column.to_numpy(dtype=dtype) if dtype is not None else column.to_numpy()
    return out


def require_columns(mp: Marketplace | Mapping[str, Any], needs: Mapping[str, Sequence[str]]) -> None:
    """Refuse a marketplace whose tables lack the columns a builder reads (names table and columns)."""
    tables = as_tables(mp)
    for table, columns in needs.items():
        frame = tables.get(table)
        if frame is None:
            raise DataContractError(table, None, "table is missing from the marketplace")
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise DataContractError(table, ", ".join(missing), "column(s) missing; the feature builders read them")


#: below this many values, lookups and factorisations use a Python dict: for the online path's handful
#: of rows pandas' per-call overhead (type checks, casts to the index's string dtype) costs 100x more
SMALL = 2048


def indexer(index: pd.Index, values: Any, lookup: Mapping[Any, int] | None = None) -> np.ndarray:
    """Positions of ``values`` in ``index`` (-1 when absent) as an intp array.

    Few values, or values that are Python strings (the online path's object arrays) looked up in a small
    index: a dict lookup (``lookup`` if given, e.g. prepared in ``fit``, else built from the index; pandas
    would first convert every value to the index's Arrow strings); many Arrow strings: Arrow's hash lookup;
    otherwise ``Index.get_indexer``. All compare by string equality, so the results are identical.
    """
    n = len(values)
    if n > SMALL:
        found = _arrow_index_in(index, values)
        if found is not None:
            return found
    python_values = n <= SMALL or isinstance(values, np.ndarray)
    if python_values and (lookup is not None or len(index) <= SMALL):
        table = lookup if lookup is not None else {v: i for i, v in enumerate(index.to_numpy(dtype=object))}
        return np.fromiter(map(table.get, column_values(values, object), repeat(-1, n)), dtype=np.intp, count=n)
    return np.asarray(index.get_indexer(values), dtype=np.intp)


def _arrow_strings(values: Any) -> pa.ChunkedArray | pa.Array | None:
    """The Arrow string array behind a pandas Series/Index of strings, else None."""
    arr = getattr(values, "array", None)
    data = getattr(arr, "_pa_array", None)
    if data is None or not (pa.types.is_string(data.type) or pa.types.is_large_string(data.type)):
        return None
    result: pa.ChunkedArray | pa.Array = data
    return result


def _arrow_index_in(index: pd.Index, values: Any) -> np.ndarray | None:
    """``index.get_indexer(values)`` by Arrow's hash lookup when both are Arrow strings (6x faster at
    millions of rows than pandas, which goes through Python objects for these dtypes)."""
    vals = _arrow_strings(values)
    keys = _arrow_strings(index)
    if vals is None or keys is None:
        return None
    if isinstance(keys, pa.ChunkedArray):
        keys = keys.combine_chunks()
    if keys.type != vals.type:
        keys = keys.cast(vals.type)
    found = pc.index_in(vals, value_set=keys)
    return np.asarray(found.fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.intp)


def factorize(values: np.ndarray) -> tuple[np.ndarray, list[Any]]:
    """Codes (order of first appearance) and distinct values, like ``pd.factorize`` (no NA sentinel)."""
    if len(values) <= SMALL:
        distinct = list(dict.fromkeys(values))  # first appearance order, dict equality (as pd.factorize)
        code = {v: i for i, v in enumerate(distinct)}
        return np.fromiter(map(code.__getitem__, values), dtype=np.intp, count=len(values)), distinct
    codes_pd, uniques = pd.factorize(pd.Series(values, dtype=object), use_na_sentinel=False)
    return np.asarray(codes_pd, dtype=np.intp), list(uniques)


def shop_index(shop_ids: Any) -> pd.Index:
    """The target shops as a unique string index (row order of the feature matrix)."""
    index = None
    if len(shop_ids) <= SMALL:
        # pandas infers its "str" dtype from Python strings about twice as fast as it casts to it
        index = pd.Index(np.asarray(shop_ids, dtype=object), name="shop_id")
        if index.dtype != "str":
            index = None
    if index is None:
        index = pd.Index(shop_ids, dtype="str", name="shop_id")
    if (len(index) <= SMALL and len(set(index)) != len(index)) or (len(index) > SMALL and index.has_duplicates):
        dup = index[index.duplicated()].unique().tolist()
        raise DataContractError("shops", "shop_id", "duplicate shop ids asked for", dup)
    return index


@dataclass
class Snapshot:
    """The marketplace ``tables`` seen at ``as_of`` for the shops ``index`` (see module doc)."""

    tables: Mapping[str, Any]
    as_of: pd.Timestamp
    index: pd.Index
    as_of_us: int = 0
    #: text scores out of fold for shops seen in fit (training matrices)
    oof: bool = False
    _cache: dict[Any, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def build(
        cls,
        mp: Marketplace | Mapping[str, Any],
        as_of: pd.Timestamp | str,
        shop_ids: Any,
        oof: bool = False,
    ) -> Snapshot:
        ts = pd.Timestamp(as_of)
        if ts.tzinfo is not None:
            ts = ts.tz_convert("UTC").tz_localize(None)
        tables = as_tables(mp)
        index = shop_index(tables["shops"]["shop_id"] if shop_ids is None else shop_ids)
        return cls(tables=tables, as_of=ts, index=index, as_of_us=to_us(ts), oof=oof)

    @property
    def n(self) -> int:
        return len(self.index)

    @property
    def lookup(self) -> dict[Any, int]:
        """Shop id -> row, built once per snapshot (used for small tables)."""
        result: dict[Any, int] = self.cached(
            "lookup", lambda: {v: i for i, v in enumerate(self.index.to_numpy(dtype=object))}
        )
        return result

    def cached(self, key: Any, make: Callable[[], Any]) -> Any:
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def frame(self, table: str) -> Any:
        """The table: a DataFrame (batch) or a :class:`ColumnTable` (online)."""
        return self.tables[table]

    def nrows(self, table: str) -> int:
        return len(self.tables[table])

    def codes(self, table: str, column: str = "shop_id") -> np.ndarray:
        """Row number of each row's shop among the targets (-1: not a target shop)."""

        def make() -> np.ndarray:
            frame = self.frame(table)
            if len(frame) == 0:
                return np.empty(0, dtype=np.intp)
            return indexer(self.index, frame[column], self.lookup if len(frame) <= SMALL else None)

        result: np.ndarray = self.cached(("codes", table, column), make)
        return result

    def times(self, table: str, column: str) -> np.ndarray:
        result: np.ndarray = self.cached(("times", table, column), lambda: time_array(self.frame(table)[column]))
        return result

    def values(self, table: str, column: str, dtype: Any = None) -> np.ndarray:
        def make() -> np.ndarray:
            return column_values(self.frame(table)[column], dtype)

        result: np.ndarray = self.cached(("values", table, column, dtype), make)
        return result

    def factorized(self, table: str, column: str, pos: np.ndarray) -> tuple[np.ndarray, list[Any]]:
        """Codes and distinct values of ``column`` at rows ``pos``, without a Python object per row
        for DataFrames (pandas factorises Arrow strings natively): memory stays flat at scale."""
        col = self.frame(table)[column]
        if isinstance(col, np.ndarray):
            return factorize(col[pos])
        if len(pos) <= SMALL:
            return factorize(col.to_numpy(dtype=object)[pos])
        codes, uniques = pd.factorize(col.take(pos), use_na_sentinel=False)
        return np.asarray(codes, dtype=np.intp), uniques.to_numpy(dtype=object).tolist()

    def category_codes(self, table: str, column: str, categories: Sequence[str]) -> np.ndarray:
        """Codes of a categorical column against ``categories`` for every row (-1: unknown)."""

        def make() -> np.ndarray:
            col = self.frame(table)[column]
            return categorical_codes(col, categories)

        result: np.ndarray = self.cached(("categories", table, column, tuple(categories)), make)
        return result

    def before(self, table: str, column: str) -> np.ndarray:
        """Positions of the target shops' rows whose ``column`` time is strictly before ``as_of``."""

        def make() -> np.ndarray:
            codes = self.codes(table)
            if len(codes) == 0:
                return np.empty(0, dtype=np.intp)
            t = self.times(table, column)
            return np.flatnonzero((codes >= 0) & (t < self.as_of_us))

        result: np.ndarray = self.cached(("before", table, column), make)
        return result

    def check_shops_exist(self) -> None:
        """Refuse target shop ids that are not rows of ``mp.shops``."""
        codes = self.codes("shops")
        found = np.zeros(self.n, dtype=bool)
        found[codes[codes >= 0]] = True
        if not found.all():
            missing = self.index[~found].tolist()
            raise DataContractError("shops", "shop_id", "shop ids asked for are not in the shops table", missing)

    def age_days(self, t: np.ndarray) -> np.ndarray:
        """How many days before ``as_of`` each time lies (float; positive for past events)."""
        return (self.as_of_us - t) / DAY_US

    def count(self, codes: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        """Per-target-shop sum (count without weights) as float64, length ``n``."""
        if len(codes) == 0:
            return np.zeros(self.n)
        return np.bincount(codes, weights=weights, minlength=self.n).astype(np.float64, copy=False)

    def ordered_sum(self, codes: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Per-shop sum of float ``weights`` added in a canonical order (by shop, then value), so the
        result is bit-identical whatever the row order of the input tables (batch vs inline records)."""
        if len(codes) == 0:
            return np.zeros(self.n)
        order = np.lexsort((weights, codes))
        return np.bincount(codes[order], weights=weights[order], minlength=self.n).astype(np.float64, copy=False)


def categorical_codes(values: pd.Series | np.ndarray, categories: Sequence[str]) -> np.ndarray:
    """Codes of a categorical string column against a fixed list of categories (-1: unknown)."""
    vals = _arrow_strings(values)
    if vals is not None and len(values) > SMALL:
        found = pc.index_in(vals, value_set=pa.array(list(categories), type=vals.type))
        return np.asarray(found.fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.intp)
    if len(values) <= SMALL:
        table = {c: i for i, c in enumerate(categories)}
        return np.fromiter((table.get(v, -1) for v in values), dtype=np.intp, count=len(values))
    cat = pd.Categorical(values, categories=list(categories))
    return np.asarray(cat.codes, dtype=np.intp)


def group_median(codes: np.ndarray, x: np.ndarray, n: int) -> np.ndarray:
    """Per-group median of ``x`` (NaN for empty groups) without a Python loop over groups."""
    out = np.full(n, np.nan)
    if len(codes) == 0:
        return out
    order = np.lexsort((x, codes))
    c, v = codes[order], x[order]
    counts = np.bincount(c, minlength=n)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    has = counts > 0
    lo = starts[has] + (counts[has] - 1) // 2
    hi = starts[has] + counts[has] // 2
    out[has] = (v[lo] + v[hi]) / 2.0
    return out


def group_min(codes: np.ndarray, x: np.ndarray, n: int) -> np.ndarray:
    out = np.full(n, np.inf)
    if len(codes):
        np.minimum.at(out, codes, x)
    out[np.isinf(out)] = np.nan
    return out


def group_max(codes: np.ndarray, x: np.ndarray, n: int) -> np.ndarray:
    out = np.full(n, -np.inf)
    if len(codes):
        np.maximum.at(out, codes, x)
    out[np.isinf(out)] = np.nan
    return out
