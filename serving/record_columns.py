"""Inline records checked column by column: the fast path of ``POST /scores`` for ``records``.

``ShopRecord`` builds one Python object per record and item and runs a Python validator per string and
time: about a second for a thousand shops with their history. The fast path decodes the JSON with msgspec
straight into typed structs built from the schema (types, required and unknown keys, list and string
lengths, allowed values and numeric ranges are checked in C, and a struct is cheaper to build than a
dict), then checks the remaining rules over whole columns (control characters: one ``join`` and one regex
search per string column; times: numpy; a child's shop id) and builds the contract columns. It
is a fast path, never the judge: it accepts only input that ``ShopRecord`` accepts, with the same values,
and gives up (None) on anything else, from a bad field to a merely unusual spelling (a number sent as a
string, a time without seconds). The caller then validates with ``ShopRecord``, which names each bad
field's JSON path: errors and values stay the model's.

It lives with serving, its only user; ``marketplace.records.ShopRecord`` stays the data contract's judge.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import chain, islice
from operator import attrgetter
from typing import Annotated, Any, Literal

import msgspec
import numpy as np
import orjson
import pandas as pd
from msgspec.structs import astuple

from marketplace.records import (
    CHILD_TABLES,
    CLOCK_SKEW,
    STRING_CONTROLS,
    TEXT_CONTROLS,
    ShopRecord,
    record_lists,
)
from marketplace.schema import SHOPS, Column, Table
from marketplace.validate import EARLIEST

#: a forbidden control character of each string kind (searched in the concatenated column)
_FORBIDDEN = {"string": re.compile(f"[{STRING_CONTROLS}]"), "text": re.compile(f"[{TEXT_CONTROLS}]")}
_DATE = "[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])"
_CLOCK = "(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\\.[0-9]{1,6})?"
_OFFSET = "(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
#: the ISO 8601 spellings the fast path reads (a subset of pydantic's), one time per line
_NAIVE_TIMES = re.compile(f"(?:{_DATE}T{_CLOCK}\\n)*", re.ASCII)
_ANY_TIMES = re.compile(f"(?:{_DATE}T{_CLOCK}{_OFFSET}?\\n)*", re.ASCII)


@dataclass(frozen=True)
class RecordColumns:
    """Inline records as contract columns: ``shops`` and the six child tables (``CHILD_TABLES``), each
    column name -> numpy array (strings ``object``, times ``datetime64[us]`` naive UTC with NaT for null,
    ``float64``, ``int64``) in contract order, child rows in record order, their ``shop_id`` the record's."""

    columns: dict[str, dict[str, np.ndarray]]
    rows: dict[str, int]
    #: how many keys the records' objects hold (one per field given, absent ones not counted): compared with
    #: the keys of the JSON text, it shows a key given twice, which the decoder would silently keep once
    keys: int = 0


class _Unproven(Exception):
    """The fast check cannot prove a value valid: ``ShopRecord`` decides."""


#: the JSON type msgspec decodes each column kind as (times stay strings: checked and parsed per column)
_DECODED: dict[str, type] = {"string": str, "text": str, "timestamp": str, "int": int, "float": float}


def _decoded_type(col: Column) -> Any:
    """The type msgspec decodes ``col`` as, with the schema's limits that msgspec checks in C while decoding:
    string lengths (in characters, like pydantic), allowed values, numeric ranges. Control characters and
    times are checked per column afterwards."""
    if col.choices is not None:
        return Literal[col.choices]
    meta: dict[str, Any] = {}
    if col.kind in ("string", "text"):
        meta = {"max_length": col.max_len, "min_length": 1 if col.kind == "string" else None}
    elif col.kind in ("int", "float"):
        meta = {"ge": col.min, "le": col.max}
    meta = {k: v for k, v in meta.items() if v is not None}
    kind = _DECODED[col.kind]
    return Annotated[kind, msgspec.Meta(**meta)] if meta else kind


def _item_fields(table: Table, owned: bool) -> list[tuple[Any, ...]]:
    """msgspec fields of ``table``'s columns: nullable columns (and an owned child's ``shop_id``) may be
    null or absent, like the ``ShopRecord`` fields ``limits`` makes."""
    fields: list[tuple[Any, ...]] = []
    for col in table.columns:
        kind = _decoded_type(col)
        if col.nullable or (owned and col.name == "shop_id"):  # absent: UNSET, so given keys can be counted
            fields.append((col.name, kind | None | msgspec.UnsetType, msgspec.UNSET))
        else:
            fields.append((col.name, kind))
    return fields


