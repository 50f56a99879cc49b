"""The storefront projection the workflow acts on, and the seller actions it guards.

``import_marketplace`` copies shops, listings (title and price as of their latest edit), orders
and the marketplace's verdicts (routing reopens a decided shop on a counterfeit verdict dated after the
decision) from a :class:`marketplace.tables.Marketplace` in bulk: PostgreSQL through ``COPY`` into
a temporary table then ``INSERT … ON CONFLICT DO NOTHING``; SQLite through ``executemany`` of
``INSERT OR IGNORE``. Rows already present are left alone (their workflow state belongs to the
store), so importing the same or a later snapshot again is safe.

The storefront view is what the public sees, one projection a marketplace catalogue can follow
(``shop_view`` for one shop, ``changes`` for the ordered feed of every visibility change):

- ``visible``: no case, or the case ended without a standing measure: on sale, editable;
- ``frozen``: a case is open: still on sale, listings unchangeable (evidence);
- ``not_purchasable``: banned (step 2): the shop page stays reachable, so buyers find the notice and
  how to claim, but it lists no listings and nothing can be bought until the ban lifts (every
  consumer confirmed: settled) or is reversed on appeal;
- ``removed``: closed (step 1): shop and listings gone (the page is 404), rows kept as evidence.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

import pandas as pd
from pydantic import BaseModel
from sqlalchemy import Connection, Engine, Table, func, select
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from core.db import WRITE_OPTION, end_read_transaction, unit_of_work
from core.errors import DajiaError, Forbidden, InvalidTransition, NotFound
from marketplace.tables import Marketplace
from sanctions import tx
from sanctions.models import Case, Listing, MarketVerdict, Order, Shop, StorefrontChange
from sanctions.workflow import OPEN_STATUSES, Actor, Role

VISIBLE = "visible"
FROZEN = "frozen"
NOT_PURCHASABLE = "not_purchasable"
REMOVED = "removed"
#: the storefront state of a shop, by its status (an active shop with an open case is FROZEN)
STATE_OF_STATUS = {"active": VISIBLE, "banned": NOT_PURCHASABLE, "closed": REMOVED}
_FEED = cast(Table, StorefrontChange.__table__)


def record_change(ch: tx.Change, shop_id: str, state: str, case_id: int | None, action: str) -> None:
    """One row of the storefront feed, written in commit order with ``ch`` (see ``tx.Change.in_commit_order``)."""
    if state not in (VISIBLE, FROZEN, NOT_PURCHASABLE, REMOVED):
        raise ValueError(f"unknown storefront state {state!r}")
    ch.in_commit_order(_FEED, {"shop_id": shop_id, "state": state, "case_id": case_id, "action": action, "at": ch.now})


SHOP_COLUMNS = (
    "shop_id",
    "shopkeeper_id",
    "name",
    "category",
    "opened_at",
    "business_registration",
    "business_phone",
    "business_email",
    "owner_phone",
    "owner_email",
    "owner_address",
    "id_number_hash",
    "bank_account_hash",
    "device_id",
)
LISTING_COLUMNS = ("listing_id", "shop_id", "created_at", "title", "brand", "category", "price", "delisted_at")
ORDER_COLUMNS = ("order_id", "shop_id", "listing_id", "buyer_id", "ordered_at", "amount", "refunded_at")
VERDICT_COLUMNS = ("verdict_id", "shop_id", "decided_at", "outcome", "evidence_kind")
#: verdict ids ``sanctions.labels`` makes from the workflow's own decisions: not the marketplace's evidence
REVIEWER_VERDICT_ID = r"^case[0-9]+-ev[0-9]+$"


class ImportReport(BaseModel):
    shops_added: int
    listings_added: int
    orders_added: int
    verdicts_added: int = 0
    new_shop_ids: list[str]


def _current_listings(mp: Marketplace) -> pd.DataFrame:
    """Listings with title and price of their latest edit at the snapshot."""
    listings = mp.listings
    edits = mp.listing_edits
    if edits is None or len(edits) == 0:
        return listings
    last = edits.sort_values(["listing_id", "edited_at"]).drop_duplicates("listing_id", keep="last")
    merged = listings.merge(last[["listing_id", "title", "price"]], on="listing_id", how="left", suffixes=("", "_e"))
    merged["title"] = merged["title_e"].where(merged["title_e"].notna(), merged["title"])
    merged["price"] = merged["price_e"].where(merged["price_e"].notna(), merged["price"])
    return merged.drop(columns=["title_e", "price_e"])


def _rows(frame: pd.DataFrame, columns: Sequence[str]) -> list[tuple[Any, ...]]:
    """Plain Python tuples (str, float, datetime, None) for the driver."""
    cols: list[list[Any]] = []
    for c in columns:
        s = frame[c]
        if pd.api.types.is_datetime64_any_dtype(s):
            values = [None if pd.isna(v) else v.to_pydatetime() for v in s]
        elif pd.api.types.is_float_dtype(s):
            values = [float(v) for v in s.to_numpy()]
        else:
            values = [None if (v is None or v is pd.NA or (isinstance(v, float) and v != v)) else str(v) for v in s]
        cols.append(values)
    return list(zip(*cols, strict=True)) if cols else []


def _count(conn: Connection, table: Table) -> int:
    return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def _bulk_insert_ignore(conn: Connection, table: Table, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> int:
    """Insert rows whose key is not present yet; returns how many were added."""
    if not rows:
        return 0
    before = _count(conn, table)
    if conn.dialect.name == "postgresql":
        tmp = f"tmp_import_{table.name}"
        cols = ", ".join(columns)
        conn.exec_driver_sql(f"CREATE TEMP TABLE {tmp} (LIKE {table.name} INCLUDING DEFAULTS) ON COMMIT DROP")
        raw = conn.connection.driver_connection
        assert raw is not None
        with raw.cursor() as cur, cur.copy(f"COPY {tmp} ({cols}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        conn.exec_driver_sql(f"INSERT INTO {table.name} ({cols}) SELECT {cols} FROM {tmp} ON CONFLICT DO NOTHING")
        conn.exec_driver_sql(f"DROP TABLE {tmp}")
    else:
        stmt = sqlite_insert(table).on_conflict_do_nothing()
        conn.execute(stmt, [dict(zip(columns, r, strict=True)) for r in rows])
    return _count(conn, table) - before


def _platform_verdicts(mp: Marketplace) -> pd.DataFrame:
    """The marketplace's own verdicts (not those ``sanctions.labels`` derived from the workflow's decisions)."""
    verdicts = mp.verdicts
    if verdicts is None or len(verdicts) == 0:
        return pd.DataFrame(columns=list(VERDICT_COLUMNS))
    own = ~verdicts["verdict_id"].astype(str).str.match(REVIEWER_VERDICT_ID)
    return verdicts.loc[own, list(VERDICT_COLUMNS)]


def import_marketplace(target: Engine | Session, mp: Marketplace, *, detect_evasion: bool = True) -> ImportReport:
    """Copy ``mp``'s shops, listings, orders and verdicts into the store (idempotent, bulk).

    With ``detect_evasion`` the newly added shops are checked against closed shops at once
    (``routing.detect_ban_evasion``): a new shop sharing identifiers with a closed one opens a case.
    """
    if isinstance(target, Session):
        end_read_transaction(target, "import_marketplace")  # the import runs on its own connection
    engine = target if isinstance(target, Engine) else target.get_bind()
    assert isinstance(engine, Engine)
    shops = mp.shops
    listings = _current_listings(mp)
    orders = mp.orders
    with engine.execution_options(**{WRITE_OPTION: True}).begin() as conn:
        existing = set(conn.execute(select(Shop.shop_id)).scalars())
        new_ids = [s for s in shops["shop_id"].astype(str) if s not in existing]
        n_shops = _bulk_insert_ignore(conn, Shop.__table__, SHOP_COLUMNS, _rows(shops, SHOP_COLUMNS))  # type: ignore[arg-type]
        n_listings = _bulk_insert_ignore(
            conn,
            Listing.__table__,  # type: ignore[arg-type]
            LISTING_COLUMNS,
            _rows(listings, LISTING_COLUMNS),
        )
        n_orders = _bulk_insert_ignore(conn, Order.__table__, ORDER_COLUMNS, _rows(orders, ORDER_COLUMNS))  # type: ignore[arg-type]
        n_verdicts = _bulk_insert_ignore(
            conn,
            MarketVerdict.__table__,  # type: ignore[arg-type]
            VERDICT_COLUMNS,
            _rows(_platform_verdicts(mp), VERDICT_COLUMNS),
        )
    report = ImportReport(
        shops_added=n_shops,
        listings_added=n_listings,
        orders_added=n_orders,
        verdicts_added=n_verdicts,
        new_shop_ids=new_ids,
    )
    if detect_evasion and new_ids:
        from sanctions.routing import detect_ban_evasion

        if isinstance(target, Session):
            detect_ban_evasion(target, shop_ids=new_ids, now=_snapshot(mp))
        else:
            with Session(engine, expire_on_commit=False) as session:
                detect_ban_evasion(session, shop_ids=new_ids, now=_snapshot(mp))
    return report


def _snapshot(mp: Marketplace) -> datetime:
    ts = pd.Timestamp(mp.snapshot_at)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts.to_pydatetime()


# --------------------------------------------------------------------------- the public storefront


class StorefrontListing(BaseModel):
    listing_id: str
    shop_id: str
    shop_name: str
    title: str
    brand: str | None
    category: str
    price: float


class StorefrontShop(BaseModel):
    shop_id: str
    name: str
    category: str
    status: str
    #: visible | frozen | not_purchasable (a removed shop has no page)
    state: str = VISIBLE
    purchasable: bool = True
    listings_frozen: bool = False
    listings: list[StorefrontListing]


def storefront_listings(session: Session, *, shop_id: str | None = None, limit: int = 1000) -> list[StorefrontListing]:
    """Listings the public can buy: the shop is active (not closed, not banned), the listing neither
    withdrawn nor delisted."""
    q = (
        select(Listing, Shop.name)
        .join(Shop, Shop.shop_id == Listing.shop_id)
        .where(Shop.status == "active", Listing.withdrawn.is_(False), Listing.delisted_at.is_(None))
    )
    if shop_id is not None:
        q = q.where(Listing.shop_id == shop_id)
    q = q.order_by(Listing.listing_id).limit(limit)
    return [
        StorefrontListing(
            listing_id=li.listing_id,
            shop_id=li.shop_id,
            shop_name=name,
            title=li.title,
            brand=li.brand,
            category=li.category,
            price=li.price,
        )
        for li, name in session.execute(q).tuples()
    ]


def storefront_shop(session: Session, shop_id: str) -> StorefrontShop:
    """A shop page; a closed shop's page is gone (NotFound), as for a shop that never existed."""
    shop = session.get(Shop, shop_id)
    if shop is None or shop.status == "closed":
        raise NotFound(f"shop '{shop_id}' is not on the storefront")
    open_case = session.execute(
        select(Case.case_id).where(Case.shop_id == shop_id, Case.status.in_(sorted(OPEN_STATUSES))).limit(1)
    ).first()
    state = STATE_OF_STATUS.get(shop.status, VISIBLE)
    if state == VISIBLE and open_case is not None:
        state = FROZEN
    return StorefrontShop(
        shop_id=shop.shop_id,
        name=shop.name,
        category=shop.category,
        status=shop.status,
        state=state,
        purchasable=state in (VISIBLE, FROZEN),
        listings_frozen=open_case is not None,
        listings=storefront_listings(session, shop_id=shop_id),
    )


