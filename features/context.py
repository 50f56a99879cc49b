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
from typing import Any

import numpy as np
import pandas as pd

from dajia.errors import DataContractError
from marketplace.tables import Marketplace

DAY_US = 86_400_000_000
NEVER = np.iinfo(np.int64).max


def to_us(ts: pd.Timestamp | str) -> int:
    """A timestamp (naive UTC) as int64 microseconds since the epoch."""
    t = pd.Timestamp(ts)
    if t.tzinfo is not None:
        t = t.tz_convert("UTC").tz_localize(None)
    return int(t.to_datetime64().astype("datetime64[us]").astype(np.int64))


def time_array(column: pd.Series) -> np.ndarray:
    """A timestamp column as int64 microseconds; NaT becomes ``NEVER``."""
    values = column.to_numpy(dtype="datetime64[us]", copy=False).view(np.int64)
    nat = np.iinfo(np.int64).min
    if (values == nat).any():
        values = np.where(values == nat, NEVER, values)
    return values


def require_columns(mp: Marketplace, needs: Mapping[str, Sequence[str]]) -> None:
    """Refuse a marketplace whose tables lack the columns a builder reads (names table and columns)."""
    for table, columns in needs.items():
        frame = getattr(mp, table, None)
        if not isinstance(frame, pd.DataFrame):
            raise DataContractError(table, None, "table is missing from the marketplace")
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise DataContractError(table, ", ".join(missing), "column(s) missing; the feature builders read them")


def indexer(index: pd.Index, values: Any) -> np.ndarray:
    """Positions of ``values`` in ``index`` (-1 when absent) as an intp array."""
    return np.asarray(index.get_indexer(values), dtype=np.intp)


def shop_index(shop_ids: Any) -> pd.Index:
    """The target shops as a unique string index (row order of the feature matrix)."""
    index = pd.Index(shop_ids, dtype="string", name="shop_id")
    if index.has_duplicates:
        dup = index[index.duplicated()].unique().tolist()
        raise DataContractError("shops", "shop_id", "duplicate shop ids asked for", dup)
    return index


@dataclass
class Snapshot:
    """The marketplace ``mp`` seen at ``as_of`` for the shops ``index`` (see module doc)."""

    mp: Marketplace
    as_of: pd.Timestamp
    index: pd.Index
    as_of_us: int = 0
    #: text scores out of fold for shops seen in fit (training matrices)
    oof: bool = False
    _cache: dict[Any, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def build(
        cls,
        mp: Marketplace,
        as_of: pd.Timestamp | str,
        shop_ids: Any,
        oof: bool = False,
    ) -> Snapshot:
        ts = pd.Timestamp(as_of)
        if ts.tzinfo is not None:
            ts = ts.tz_convert("UTC").tz_localize(None)
        index = shop_index(mp.shops["shop_id"] if shop_ids is None else shop_ids)
        return cls(mp=mp, as_of=ts, index=index, as_of_us=to_us(ts), oof=oof)

    @property
    def n(self) -> int:
        return len(self.index)

    def cached(self, key: Any, make: Callable[[], Any]) -> Any:
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def frame(self, table: str) -> pd.DataFrame:
        return self.mp.table(table)

    def codes(self, table: str, column: str = "shop_id") -> np.ndarray:
        """Row number of each row's shop among the targets (-1: not a target shop)."""

        def make() -> np.ndarray:
            frame = self.frame(table)
            if len(frame) == 0:
                return np.empty(0, dtype=np.intp)
            return indexer(self.index, frame[column])

        result: np.ndarray = self.cached(("codes", table, column), make)
        return result

    def times(self, table: str, column: str) -> np.ndarray:
        result: np.ndarray = self.cached(("times", table, column), lambda: time_array(self.frame(table)[column]))
        return result

    def values(self, table: str, column: str, dtype: Any = None) -> np.ndarray:
        def make() -> np.ndarray:
            col = self.frame(table)[column]
            return col.to_numpy(dtype=dtype) if dtype is not None else col.to_numpy()

        result: np.ndarray = self.cached(("values", table, column, dtype), make)
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