def _max_items(field: str) -> int:
    for m in ShopRecord.model_fields[field].metadata:
        if getattr(m, "max_length", None) is not None:
            return int(m.max_length)
    raise RuntimeError(f"ShopRecord.{field} has no length limit")


#: the most items ``ShopRecord`` takes in each child list
_CHILD_LIMITS = {field: _max_items(field) for field in CHILD_TABLES}
#: struct options: unknown keys are refused (``extra="forbid"``); decoded data holds no cycles (gc=False)
_STRUCT = {"kw_only": True, "forbid_unknown_fields": True, "gc": False}
_ITEMS = {
    field: msgspec.defstruct(f"{table.name}_item", _item_fields(table, owned=True), **_STRUCT)  # type: ignore[arg-type]
    for field, table in CHILD_TABLES.items()
}


def _child_field(field: str, item: Any) -> tuple[Any, ...]:
    """A record's list of ``item`` structs: at most ``ShopRecord``'s number of items, empty when absent."""
    kind = Annotated[list[item], msgspec.Meta(max_length=_CHILD_LIMITS[field])]
    return (field, kind | msgspec.UnsetType, msgspec.UNSET)


#: one record as msgspec decodes it (a struct whose types and limits are ``ShopRecord``'s, from the schema),
#: also for a decoder of a larger body that holds records; pass what it decodes to :func:`columns_of`
RECORD_STRUCT: Any = msgspec.defstruct(
    "shop_record",
    [*_item_fields(SHOPS, owned=False), *[_child_field(field, item) for field, item in _ITEMS.items()]],
    **_STRUCT,  # type: ignore[arg-type]
)
_DECODER = msgspec.json.Decoder(list[RECORD_STRUCT])


def _strings(values: list[str], col: Column) -> np.ndarray:
    """A string column whose lengths and allowed values msgspec checked: no forbidden control character."""
    joined = "".join(values)
    # printable text holds no control character at all; otherwise look for a forbidden one
    if not joined.isprintable() and _FORBIDDEN[col.kind].search(joined):
        raise _Unproven
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


#: positions and characters of the separators in YYYY-MM-DDTHH:MM:SS, and of the digits
_SEPARATORS = np.array([4, 7, 10, 13, 16])
_SEPARATOR_BYTES = np.frombuffer(b"--T::", dtype=np.uint8)
_DIGITS = np.array([0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18])
#: (first digit, lowest, highest) of month, day, hour, minute, second in ``_DIGITS`` order
_FIELDS = ((4, 1, 12), (6, 1, 31), (8, 0, 23), (10, 0, 59), (12, 0, 59))


def _plain_times(values: list[str]) -> bool:
    """Whether every value is spelled exactly YYYY-MM-DDTHH:MM:SS with fields in range (checked as one
    byte matrix; the day of the month is left to numpy's parser, which refuses 30 February)."""
    if set(map(len, values)) != {19}:
        return False
    joined = "".join(values)
    if not joined.isascii():
        return False
    b = np.frombuffer(joined.encode("ascii"), dtype=np.uint8).reshape(-1, 19)
    if not (b[:, _SEPARATORS] == _SEPARATOR_BYTES).all():
        return False
    d = b[:, _DIGITS].astype(np.int16) - ord("0")
    if ((d < 0) | (d > 9)).any():
        return False
    for first, lo, hi in _FIELDS:
        v = d[:, first] * 10 + d[:, first + 1]
        if v.min() < lo or v.max() > hi:
            return False
    return True


