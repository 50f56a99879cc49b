"""One shop in the data-contract shape, for inline scoring: :class:`ShopRecord` (pydantic v2).

A record is the shop's own columns plus the lists of its ``listings``, ``listing_edits``,
``orders``, ``complaints``, ``reviews`` and ``authorisations``; each item carries its table's
columns, and the ``shop_id`` of a child item may be left out (it is the record's). Every limit
(string lengths, numeric ranges, allowed values, no control characters, times from 2000 on and
not in the future) comes from ``marketplace.schema``, so an API that takes records answers 422
with the JSON path of each bad field (``records[0].listings[2].price``).

Brands and verdicts are not part of a record: the brand table is reference data the fitted
feature pipeline already holds, and verdicts are labels, not inputs. :func:`records_to_frames`
therefore returns the seven shop-side tables only; ``validate_frames`` skips foreign keys into
tables it was not given.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from operator import attrgetter
from typing import Annotated, Any, Literal

import msgspec
import numpy as np
import orjson
import pandas as pd
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from marketplace.schema import (
    AUTHORISATIONS,
    COMPLAINTS,
    LISTING_EDITS,
    LISTINGS,
    ORDERS,
    REVIEWS,
    SHOPS,
    Column,
    Table,
)
from marketplace.validate import EARLIEST, string_dtype

#: the control characters ``string`` columns (ids, codes, categories) may not hold: all of them
STRING_CONTROLS = "\\x00-\\x1f\\x7f-\\x9f"
#: the control characters ``text`` columns (names, titles, descriptions, reviews) may not hold: all
#: but tab and line breaks
TEXT_CONTROLS = "\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f"
STRING_PATTERN = f"^[^{STRING_CONTROLS}]*$"
TEXT_PATTERN = f"^[^{TEXT_CONTROLS}]*$"
#: clock skew tolerated for event times in records (they are checked against "now")
CLOCK_SKEW = timedelta(days=1)

#: the tables a record carries, in load order, and the list field that holds each
CHILD_TABLES: dict[str, Table] = {
    "authorisations": AUTHORISATIONS,
    "listings": LISTINGS,
    "listing_edits": LISTING_EDITS,
    "orders": ORDERS,
    "complaints": COMPLAINTS,
    "reviews": REVIEWS,
}


def _event_time(value: datetime) -> datetime:
    """Naive UTC, from 2000 on, not after now: what the data contract calls an event time."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    if value < EARLIEST.to_pydatetime():
        raise ValueError(f"time before {EARLIEST.date()} is not a plausible marketplace event")
    if value > datetime.now(UTC).replace(tzinfo=None) + CLOCK_SKEW:
        raise ValueError("time lies in the future")
    return value


EventTime = Annotated[datetime, AfterValidator(_event_time)]


def _no_controls(pattern: str, allowed: str) -> AfterValidator:
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.fullmatch(value):
            raise ValueError(f"control character not allowed{allowed}")
        return value

    return AfterValidator(check)


#: an id, code or category: no control characters
Str = Annotated[str, _no_controls(STRING_PATTERN, "")]
#: free text: no control characters except tab and line breaks
Text = Annotated[str, _no_controls(TEXT_PATTERN, " (tab and line breaks are fine)")]


def _choice_check(choices: tuple[str, ...]) -> AfterValidator:
    def check(value: str) -> str:
        if value not in choices:
            raise ValueError(f"{value!r} is not one of: {', '.join(choices)}")
        return value

    return AfterValidator(check)


