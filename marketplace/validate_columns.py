"""Column-level validation of the data contract: coercing each column to its contract type and
checking its values (nulls, finiteness, ranges, choices, lengths, control characters, time bounds).

Everything runs as Arrow compute kernels over whole columns; the slower work of finding *which*
rows are bad (bisection for casts, masks for the rest) only runs once a check has failed. A
:class:`TableChecker` names the offending rows by key (``shop_id='s42'``) or by row number.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Any, Literal, NoReturn

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from core.errors import DataContractError
from marketplace.schema import Column, Table

#: no marketplace event can be older than this: an earlier date is a broken export, not history
EARLIEST = pd.Timestamp("2000-01-01")
#: the snapshot may lie at most this far after the current clock (generous: round-number snapshots)
SNAPSHOT_LEEWAY = pd.Timedelta(days=366)
#: how many offending rows a message names
SHOW = 5

Origin = Literal["csv", "parquet", "frame"]

#: control characters refused in ``string`` columns (ids, codes, categories): all of C0, DEL, C1
_CONTROL_STRING = "[\\x00-\\x1f\\x7f\\x{80}-\\x{9f}]"
#: control characters refused in ``text`` columns: the same, except tab, line feed, carriage return
_CONTROL_TEXT = "[\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f\\x{80}-\\x{9f}]"


class RowRef(str):
    """A row named for people: ``shop_id='s42'``, ``(brand='Acme', shop_id='s1')`` or ``row 7``.

    A ``str`` whose ``repr`` is the text itself, so ``DataContractError`` prints it unquoted.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return str(self)


_TS = pa.timestamp("us")
_EPOCH = pd.Timestamp("1970-01-01")


def string_dtype() -> pd.StringDtype[Any]:
    """The pandas dtype of every id and text column: pandas 3's ``str`` (Arrow-backed, NaN as missing)."""
    return pd.StringDtype(storage="pyarrow", na_value=np.nan)


def as_utc_naive(value: object, what: str = "snapshot_at") -> pd.Timestamp:
    """A time as a naive UTC ``Timestamp`` (tz-aware values are converted; naive ones are taken as UTC)."""
    try:
        ts = pd.Timestamp(value)  # type: ignore[arg-type]
    except (ValueError, TypeError) as exc:
        raise DataContractError("manifest", what, f"not a time: {value!r} ({exc})") from None
    if ts is pd.NaT or pd.isna(ts):
        raise DataContractError("manifest", what, f"not a time: {value!r}")
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts.as_unit("us")