def _times(values: list[str], now: datetime) -> np.ndarray:
    if not values:
        return np.array([], dtype="datetime64[us]")
    try:
        if _plain_times(values):
            out = np.array(values, dtype="datetime64[us]")
        else:
            joined = "\n".join(values) + "\n"
            if _NAIVE_TIMES.fullmatch(joined):
                out = np.array(values, dtype="datetime64[us]")
            elif _ANY_TIMES.fullmatch(joined):  # with UTC offsets: as naive UTC, like ``_event_time``
                aware = pd.to_datetime(pd.Series(values, dtype=object), format="ISO8601", utc=True)
                out = aware.dt.tz_localize(None).to_numpy(dtype="datetime64[us]")
            else:
                raise _Unproven
    except ValueError:  # a day the month does not have
        raise _Unproven from None
    if out.min() < EARLIEST.to_datetime64() or out.max() > np.datetime64(now + CLOCK_SKEW, "us"):
        raise _Unproven
    return out


def _numbers(values: list[Any], col: Column) -> np.ndarray:
    """A number column msgspec decoded and range-checked (ints for int columns, finite floats for float ones)."""
    try:
        return np.array(values, dtype=np.int64 if col.kind == "int" else np.float64)
    except OverflowError:  # an int column without bounds given an int beyond 64 bits
        raise _Unproven from None


def _convert(values: list[Any], col: Column, now: datetime) -> np.ndarray:
    if col.kind in ("string", "text"):
        return _strings(values, col)
    if col.kind == "timestamp":
        return _times(values, now)
    if col.kind in ("int", "float"):
        return _numbers(values, col)
    raise _Unproven


def _with_nulls(values: list[Any], col: Column, now: datetime) -> np.ndarray:
    """A nullable string or time column: the non-null values checked, nulls as None / NaT."""
    if None not in values:
        return _convert(values, col, now)
    if col.kind not in ("string", "text", "timestamp"):
        raise _Unproven
    given = np.empty(len(values), dtype=object)
    given[:] = values
    mask = given != None  # noqa: E711 (elementwise)
    null: Any = np.datetime64("NaT") if col.kind == "timestamp" else None
    out = np.full(len(values), null, dtype="datetime64[us]" if col.kind == "timestamp" else object)
    out[mask] = _convert(given[mask].tolist(), col, now)
    return out


def _fields(items: list[Any], n: int) -> list[list[Any]]:
    """The first ``n`` fields of every struct in ``items``, as ``n`` lists (columns): one ``astuple`` per
    struct and one transposition, both in C (a getter per field and struct costs several times more)."""
    if not items:
        return [[] for _ in range(n)]
    if n == len(msgspec.structs.fields(items[0])):
        return list(map(list, zip(*map(astuple, items), strict=True)))
    return [list(col) for col in islice(zip(*map(astuple, items), strict=True), n)]


def _table_columns(
    items: list[Any], table: Table, now: datetime, owners: np.ndarray | None = None, keys: list[int] | None = None
) -> dict[str, np.ndarray]:
    """The columns of ``table`` from ``items`` (decoded structs whose first fields are ``table``'s columns).
    ``owners``: the record's shop id of each item, which an item's own ``shop_id`` (optional) must equal.
    ``keys[0]`` grows by the fields given."""
    out: dict[str, np.ndarray] = {}
    for col, column in zip(table.columns, _fields(items, len(table.columns)), strict=True):
        optional = col.nullable or (owners is not None and col.name == "shop_id")
        # a required field is in every item (msgspec refused a record without it): only optional ones count
        values, given = _given(column, None) if optional else (column, len(column))
        if keys is not None:
            keys[0] += given
        if owners is not None and col.name == "shop_id":
            # the record's id (checked with the shops); a child may repeat it or leave it out, nothing else
            expected = owners.tolist()
            if values != expected and not all(v is None or v == o for v, o in zip(values, expected, strict=True)):
                raise _Unproven
            out[col.name] = owners
        elif col.nullable:
            out[col.name] = _with_nulls(values, col, now)
        else:
            out[col.name] = _convert(values, col, now)
    return out


def record_columns(records: bytes | Sequence[Any], now: datetime | None = None) -> RecordColumns | None:
    """Inline records (the JSON text of a list of objects in the ``ShopRecord`` shape, or that list parsed)
    as contract columns, when every field provably passes ``ShopRecord``'s rules; None otherwise (validate
    with ``ShopRecord`` then)."""
    if not isinstance(records, bytes):
        try:
            records = orjson.dumps(list(records))
        except TypeError:  # not JSON data
            return None
    try:
        decoded = _DECODER.decode(records)
    except (msgspec.DecodeError, RecursionError):  # not JSON, or a key, type or list length out of shape
        return None
    return columns_of(decoded, now)