class StorefrontChangeView(BaseModel):
    """One visibility change: ``cursor`` resumes the feed after it."""

    cursor: str
    shop_id: str
    state: str
    purchasable: bool
    listed: bool
    case_id: int | None
    action: str
    at: datetime


class StorefrontFeed(BaseModel):
    changes: list[StorefrontChangeView]
    #: pass as ``after`` to continue (the last change's cursor, or the one given when nothing is new)
    next: str


def parse_cursor(after: str | None) -> int:
    """The feed position of a cursor ("" or None: the beginning); a clear error otherwise."""
    if after is None or after == "":
        return 0
    if not after.isdigit() or len(after) > 18:
        raise DajiaError(f"after: {after!r} is not a storefront feed cursor (use a 'next' value from the feed)")
    return int(after)


def changes(session: Session, *, after: str | None = None, limit: int = 500) -> StorefrontFeed:
    """Every visibility change after the cursor ``after``, oldest first, at most ``limit``."""
    pos = parse_cursor(after)
    rows = session.execute(
        select(StorefrontChange).where(StorefrontChange.seq > pos).order_by(StorefrontChange.seq).limit(limit)
    ).scalars()
    out = [
        StorefrontChangeView(
            cursor=str(r.seq),
            shop_id=r.shop_id,
            state=r.state,
            purchasable=r.state in (VISIBLE, FROZEN),
            listed=r.state != REMOVED,
            case_id=r.case_id,
            action=r.action,
            at=r.at,
        )
        for r in rows
    ]
    return StorefrontFeed(changes=out, next=out[-1].cursor if out else str(pos))


