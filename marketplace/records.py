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
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import numpy as np
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

#: the child tables whose rows name their shop (``shop_id``)
_OWNED_CHILDREN = tuple(f for f, t in CHILD_TABLES.items() if "shop_id" in t.column_names)


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
        for field in _OWNED_CHILDREN:
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
