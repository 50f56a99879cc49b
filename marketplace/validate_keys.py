"""Keys, foreign keys and the consistency rules across tables, checked with one hash pass per key.

A key column and every foreign-key column that points at it form a *family* (``shop_id``:
``shops.shop_id`` plus ``listings.shop_id``, ``orders.shop_id``, ...). Each family is
dictionary-encoded once, as one chunked column, so every value is hashed exactly once; after that,
uniqueness (a code used twice by the parent), dangling references (a child code the parent never
uses), the parent row of each child row and the "same shop" rules are integer operations in numpy.
This keeps a 30M-row marketplace to a few hash passes instead of one per check.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from marketplace.schema import TABLES, Table
from marketplace.validate_columns import TableChecker, _mask


@dataclass(frozen=True)
class RowRule:
    """Within one row: ``later`` must not lie before ``earlier`` (a null ``later`` passes)."""

    table: str
    later: str
    earlier: str
    problem: str


@dataclass(frozen=True)
class CrossRule:
    """Across a foreign key: ``table.column`` compared with ``parent.parent_column`` of the row
    that ``table.via`` points to. ``op`` is ``ge`` (not before) or ``eq`` (the same value)."""

    table: str
    column: str
    via: str
    parent_column: str
    op: Literal["ge", "eq"]
    problem: str


#: time order inside a row (errors)
ROW_RULES: tuple[RowRule, ...] = (
    RowRule("listings", "delisted_at", "created_at", "delisted before it was created"),
    RowRule("orders", "refunded_at", "ordered_at", "refunded before it was ordered"),
)

#: consistency across tables (errors); each goes through a foreign key of ``table``
CROSS_RULES: tuple[CrossRule, ...] = (
    CrossRule("listings", "created_at", "shop_id", "opened_at", "ge", "listing created before its shop opened"),
    CrossRule("listing_edits", "edited_at", "listing_id", "created_at", "ge", "edit made before its listing existed"),
    CrossRule("orders", "ordered_at", "listing_id", "created_at", "ge", "order placed before its listing was created"),
    CrossRule("orders", "shop_id", "listing_id", "shop_id", "eq", "order's shop is not the shop of its listing"),
    CrossRule("complaints", "filed_at", "order_id", "ordered_at", "ge", "complaint filed before its order was placed"),
    CrossRule("complaints", "shop_id", "order_id", "shop_id", "eq", "complaint's shop is not the shop of its order"),
    CrossRule("reviews", "created_at", "order_id", "ordered_at", "ge", "review written before its order was placed"),
    CrossRule("reviews", "shop_id", "order_id", "shop_id", "eq", "review's shop is not the shop of its order"),
)

Columns = Mapping[str, Mapping[str, pa.ChunkedArray]]


def check_row_rules(checker: TableChecker, arrays: Mapping[str, pa.ChunkedArray]) -> None:
    """Time order inside each row of one table (e.g. no refund before the order)."""
    for rule in ROW_RULES:
        if rule.table != checker.spec.name:
            continue
        bad = _mask(pc.less(arrays[rule.later], arrays[rule.earlier]))
        if bad.any():
            checker.fail(rule.later, f"{rule.problem} ({rule.later} < {rule.earlier})", bad)


class KeyIndex:
    """Integer codes for every key and foreign-key column, one dictionary per family."""

    def __init__(self, columns: Columns):
        self.columns = columns
        #: (table, column) -> codes (int32, -1 for null) and the size of its family's dictionary
        self.codes: dict[tuple[str, str], np.ndarray] = {}
        self.cardinality: dict[tuple[str, str], int] = {}
        #: (table, column) -> the first member of its family: codes compare only within a family
        self.family: dict[tuple[str, str], tuple[str, str]] = {}
        families: dict[tuple[str, str], list[tuple[str, str]]] = {}
        for spec in TABLES:
            if spec.name in columns and len(spec.key) == 1:
                families.setdefault((spec.name, spec.key[0]), [])
            for fk in spec.foreign_keys:
                if spec.name in columns:
                    families.setdefault((fk.table, fk.target), []).append((spec.name, fk.column))
        for parent, children in families.items():
            members = [m for m in [parent, *children] if m[0] in columns]
            if members:
                self._encode(members)

    def _encode(self, members: list[tuple[str, str]]) -> None:
        arrays = [self.columns[t][c] for t, c in members]
        found = _numbered_codes(arrays)
        if found is None:
            found = _hashed_codes(arrays)
        all_codes, size = found
        start = 0
        for m, arr in zip(members, arrays, strict=True):
            self.codes[m] = all_codes[start : start + len(arr)]
            self.cardinality[m] = size
            self.family[m] = members[0]
            start += len(arr)

    def key_codes(self, spec: Table) -> np.ndarray:
        """One int64 code per row for the table's (possibly composite) key."""
        combined: np.ndarray | None = None
        for k in spec.key:
            if (spec.name, k) not in self.codes:
                self._encode([(spec.name, k)])
            codes = self.codes[(spec.name, k)].astype(np.int64)
            size = self.cardinality[(spec.name, k)] + 1
            combined = codes + 1 if combined is None else combined * size + (codes + 1)
        assert combined is not None
        return combined