def limits(table: Table, name: str, *, optional: bool = False) -> Any:
    """A pydantic ``Field`` carrying the schema's limits for ``table.name`` (one source of truth)."""
    col = table.column(name)
    kw: dict[str, Any] = {"description": col.doc or f"{table.name}.{name}"}
    if optional or col.nullable:
        kw["default"] = None
    if col.kind in ("string", "text"):
        if col.max_len is not None:
            kw["max_length"] = col.max_len
        if col.kind == "string":
            kw["min_length"] = 1
        # enforced by the Str/Text validators (clear message); published for API clients
        extra: dict[str, Any] = {"pattern": STRING_PATTERN if col.kind == "string" else TEXT_PATTERN}
        if col.choices is not None:
            extra["enum"] = list(col.choices)
        kw["json_schema_extra"] = extra
    if col.kind in ("int", "float", "bool"):
        kw["strict"] = True  # JSON's own types only: "12" is no price (a whole number is a float still)
    if col.kind in ("int", "float"):
        if col.min is not None:
            kw["ge"] = col.min
        if col.max is not None:
            kw["le"] = col.max
    if col.kind == "float":
        kw["allow_inf_nan"] = False
    return Field(**kw)


Category = Annotated[Str, _choice_check(SHOPS.column("category").choices or ())]
ComplaintKind = Annotated[Str, _choice_check(COMPLAINTS.column("kind").choices or ())]
ComplaintSource = Annotated[Str, _choice_check(COMPLAINTS.column("source").choices or ())]