# --------------------------------------------------------------------------- seller actions


class ListingChange(BaseModel):
    listing_id: str
    title: str
    price: float
    delisted: bool


def _owned_unfrozen(session: Session, actor: Actor, listing_id: str) -> tuple[Listing, Shop]:
    listing = session.get(Listing, listing_id)
    if listing is None:
        raise NotFound(f"listing '{listing_id}' does not exist")
    shop = session.get(Shop, listing.shop_id)
    assert shop is not None
    if actor.role is not Role.SELLER or actor.actor_id != shop.shopkeeper_id:
        raise Forbidden(f"only the shopkeeper of shop '{shop.shop_id}' may change listing '{listing_id}'")
    if listing.frozen or listing.withdrawn:
        raise InvalidTransition(
            f"listing '{listing_id}' is frozen while shop '{shop.shop_id}' is under a sanction case: "
            "no edit, no delist until the case ends"
        )
    return listing, shop


def edit_listing(
    session: Session,
    actor: Actor,
    listing_id: str,
    *,
    title: str | None = None,
    price: float | None = None,
    now: datetime | None = None,
) -> ListingChange:
    """A seller edits a listing's title or price; refused while the listing is frozen."""
    when = now or tx.utcnow()
    if price is not None and not price > 0:
        raise InvalidTransition(f"listing '{listing_id}': price must be positive, got {price}")
    with unit_of_work(session):
        tx.ensure_actor(session, actor, when)
        listing, _ = _owned_unfrozen(session, actor, listing_id)
        ch = tx.Change(session, actor, when)
        old = {"title": listing.title, "price": listing.price}
        if title is not None:
            listing.title = title
        if price is not None:
            listing.price = float(price)
        ch.audit(
            "listing.edit", "listing", listing_id, {"old": old, "new": {"title": listing.title, "price": listing.price}}
        )
        session.flush()
        ch.finish()
        return ListingChange(listing_id=listing_id, title=listing.title, price=listing.price, delisted=False)


def delist(session: Session, actor: Actor, listing_id: str, *, now: datetime | None = None) -> ListingChange:
    """A seller removes a listing; refused while the listing is frozen (evidence must not vanish)."""
    when = now or tx.utcnow()
    with unit_of_work(session):
        tx.ensure_actor(session, actor, when)
        listing, _ = _owned_unfrozen(session, actor, listing_id)
        ch = tx.Change(session, actor, when)
        listing.delisted_at = when
        ch.audit("listing.delist", "listing", listing_id, {"at": when.isoformat()})
        session.flush()
        ch.finish()
        return ListingChange(listing_id=listing_id, title=listing.title, price=listing.price, delisted=True)