def check_unique(checker: TableChecker, index: KeyIndex) -> None:
    """The table's key is unique (all key columns together for a composite key)."""
    spec = checker.spec
    codes = index.key_codes(spec)
    if len(spec.key) == 1:
        counts = np.bincount(codes, minlength=1) if len(codes) else np.zeros(1, dtype=np.int64)
        if counts.max(initial=0) <= 1:
            return
        bad = counts[codes] > 1
    else:
        dup = pd.Series(codes).duplicated(keep=False).to_numpy()
        if not dup.any():
            return
        bad = dup
    column = spec.key[0] if len(spec.key) == 1 else ", ".join(spec.key)
    checker.fail(column, f"duplicate key {tuple(spec.key)}", bad)


def check_references(checker: TableChecker, index: KeyIndex, columns: Columns) -> None:
    """Foreign keys resolve, then the cross-table rules that go through them hold.

    A foreign key into a table absent from ``columns`` is not checked (the caller has none)."""
    spec = checker.spec
    mine = columns[spec.name]
    for fk in spec.foreign_keys:
        if fk.table not in columns:
            continue
        child = index.codes[(spec.name, fk.column)]
        parent = index.codes[(fk.table, fk.target)]
        size = index.cardinality[(fk.table, fk.target)]
        row_of_code = np.full(size + 1, -1, dtype=np.int64)  # last slot: null codes (-1) map to -1
        row_of_code[parent] = np.arange(len(parent), dtype=np.int64)
        rows = row_of_code[child]
        dangling = (child >= 0) & (rows < 0)
        if dangling.any():
            sample = checker.values_at(mine[fk.column], dangling)
            checker.fail(fk.column, f"refers to a missing {fk.table}.{fk.target} (e.g. {sample})", dangling)
        for rule in CROSS_RULES:
            if rule.table == spec.name and rule.via == fk.column:
                _check_cross(checker, index, columns, rule, fk.table, rows)


def _check_cross(
    checker: TableChecker, index: KeyIndex, columns: Columns, rule: CrossRule, parent: str, rows: np.ndarray
) -> None:
    resolved = rows >= 0
    where = np.where(resolved, rows, 0)
    mine, theirs = (rule.table, rule.column), (parent, rule.parent_column)
    if rule.op == "eq" and mine in index.family and index.family[mine] == index.family.get(theirs):
        # same family (e.g. shop_id): compare integer codes, no string work
        a = index.codes[mine]
        b = index.codes[theirs][where] if len(where) else where
        bad = resolved & (a != b)
        what = f"{rule.problem} ({rule.column} != {parent}.{rule.parent_column} via {rule.via})"
    elif rule.op == "eq":
        taken = columns[parent][rule.parent_column].take(pa.array(where))
        bad = resolved & _mask(pc.not_equal(columns[rule.table][rule.column], taken))
        what = f"{rule.problem} ({rule.column} != {parent}.{rule.parent_column} via {rule.via})"
    else:
        a_val, a_ok = _int64(columns[rule.table][rule.column])
        b_val, b_ok = _int64(columns[parent][rule.parent_column])
        bad = resolved & a_ok & b_ok[where] & (a_val < b_val[where]) if len(where) else resolved
        what = f"{rule.problem} ({rule.column} < {parent}.{rule.parent_column})"
    if bad.any():
        checker.fail(rule.column, what, bad)