def columns_of(decoded: list[Any], now: datetime | None = None) -> RecordColumns | None:
    """Records decoded as :data:`RECORD_STRUCT` as contract columns, when the rules msgspec does not check
    (control characters, times, a child's shop id) hold; None otherwise (validate with ``ShopRecord``)."""
    try:
        return _record_columns(decoded, now or datetime.now(UTC).replace(tzinfo=None))
    except _Unproven:
        return None


def _given(values: list[Any], absent: Any) -> tuple[list[Any], int]:
    """``values`` with ``UNSET`` (a key the JSON object left out) as ``absent``, and how many were given."""
    unset = values.count(msgspec.UNSET)
    if unset:
        values = [absent if v is msgspec.UNSET else v for v in values]
    return values, len(values) - unset


def _record_columns(records: list[Any], now: datetime) -> RecordColumns:
    keys = [0]
    columns = {"shops": _table_columns(records, SHOPS, now, keys=keys)}
    rows = {"shops": len(records)}
    shop_ids = columns["shops"]["shop_id"]
    for field, table in CHILD_TABLES.items():
        lists, given = _given(list(map(attrgetter(field), records)), [])
        keys[0] += given
        items = list(chain.from_iterable(lists))
        owners = np.repeat(shop_ids, list(map(len, lists))) if "shop_id" in table.column_names else None
        columns[table.name] = _table_columns(items, table, now, owners, keys)
        rows[table.name] = len(items)
    return RecordColumns(columns, rows, keys[0])


def text_keys(raw: bytes) -> int:
    """How many object keys the JSON text ``raw`` holds, written ``"key":`` (no space before the colon),
    for a text whose keys are plain field names: every ``":`` ends a key except inside a string, where
    its quote is escaped (``\\":``). One pass of ``bytes.count`` (two when the text holds a backslash)."""
    escaped = raw.count(b'\\":') if b"\\" in raw else 0  # no backslash at all: one memchr, not a count
    return raw.count(b'":') - escaped


def key_problem(tables: Mapping[str, Mapping[str, Sequence[Any] | np.ndarray]]) -> tuple[str, str] | None:
    """The first break of the data contract's keys in a batch of inline records, as (``table.column``,
    what is wrong), or None: the rules files are held to (``marketplace.validate_keys``) within the batch —
    each table's key is unique, and a child's reference (an edit's listing, an order's listing, a
    complaint's or review's order) names a row of the same batch. ``tables``: the shops and child tables,
    column name -> values (``RecordColumns.columns`` or :func:`record_lists`); brands are not in records,
    so references to them are not checked here."""

    def values(table: str, column: str) -> list[Any]:
        v = tables[table][column]
        return v.tolist() if isinstance(v, np.ndarray) else list(v)

    key_sets: dict[tuple[str, str], set[Any]] = {}
    for table in (SHOPS, *CHILD_TABLES.values()):
        keys: list[Any] = (
            values(table.name, table.key[0])
            if len(table.key) == 1
            else list(zip(*(values(table.name, k) for k in table.key), strict=True))
        )
        unique = set(keys)
        if len(unique) != len(keys):
            seen: set[Any] = set()
            dup = next(k for k in keys if k in seen or seen.add(k))  # type: ignore[func-returns-value]
            return f"{table.name}.{', '.join(table.key)}", f"{dup!r} appears more than once in the batch"
        if len(table.key) == 1:
            key_sets[(table.name, table.key[0])] = unique
    for table in CHILD_TABLES.values():
        for fk in table.foreign_keys:
            if fk.table in ("shops", "brands"):  # a child's shop is its record's; brands are not in records
                continue
            parents = key_sets[(fk.table, fk.target)]
            refs = values(table.name, fk.column)
            if not parents.issuperset(refs):
                missing = set(refs) - parents - {None}
                if missing:
                    return f"{table.name}.{fk.column}", f"{min(missing)!r} names no {fk.table[:-1]} of the batch"
    return None


def record_key_problem(records: Sequence[ShopRecord]) -> tuple[str, str] | None:
    """:func:`key_problem` of validated ``ShopRecord`` objects."""
    return key_problem({table.name: columns for table, columns, _ in record_lists(records)})