def _printable(name: str) -> str:
    """A column name as it can be printed on one line (escapes for control characters)."""
    return name if name.isprintable() else repr(name)[1:-1]


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _mask(arr: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A boolean Arrow result as a numpy mask (null counts as False)."""
    filled = pc.fill_null(arr, False)
    out = filled.to_numpy(zero_copy_only=False) if isinstance(filled, pa.ChunkedArray) else filled.to_numpy(False)
    return np.asarray(out, dtype=bool)


def _chunked(arr: pa.Array | pa.ChunkedArray) -> pa.ChunkedArray:
    return arr if isinstance(arr, pa.ChunkedArray) else pa.chunked_array([arr], type=arr.type)


def _first_failures(arr: pa.ChunkedArray, convert: Callable[[pa.ChunkedArray], object], limit: int = SHOW) -> list[int]:
    """Positions of the first rows on which ``convert`` raises, found by bisection.

    Arrow casts fail for a whole column without saying where; splitting the failing range in
    halves finds the first ``limit`` bad rows in O(limit * n) work instead of a Python loop.
    """
    found: list[int] = []

    def visit(offset: int, length: int) -> None:
        if len(found) >= limit or length == 0:
            return
        try:
            convert(arr.slice(offset, length))
            return
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, ValueError, OverflowError):
            pass
        if length == 1:
            found.append(offset)
            return
        half = length // 2
        visit(offset, half)
        visit(offset + half, length - half)

    visit(0, len(arr))
    return found


class TableChecker:
    """Coerces and checks one table; knows how to name its rows in messages."""

    def __init__(self, spec: Table, origin: Origin, nrows: int):
        self.spec = spec
        self.origin = origin
        self.nrows = nrows
        self.keys: list[pa.ChunkedArray] | None = None

    # -- naming rows ---------------------------------------------------------------------------
    def labels(self, positions: list[int] | np.ndarray) -> list[RowRef]:
        pos = [int(p) for p in list(positions)[:SHOW]]
        if not pos:
            return []
        key_values: list[list[object]] = []
        if self.keys is not None:
            idx = pa.array(pos, type=pa.int64())
            key_values = [k.take(idx).to_pylist() for k in self.keys]
        out: list[RowRef] = []
        for i, p in enumerate(pos):
            row = f"row {p + 1}"
            values = [kv[i] for kv in key_values]
            if values and all(v is not None for v in values):
                parts = [f"{name}={v!r}" for name, v in zip(self.spec.key, values, strict=True)]
                text = parts[0] if len(parts) == 1 else "(" + ", ".join(parts) + ")"
                if self.origin == "csv":
                    text += f" ({row})"
                out.append(RowRef(text))
            else:
                out.append(RowRef(row))
        return out

    def fail(self, column: str | None, problem: str, bad: np.ndarray | list[int] | None = None) -> NoReturn:
        rows: list[RowRef] = []
        if bad is not None:
            if isinstance(bad, np.ndarray) and bad.dtype == bool:
                count = int(bad.sum())
                positions: list[int] | np.ndarray = np.flatnonzero(bad)[:SHOW]
                if count > 1:
                    problem = f"{problem} ({count:,} rows)"
            else:
                positions = list(bad)[:SHOW]
            rows = self.labels(positions)
        raise DataContractError(self.spec.name, column, problem, list(rows))

    def values_at(self, arr: pa.ChunkedArray, bad: np.ndarray) -> str:
        pos = np.flatnonzero(bad)[:3] if bad.dtype == bool else bad[:3]
        vals = arr.take(pa.array(pos, type=pa.int64())).to_pylist()
        return ", ".join(_short(v) for v in vals)

    # -- structure -----------------------------------------------------------------------------
    def check_columns(self, names: list[str]) -> None:
        seen: set[str] = set()
        dupes = sorted({n for n in names if n in seen or seen.add(n)})  # type: ignore[func-returns-value]
        if dupes:
            self.fail(_printable(dupes[0]), f"column appears more than once: {dupes}")
        expected = self.spec.column_names
        missing = [c for c in expected if c not in names]
        if missing:
            found = ", ".join(_short(n) for n in names[:20]) + (" ..." if len(names) > 20 else "")
            self.fail(missing[0], f"missing required column(s) {missing}; the file has: {found or 'no columns'}")
        extra = [c for c in names if c not in expected]
        if extra:
            self.fail(_printable(extra[0]), f"unknown column(s) {extra} (the contract has: {', '.join(expected)})")

    # -- coercion ------------------------------------------------------------------------------
    def coerce(self, col: Column, arr: pa.ChunkedArray) -> pa.ChunkedArray:
        """``arr`` converted to the contract type of ``col``, or a DataContractError naming the rows."""
        t = arr.type
        if pa.types.is_dictionary(t):
            arr = pa.chunked_array([c.dictionary_decode() for c in arr.chunks], type=t.value_type)
            t = arr.type
        target = _target_type(col)
        if pa.types.is_null(t):
            return _chunked(pa.nulls(len(arr), type=target))
        decoded = pa.types.is_binary(t) or pa.types.is_large_binary(t)
        if decoded:
            arr = self._decode_utf8(col, arr)  # validates UTF-8 on the way
            t = arr.type
        if pa.types.is_string(t) or pa.types.is_large_string(t):
            if not decoded:
                self._check_utf8(col, arr)
            if col.kind in ("string", "text"):
                # one string type everywhere (pandas' own), so key families can be encoded together
                return arr if t == pa.large_string() else _chunked(pc.cast(arr, pa.large_string()))
            parsed = self._parse_text(col, arr)  # text that is no number: refused naming its rows
            if col.kind in ("int", "float", "bool") and self.origin != "csv":
                # only CSV writes numbers as text; a typed file or frame holding "12" for a price is a writer's bug
                first = _mask(pc.is_valid(arr))
                self.fail(col.name, f"stored as text, expected {_KIND_WORDS[col.kind]}", first if first.any() else None)
            return parsed
        if col.kind == "int" and (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)):
            return self._cast(col, arr, pa.int64(), "not a whole number that fits in int64")
        if col.kind == "float" and (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)):
            return self._cast(col, arr, pa.float64(), "not a number")
        if col.kind == "bool" and pa.types.is_boolean(t):
            return arr
        if col.kind == "timestamp" and pa.types.is_timestamp(t):
            return _chunked(pc.cast(arr, _TS, safe=False))  # tz-aware: Arrow keeps UTC instants
        if col.kind == "timestamp" and pa.types.is_date(t):
            return _chunked(pc.cast(arr, _TS))
        first = _mask(pc.is_valid(arr))
        self.fail(col.name, f"stored as {t}, expected {_KIND_WORDS[col.kind]}", first if first.any() else None)

    def _decode_utf8(self, col: Column, arr: pa.ChunkedArray) -> pa.ChunkedArray:
        try:
            return _chunked(pc.cast(arr, pa.large_string()))
        except pa.ArrowInvalid:
            bad = _first_failures(arr, lambda a: pc.cast(a, pa.large_string()))
            self.fail(col.name, "invalid UTF-8 text (files must be UTF-8)", bad)

    def _check_utf8(self, col: Column, arr: pa.ChunkedArray) -> None:
        # Parquet readers do not validate UTF-8; a full validation is cheap (~5 ns per value)
        try:
            arr.validate(full=True)
        except pa.ArrowInvalid:
            bad = _first_failures(arr, lambda a: a.validate(full=True))
            self.fail(col.name, "invalid UTF-8 text", bad)

    def _cast(self, col: Column, arr: pa.ChunkedArray, target: pa.DataType, problem: str) -> pa.ChunkedArray:
        try:
            return _chunked(pc.cast(arr, target))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            bad = _first_failures(arr, lambda a: pc.cast(a, target))
            vals = ", ".join(_short(v) for v in arr.take(pa.array(bad[:3], type=pa.int64())).to_pylist())
            self.fail(col.name, f"{problem} (e.g. {vals})", bad)

    def _parse_text(self, col: Column, arr: pa.ChunkedArray) -> pa.ChunkedArray:
        if col.kind == "int":
            return self._cast(col, arr, pa.int64(), "not a whole number")
        if col.kind == "float":
            return self._cast(col, arr, pa.float64(), "not a number")
        if col.kind == "bool":
            return self._cast(col, arr, pa.bool_(), "not a boolean (true/false/1/0)")
        # timestamps: Arrow parses ISO-8601 fast when every value is naive, or every value has a
        # zone (Z, +08:00); a mix goes through pandas, which also names the unparseable rows
        for zone in (None, "UTC"):
            try:
                return _chunked(pc.cast(pc.cast(arr, pa.timestamp("us", tz=zone)), _TS))
            except pa.ArrowInvalid:
                pass
        text = pd.Series(arr.to_numpy(zero_copy_only=False), dtype=object)
        parsed = pd.to_datetime(text, utc=True, format="ISO8601", errors="coerce")
        bad = np.asarray(parsed.isna().to_numpy() & text.notna().to_numpy(), dtype=bool)
        if bad.any():
            self.fail(col.name, f"not an ISO-8601 time (e.g. {self.values_at(arr, bad)})", bad)
        # UTC-aware to naive UTC through Arrow (pandas' tz_localize overflows near year 1)
        return _chunked(pc.cast(pa.array(parsed, from_pandas=True), _TS, safe=False))

    # -- column checks -------------------------------------------------------------------------
    def check_column(self, col: Column, arr: pa.ChunkedArray, snapshot_at: pd.Timestamp) -> None:
        if not col.nullable and arr.null_count:
            self.fail(col.name, "missing value (null, empty or NaN) in a required column", _mask(pc.is_null(arr)))
        if len(arr) == 0:
            return
        if col.kind == "float":
            finite = pc.is_finite(arr)
            if pc.all(finite).as_py() not in (True, None):
                bad = ~_mask(pc.or_kleene(finite, pc.is_null(arr)))
                self.fail(col.name, "NaN or infinite value", bad)
        if col.kind in ("int", "float"):
            self._check_range(col, arr)
        if col.kind in ("string", "text"):
            self._check_strings(col, arr)
        if col.kind == "timestamp":
            self._check_times(col, arr, snapshot_at)

    def _check_range(self, col: Column, arr: pa.ChunkedArray) -> None:
        lo, hi = col.min, col.max
        if lo is None and hi is None:
            return
        mm = pc.min_max(arr)
        vmin, vmax = mm["min"].as_py(), mm["max"].as_py()
        if vmin is None:
            return
        if (lo is not None and vmin < lo) or (hi is not None and vmax > hi):
            bad = np.zeros(len(arr), dtype=bool)
            if lo is not None:
                bad |= _mask(pc.less(arr, pa.scalar(lo, type=arr.type)))
            if hi is not None:
                bad |= _mask(pc.greater(arr, pa.scalar(hi, type=arr.type)))
            self.fail(col.name, f"value out of range [{lo:g}, {hi:g}] (e.g. {self.values_at(arr, bad)})", bad)

    def _check_strings(self, col: Column, arr: pa.ChunkedArray) -> None:
        if col.choices is not None:
            ok = pc.is_in(arr, value_set=pa.array(col.choices, type=arr.type))
            bad = ~_mask(pc.or_kleene(ok, pc.is_null(arr)))
            if bad.any():
                self.fail(
                    col.name,
                    f"value not allowed (e.g. {self.values_at(arr, bad)}); allowed: {', '.join(col.choices)}",
                    bad,
                )
        fewest, most = _byte_length_range(arr)
        if most is None:
            return
        # byte lengths bound character lengths from above: count characters only when needed
        if col.max_len is not None and most > col.max_len:
            lengths = pc.utf8_length(arr)
            longest = pc.max(lengths).as_py()
            if longest is not None and longest > col.max_len:
                bad = _mask(pc.greater(lengths, col.max_len))
                self.fail(col.name, f"text longer than {col.max_len} characters (longest: {longest})", bad)
        if col.kind == "string" and fewest == 0:
            bad = _mask(pc.equal(pc.binary_length(arr), 0))
            if bad.any():
                self.fail(col.name, "empty value", bad)
        if _may_have_controls(arr):
            pattern = _CONTROL_STRING if col.kind == "string" else _CONTROL_TEXT
            bad = _mask(pc.match_substring_regex(arr, pattern))
            if bad.any():
                allowed = "" if col.kind == "string" else " (tab and line breaks are allowed in text)"
                self.fail(col.name, f"control character in text{allowed}", bad)

    def _check_times(self, col: Column, arr: pa.ChunkedArray, snapshot_at: pd.Timestamp) -> None:
        # compared as int64 microseconds: Python datetimes cannot hold every Arrow timestamp
        micros = pc.cast(arr, pa.int64())
        mm = pc.min_max(micros)
        tmin, tmax = mm["min"].as_py(), mm["max"].as_py()
        if tmin is None:
            return
        if tmin < _micros(EARLIEST):
            bad = _mask(pc.less(micros, _micros(EARLIEST)))
            oldest = _show_time(tmin)
            self.fail(
                col.name, f"time before {EARLIEST.date()}: not a plausible marketplace event (e.g. {oldest})", bad
            )
        if col.name in self.spec.event_times and tmax > _micros(snapshot_at):
            bad = _mask(pc.greater(micros, _micros(snapshot_at)))
            latest = _show_time(tmax)
            self.fail(col.name, f"event after the snapshot time {snapshot_at.isoformat()} (e.g. {latest})", bad)


def _micros(ts: pd.Timestamp) -> int:
    return int((ts - _EPOCH) // pd.Timedelta(microseconds=1))


def _show_time(micros: int) -> str:
    return str(np.datetime64(micros, "us")).replace("T", " ")


_KIND_WORDS = {
    "string": "a string",
    "text": "a string",
    "int": "an integer",
    "float": "a number",
    "bool": "a boolean",
    "timestamp": "a timestamp",
}


def _target_type(col: Column) -> pa.DataType:
    return {
        "string": pa.large_string(),
        "text": pa.large_string(),
        "int": pa.int64(),
        "float": pa.float64(),
        "bool": pa.bool_(),
        "timestamp": _TS,
    }[col.kind]


def _byte_length_range(arr: pa.ChunkedArray) -> tuple[int | None, int | None]:
    """Shortest and longest value in bytes, read from the offsets alone (nulls count as 0)."""
    lo: int | None = None
    hi: int | None = None
    for chunk in arr.chunks:
        if len(chunk) == 0:
            continue
        dtype = np.int64 if pa.types.is_large_string(chunk.type) else np.int32
        offsets = np.frombuffer(chunk.buffers()[1], dtype=dtype)[chunk.offset : chunk.offset + len(chunk) + 1]
        sizes = np.diff(offsets)
        lo = int(sizes.min()) if lo is None else min(lo, int(sizes.min()))
        hi = int(sizes.max()) if hi is None else max(hi, int(sizes.max()))
    if arr.null_count == len(arr):
        return None, None
    return lo, hi


def _may_have_controls(arr: pa.ChunkedArray) -> bool:
    """Fast scan of the raw UTF-8 bytes for a control character (C0, DEL, or C1 as ``\\xc2\\x80-\\x9f``).

    Tab, LF and CR count too: a hit only sends the column to the exact (per-kind) regex check.
    """
    for chunk in arr.chunks:
        if len(chunk) == 0:
            continue
        data = chunk.buffers()[2]
        if data is None or data.size == 0:
            continue
        b = np.frombuffer(data, dtype=np.uint8)
        if (b < 0x20).any() or (b == 0x7F).any():
            return True
        lead = np.flatnonzero(b[:-1] == 0xC2)
        if lead.size and ((b[lead + 1] >= 0x80) & (b[lead + 1] <= 0x9F)).any():
            return True
    return False


# -- pandas frames to Arrow -------------------------------------------------------------------------


def _is_missing(v: object) -> bool:
    if v is None or v is pd.NA or v is pd.NaT:
        return True
    return isinstance(v, float) and v != v


def _as_text(v: object) -> str | None:
    if _is_missing(v):
        return None
    if isinstance(v, datetime | date | pd.Timestamp):
        return v.isoformat()
    return str(v)


def series_to_arrow(checker: TableChecker, col: Column, series: pd.Series) -> pa.ChunkedArray:
    """One in-memory column as Arrow (values are checked and coerced afterwards)."""
    if series.dtype == object:
        try:
            return _chunked(pa.array(series, from_pandas=True))
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
            values = series.to_numpy()
            if col.kind in ("string", "text"):
                bad = np.array([not (isinstance(v, str) or _is_missing(v)) for v in values], dtype=bool)
                checker.fail(col.name, "not a string (e.g. " + ", ".join(_short(v) for v in values[bad][:3]) + ")", bad)
            return _chunked(pa.array([_as_text(v) for v in values], type=pa.large_string()))
    try:
        return _chunked(pa.array(series, from_pandas=True))
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as exc:
        checker.fail(col.name, f"column of dtype {series.dtype} cannot be read: {exc}")