def _int64(arr: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """Timestamps as int64 microseconds plus a validity mask (numpy, zero-copy where possible)."""
    ints = pc.cast(arr, pa.int64())
    valid = _mask(pc.is_valid(ints))
    values = pc.fill_null(ints, 0).to_numpy()
    return np.asarray(values, dtype=np.int64), valid


def _hashed_codes(arrays: list[pa.ChunkedArray]) -> tuple[np.ndarray, int]:
    """Codes for any strings: one Arrow dictionary encoding of all the family's values."""
    chunks = [chunk for arr in arrays for chunk in arr.chunks]
    if not chunks:
        return np.zeros(0, dtype=np.int32), 0
    encoded = pc.dictionary_encode(pa.chunked_array(chunks, type=arrays[0].type))
    size = len(encoded.chunks[0].dictionary) if encoded.num_chunks else 0
    # int32 codes (Arrow's own index type) keep the index small: 4 bytes per id
    codes = np.empty(sum(len(c) for c in encoded.chunks), dtype=np.int32)
    at = 0
    for c in encoded.chunks:
        codes[at : at + len(c)] = pc.fill_null(c.indices, -1).to_numpy(zero_copy_only=False)
        at += len(c)
    return codes, size


_PREFIX = re.compile(r"^[^0-9]*")
#: at most this many digits after the prefix (value * 32 + digit count stays inside int64)
_MAX_DIGITS = 17


def _first_value(arrays: list[pa.ChunkedArray]) -> object:
    for arr in arrays:
        for chunk in arr.chunks:
            if len(chunk) > chunk.null_count:
                head = chunk[0].as_py()
                return head if head is not None else chunk.drop_null()[0].as_py()
    return None


def _numbered_codes(arrays: list[pa.ChunkedArray]) -> tuple[np.ndarray, int] | None:
    """Fast path for ids that are one prefix plus digits (``S00000042``, ``order-17``): codes
    without hashing strings, or None when any value does not have that shape.

    ``(number, digit count)`` identifies such an id exactly (``o007`` differs from ``o7``); dense
    numbers index an array directly, sparse ones go through an integer factorisation.
    """
    first = _first_value(arrays)
    if first is None:
        return None
    prefix = _PREFIX.match(str(first))
    assert prefix is not None
    start = len(prefix.group(0))
    numbers: list[np.ndarray] = []
    rests: list[pa.ChunkedArray | None] = []
    widest, narrowest = 0, _MAX_DIGITS
    for arr in arrays:
        if arr.null_count == len(arr):  # empty, or nothing but nulls
            numbers.append(np.full(len(arr), -1, dtype=np.int64))
            rests.append(None)
            continue
        if start and pc.all(pc.starts_with(arr, prefix.group(0))).as_py() not in (True, None):
            return None
        rest = pc.utf8_slice_codeunits(arr, start) if start else arr
        mm = pc.min_max(pc.binary_length(rest))
        if mm["min"].as_py() < 1 or mm["max"].as_py() > _MAX_DIGITS:
            return None
        if pc.all(pc.ascii_is_decimal(rest)).as_py() not in (True, None):
            return None
        narrowest, widest = min(narrowest, mm["min"].as_py()), max(widest, mm["max"].as_py())
        numbers.append(_int64_or_minus_one(pc.cast(rest, pa.int64())))
        rests.append(rest)
    values = np.concatenate(numbers) if len(numbers) > 1 else numbers[0]
    del numbers
    if narrowest != widest and any(r is not None and _has_leading_zero(r) for r in rests):
        # "o07" and "o7" are different ids: the digit count becomes part of the code
        widths = np.concatenate(
            [
                _int64_or_minus_one(pc.binary_length(r)) if r is not None else np.full(len(a), -1, dtype=np.int64)
                for r, a in zip(rests, arrays, strict=True)
            ]
        )
        values = np.where(values >= 0, values * 32 + widths, -1)
    del rests
    has_null = any(arr.null_count for arr in arrays)
    valid = values >= 0 if has_null else None
    present = values[valid] if valid is not None else values
    lo, hi = int(present.min()), int(present.max())
    if hi - lo < 4 * len(values) + 1024 and hi - lo < 2**31 - 1:
        codes = (values - lo).astype(np.int32)
        if valid is not None:
            codes[~valid] = -1
        return codes, hi - lo + 1
    factor, uniques = pd.factorize(present)
    if valid is None:
        return factor.astype(np.int32), len(uniques)
    codes = np.full(len(values), -1, dtype=np.int32)
    codes[valid] = factor
    return codes, len(uniques)


def _int64_or_minus_one(arr: pa.ChunkedArray) -> np.ndarray:
    """An integer column as int64 numpy, nulls as -1 (zero-copy when there are none)."""
    if arr.null_count:
        arr = pc.fill_null(arr, -1)
    return np.asarray(arr.to_numpy(), dtype=np.int64)


def _has_leading_zero(rest: pa.ChunkedArray) -> bool:
    if not pc.any(pc.starts_with(rest, "0")).as_py():
        return False
    return bool(pc.any(pc.and_(pc.starts_with(rest, "0"), pc.greater(pc.binary_length(rest), 1))).as_py())
