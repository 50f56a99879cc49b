"""The marketplace data contract: one typed schema per table.

This module is the single source of truth for the tables of ``docs/data-contract.md``. The
generator writes exactly these columns, the loader validates against them, and the feature
builders read them. All timestamps are UTC (naive ``datetime64`` after loading).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["string", "text", "int", "float", "bool", "timestamp"]


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind
    nullable: bool = False
    doc: str = ""
    #: allowed values for categorical string columns
    choices: tuple[str, ...] | None = None
    #: inclusive numeric bounds
    min: float | None = None
    max: float | None = None
    #: maximum length for strings
    max_len: int | None = None


@dataclass(frozen=True)
class ForeignKey:
    column: str
    table: str
    target: str
    #: a null value is allowed and does not need to resolve
    nullable: bool = False


@dataclass(frozen=True)
class Table:
    name: str
    key: tuple[str, ...]
    columns: tuple[Column, ...]
    foreign_keys: tuple[ForeignKey, ...] = ()
    #: optional tables may be absent from a folder (they then load empty)
    optional: bool = False
    doc: str = ""
    #: timestamp columns that must not lie after the snapshot time
    event_times: tuple[str, ...] = field(default=())

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


CATEGORIES = (
    "bags",
    "shoes",
    "watches",
    "cosmetics",
    "electronics",
    "apparel",
    "jewelry",
    "toys",
    "sports",
    "home",
)
COMPLAINT_KINDS = ("counterfeit", "quality", "not_delivered", "description_mismatch", "other")
COMPLAINT_SOURCES = ("consumer", "brand_owner", "test_buy")
VERDICT_OUTCOMES = ("counterfeit", "genuine")
EVIDENCE_KINDS = ("test_buy", "brand_owner", "reviewer", "consumer_reports")

_ID = 64
_NAME = 200
_TITLE = 500
_TEXT = 5000

SHOPS = Table(
    name="shops",
    key=("shop_id",),
    doc="One row per shop. Personal fields belong to the shopkeeper; business fields to the shop.",
    columns=(
        Column("shop_id", "string", max_len=_ID, doc="unique shop id"),
        Column("shopkeeper_id", "string", max_len=_ID, doc="the person or company behind the shop"),
        Column("name", "text", max_len=_NAME, doc="shop name shown on the storefront"),
        Column("opened_at", "timestamp", doc="when the shop opened"),
        Column("category", "string", choices=CATEGORIES, doc="main category"),
        Column("business_registration", "string", max_len=_ID, doc="business licence number (public)"),
        Column("business_phone", "string", max_len=_ID, doc="business contact phone (public)"),
        Column("business_email", "string", max_len=_NAME, doc="business contact e-mail (public)"),
        Column("owner_phone", "string", max_len=_ID, doc="shopkeeper's personal phone (personal, linkage)"),
        Column("owner_email", "string", max_len=_NAME, doc="shopkeeper's personal e-mail (personal, linkage)"),
        Column("owner_address", "text", max_len=_NAME, doc="shopkeeper's home address (personal, linkage)"),
        Column("id_number_hash", "string", max_len=_ID, doc="hash of the shopkeeper's ID number (personal, linkage)"),
        Column("bank_account_hash", "string", max_len=_ID, doc="hash of the payout bank account (linkage)"),
        Column("device_id", "string", max_len=_ID, doc="device fingerprint used to register (linkage)"),
    ),
    event_times=("opened_at",),
)

BRANDS = Table(
    name="brands",
    key=("brand",),
    doc="Brands with a reference (list) price; premium brands are the usual counterfeiting targets.",
    columns=(
        Column("brand", "string", max_len=_NAME),
        Column("category", "string", choices=CATEGORIES),
        Column("reference_price", "float", min=0.01, max=1e7, doc="brand's list price in yuan"),
        Column("premium", "bool", doc="a luxury or premium brand"),
    ),
)

AUTHORISATIONS = Table(
    name="authorisations",
    key=("brand", "shop_id"),
    doc="Which shops a brand owner has authorised to sell its goods, and since when.",
    columns=(
        Column("brand", "string", max_len=_NAME),
        Column("shop_id", "string", max_len=_ID),
        Column("granted_at", "timestamp"),
    ),
    foreign_keys=(ForeignKey("brand", "brands", "brand"), ForeignKey("shop_id", "shops", "shop_id")),
    event_times=("granted_at",),
)

LISTINGS = Table(
    name="listings",
    key=("listing_id",),
    doc="Listings as created; later edits are rows of listing_edits; delisting sets delisted_at.",
    columns=(
        Column("listing_id", "string", max_len=_ID),
        Column("shop_id", "string", max_len=_ID),
        Column("created_at", "timestamp"),
        Column("title", "text", max_len=_TITLE, doc="title at creation (Chinese, English or both)"),
        Column("description", "text", max_len=_TEXT),
        Column("brand", "string", nullable=True, max_len=_NAME, doc="brand claimed; null for unbranded goods"),
        Column("category", "string", choices=CATEGORIES),
        Column("price", "float", min=0.01, max=1e7, doc="price at creation, yuan"),
        Column("delisted_at", "timestamp", nullable=True, doc="when the seller removed it"),
    ),
    foreign_keys=(
        ForeignKey("shop_id", "shops", "shop_id"),
        ForeignKey("brand", "brands", "brand", nullable=True),
    ),
    event_times=("created_at", "delisted_at"),
)

LISTING_EDITS = Table(
    name="listing_edits",
    key=("edit_id",),
    optional=True,
    doc="An edit of a listing's title and price; the listing reads as its latest edit before a time.",
    columns=(
        Column("edit_id", "string", max_len=_ID),
        Column("listing_id", "string", max_len=_ID),
        Column("edited_at", "timestamp"),
        Column("title", "text", max_len=_TITLE),
        Column("price", "float", min=0.01, max=1e7),
    ),
    foreign_keys=(ForeignKey("listing_id", "listings", "listing_id"),),
    event_times=("edited_at",),
)

ORDERS = Table(
    name="orders",
    key=("order_id",),
    columns=(
        Column("order_id", "string", max_len=_ID),
        Column("shop_id", "string", max_len=_ID),
        Column("listing_id", "string", max_len=_ID),
        Column("buyer_id", "string", max_len=_ID),
        Column("ordered_at", "timestamp"),
        Column("amount", "float", min=0.01, max=1e7, doc="amount paid, yuan"),
        Column("refunded_at", "timestamp", nullable=True),
    ),
    foreign_keys=(
        ForeignKey("shop_id", "shops", "shop_id"),
        ForeignKey("listing_id", "listings", "listing_id"),
    ),
    event_times=("ordered_at", "refunded_at"),
)

COMPLAINTS = Table(
    name="complaints",
    key=("complaint_id",),
    columns=(
        Column("complaint_id", "string", max_len=_ID),
        Column("shop_id", "string", max_len=_ID),
        Column("order_id", "string", nullable=True, max_len=_ID),
        Column("filed_at", "timestamp"),
        Column("kind", "string", choices=COMPLAINT_KINDS),
        Column("source", "string", choices=COMPLAINT_SOURCES),
    ),
    foreign_keys=(
        ForeignKey("shop_id", "shops", "shop_id"),
        ForeignKey("order_id", "orders", "order_id", nullable=True),
    ),
    event_times=("filed_at",),
)

REVIEWS = Table(
    name="reviews",
    key=("review_id",),
    columns=(
        Column("review_id", "string", max_len=_ID),
        Column("shop_id", "string", max_len=_ID),
        Column("order_id", "string", max_len=_ID),
        Column("created_at", "timestamp"),
        Column("rating", "int", min=1, max=5),
        Column("text", "text", max_len=_TEXT),
    ),
    foreign_keys=(ForeignKey("shop_id", "shops", "shop_id"), ForeignKey("order_id", "orders", "order_id")),
    event_times=("created_at",),
)

VERDICTS = Table(
    name="verdicts",
    key=("verdict_id",),
    doc="Confirmed investigation outcomes: the labels. Partial (not every shop) and late.",
    columns=(
        Column("verdict_id", "string", max_len=_ID),
        Column("shop_id", "string", max_len=_ID),
        Column("decided_at", "timestamp"),
        Column("outcome", "string", choices=VERDICT_OUTCOMES),
        Column("evidence_kind", "string", choices=EVIDENCE_KINDS),
    ),
    foreign_keys=(ForeignKey("shop_id", "shops", "shop_id"),),
    event_times=("decided_at",),
)

#: tables in load order (a table's foreign keys point only at tables before it)
TABLES: tuple[Table, ...] = (
    SHOPS,
    BRANDS,
    AUTHORISATIONS,
    LISTINGS,
    LISTING_EDITS,
    ORDERS,
    COMPLAINTS,
    REVIEWS,
    VERDICTS,
)
TABLES_BY_NAME: dict[str, Table] = {t.name: t for t in TABLES}

#: columns holding a person's data: masked on disclosure, never logged
PERSONAL_FIELDS = ("owner_phone", "owner_email", "owner_address", "id_number_hash")
#: shop identifiers used to link shops run by the same people
LINKAGE_FIELDS = ("owner_phone", "owner_email", "id_number_hash", "bank_account_hash", "device_id", "owner_address")

#: ground truth written by the generator beside (not inside) the contract tables
GROUND_TRUTH_FILE = "ground_truth.parquet"
MANIFEST_FILE = "manifest.json"