class _Item(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AuthorisationItem(_Item):
    """A brand's authorisation of this shop (``authorisations`` row)."""

    brand: Str = limits(AUTHORISATIONS, "brand")
    shop_id: Str | None = limits(AUTHORISATIONS, "shop_id", optional=True)
    granted_at: EventTime = limits(AUTHORISATIONS, "granted_at")


class ListingItem(_Item):
    """A listing as created (``listings`` row); later edits are ``listing_edits``."""

    listing_id: Str = limits(LISTINGS, "listing_id")
    shop_id: Str | None = limits(LISTINGS, "shop_id", optional=True)
    created_at: EventTime = limits(LISTINGS, "created_at")
    title: Text = limits(LISTINGS, "title")
    description: Text = limits(LISTINGS, "description")
    brand: Str | None = limits(LISTINGS, "brand")
    category: Category = limits(LISTINGS, "category")
    price: float = limits(LISTINGS, "price")
    delisted_at: EventTime | None = limits(LISTINGS, "delisted_at")


class ListingEditItem(_Item):
    """An edit of one of the shop's listings (``listing_edits`` row)."""

    edit_id: Str = limits(LISTING_EDITS, "edit_id")
    listing_id: Str = limits(LISTING_EDITS, "listing_id")
    edited_at: EventTime = limits(LISTING_EDITS, "edited_at")
    title: Text = limits(LISTING_EDITS, "title")
    price: float = limits(LISTING_EDITS, "price")


class OrderItem(_Item):
    """An order of one of the shop's listings (``orders`` row)."""

    order_id: Str = limits(ORDERS, "order_id")
    shop_id: Str | None = limits(ORDERS, "shop_id", optional=True)
    listing_id: Str = limits(ORDERS, "listing_id")
    buyer_id: Str = limits(ORDERS, "buyer_id")
    ordered_at: EventTime = limits(ORDERS, "ordered_at")
    amount: float = limits(ORDERS, "amount")
    refunded_at: EventTime | None = limits(ORDERS, "refunded_at")


class ComplaintItem(_Item):
    """A complaint against the shop (``complaints`` row), about one order or the shop as a whole."""

    complaint_id: Str = limits(COMPLAINTS, "complaint_id")
    shop_id: Str | None = limits(COMPLAINTS, "shop_id", optional=True)
    order_id: Str | None = limits(COMPLAINTS, "order_id")
    filed_at: EventTime = limits(COMPLAINTS, "filed_at")
    kind: ComplaintKind = limits(COMPLAINTS, "kind")
    source: ComplaintSource = limits(COMPLAINTS, "source")


class ReviewItem(_Item):
    """A buyer's review of one of the shop's orders (``reviews`` row)."""

    review_id: Str = limits(REVIEWS, "review_id")
    shop_id: Str | None = limits(REVIEWS, "shop_id", optional=True)
    order_id: Str = limits(REVIEWS, "order_id")
    created_at: EventTime = limits(REVIEWS, "created_at")
    rating: int = limits(REVIEWS, "rating")
    text: Text = limits(REVIEWS, "text")


class ShopRecord(_Item):
    """One shop with its whole history, in the data-contract shape (see module docstring)."""

    shop_id: Str = limits(SHOPS, "shop_id")
    shopkeeper_id: Str = limits(SHOPS, "shopkeeper_id")
    name: Text = limits(SHOPS, "name")
    opened_at: EventTime = limits(SHOPS, "opened_at")
    category: Category = limits(SHOPS, "category")
    business_registration: Str = limits(SHOPS, "business_registration")
    business_phone: Str = limits(SHOPS, "business_phone")
    business_email: Str = limits(SHOPS, "business_email")
    owner_phone: Str = limits(SHOPS, "owner_phone")
    owner_email: Str = limits(SHOPS, "owner_email")
    owner_address: Text = limits(SHOPS, "owner_address")
    id_number_hash: Str = limits(SHOPS, "id_number_hash")
    bank_account_hash: Str = limits(SHOPS, "bank_account_hash")
    device_id: Str = limits(SHOPS, "device_id")
    authorisations: list[AuthorisationItem] = Field(default_factory=list, max_length=10_000)
    listings: list[ListingItem] = Field(default_factory=list, max_length=100_000)
    listing_edits: list[ListingEditItem] = Field(default_factory=list, max_length=100_000)
    orders: list[OrderItem] = Field(default_factory=list, max_length=1_000_000)
    complaints: list[ComplaintItem] = Field(default_factory=list, max_length=100_000)
    reviews: list[ReviewItem] = Field(default_factory=list, max_length=1_000_000)

    @model_validator(mode="after")
    def _children_belong_to_the_shop(self) -> ShopRecord:
        for field in ("authorisations", "listings", "orders", "complaints", "reviews"):
            for i, item in enumerate(getattr(self, field)):
                if item.shop_id is not None and item.shop_id != self.shop_id:
                    raise ValueError(
                        f"{field}[{i}].shop_id is {item.shop_id!r} but the record is shop {self.shop_id!r}"
                    )
        return self


def _coerce_records(records: Iterable[ShopRecord | Mapping[str, Any]]) -> list[ShopRecord]:
    return [r if isinstance(r, ShopRecord) else ShopRecord.model_validate(r) for r in records]


def _frame(table: Table, columns: dict[str, list[Any]]) -> pd.DataFrame:
    out: dict[str, pd.Series] = {}
    for col in table.columns:
        values = columns[col.name]
        if col.kind in ("string", "text"):
            out[col.name] = pd.Series(values, dtype=string_dtype())
        elif col.kind == "timestamp":
            out[col.name] = pd.Series(values, dtype="datetime64[us]")
        elif col.kind == "float":
            out[col.name] = pd.Series(values, dtype=np.float64)
        elif col.kind == "int":
            out[col.name] = pd.Series(values, dtype=np.int64)
        else:
            out[col.name] = pd.Series(values, dtype=np.bool_)
    return pd.DataFrame(out)


def record_lists(recs: Sequence[ShopRecord]) -> list[tuple[Table, dict[str, list[Any]], int]]:
    """(table, column name -> values, rows) of ``shops`` and the six child tables from validated records,
    columns in contract order; child rows take the record's ``shop_id``."""
    out = [(SHOPS, {c: [getattr(r, c) for r in recs] for c in SHOPS.column_names}, len(recs))]
    for field, table in CHILD_TABLES.items():
        items = [(r.shop_id, item) for r in recs for item in getattr(r, field)]
        columns = {
            c: [shop if c == "shop_id" else getattr(item, c) for shop, item in items] for c in table.column_names
        }
        out.append((table, columns, len(items)))
    return out


def records_to_frames(records: Iterable[ShopRecord | Mapping[str, Any]]) -> dict[str, pd.DataFrame]:
    """The records as contract-typed frames: ``shops`` plus the six child tables (brands and
    verdicts are not in records). Child rows take the record's ``shop_id``. Pass the result to
    ``marketplace.loader.validate_frames`` to check keys and references across records."""
    return {table.name: _frame(table, columns) for table, columns, _ in record_lists(_coerce_records(records))}


def _py(value: Any) -> Any:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if isinstance(value, np.generic):
        return value.item()
    return value


def records_from_frames(frames: Mapping[str, pd.DataFrame], shop_ids: Sequence[str] | None = None) -> list[ShopRecord]:
    """The inverse of :func:`records_to_frames`: one record per shop (in ``shop_ids`` order, or the
    shops table's), with its child rows. Useful to score marketplace shops through the online path
    and to prove it equals the batch path. ``frames`` may be a ``Marketplace``'s tables."""
    shops = frames["shops"]
    if shop_ids is not None:
        shops = shops.set_index("shop_id", drop=False).loc[list(shop_ids)].reset_index(drop=True)
    wanted = set(shops["shop_id"].tolist())
    children: dict[str, dict[str, list[dict[str, Any]]]] = {}
    listing_shop: dict[str, str] = {}
    if "listings" in frames:
        listings = frames["listings"]
        listing_shop = dict(zip(listings["listing_id"].tolist(), listings["shop_id"].tolist(), strict=True))
    for field, table in CHILD_TABLES.items():
        frame = frames.get(table.name)
        per_shop: dict[str, list[dict[str, Any]]] = {}
        if frame is not None and len(frame):
            owner = frame["listing_id"].map(listing_shop) if field == "listing_edits" else frame["shop_id"]
            keep = owner.isin(wanted).to_numpy()
            sub = frame.loc[keep, table.column_names]
            owners = owner[keep].tolist()
            for shop, row in zip(owners, sub.to_dict(orient="records"), strict=True):
                per_shop.setdefault(shop, []).append({str(k): _py(v) for k, v in row.items()})
        children[field] = per_shop
    out: list[ShopRecord] = []
    for row in shops[SHOPS.column_names].to_dict(orient="records"):
        data: dict[str, Any] = {str(k): _py(v) for k, v in row.items()}
        for field in CHILD_TABLES:
            data[field] = children[field].get(data["shop_id"], [])
        out.append(ShopRecord.model_validate(data))
    return out


# -- inline records checked column by column ----------------------------------------------------------------
#
# ``ShopRecord`` builds one Python object per record and item and runs a Python validator per string and
# time: about a second for a thousand shops with their history. The fast path decodes the JSON with msgspec
# straight into typed structs built from the schema (types, required and unknown keys, list and string
# lengths, allowed values and numeric ranges are checked in C, and a struct is cheaper to build than a
# dict), then checks the remaining rules over whole columns (control characters: one ``join`` and one regex
# search per string column; times: numpy; a child's shop id) and builds the contract columns. It
# is a fast path, never the judge: it accepts only input that ``ShopRecord`` accepts, with the same values,
# and gives up (None) on anything else, from a bad field to a merely unusual spelling (a number sent as a
# string, a time without seconds). The caller then validates with ``ShopRecord``, which names each bad
# field's JSON path: errors and values stay the model's.

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


def _table_columns(
    items: list[Any], table: Table, now: datetime, owners: np.ndarray | None = None, keys: list[int] | None = None
) -> dict[str, np.ndarray]:
    """The columns of ``table`` from ``items`` (decoded structs). ``owners``: the record's shop id of each
    item, which an item's own ``shop_id`` (optional) must equal. ``keys[0]`` grows by the fields given."""
    out: dict[str, np.ndarray] = {}
    for col in table.columns:
        values, given = _given(list(map(attrgetter(col.name), items)), None)
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
        items = [it for lst in lists for it in lst]
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
