"""Fixtures for the sanction workflow: a store on SQLite and on PostgreSQL, a tiny marketplace."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from dajia.db import migrate, open_store, service_metadata
from marketplace.schema import TABLES_BY_NAME
from marketplace.tables import Marketplace
from sanctions.audit import GENESIS
from tests.conftest import postgres_schema

SNAPSHOT = datetime(2026, 6, 30, 12, 0, 0)


def _frame(name: str, rows: list[dict[str, object]]) -> pd.DataFrame:
    table = TABLES_BY_NAME[name]
    frame = pd.DataFrame(rows, columns=table.column_names)
    for col in table.columns:
        if col.kind == "timestamp":
            frame[col.name] = pd.to_datetime(frame[col.name]).astype("datetime64[us]")
        elif col.kind == "float":
            frame[col.name] = frame[col.name].astype("float64")
        elif col.kind in ("string", "text"):
            frame[col.name] = frame[col.name].astype("string")
    return frame


def shop_row(shop_id: str, category: str = "bags", **overrides: object) -> dict[str, object]:
    row: dict[str, object] = {
        "shop_id": shop_id,
        "shopkeeper_id": f"keeper-{shop_id}",
        "name": f"Shop {shop_id} 精品店",
        "opened_at": SNAPSHOT - timedelta(days=400),
        "category": category,
        "business_registration": f"BR-{shop_id}",
        "business_phone": f"010-{shop_id}",
        "business_email": f"biz-{shop_id}@shop.example",
        "owner_phone": f"138-{shop_id}",
        "owner_email": f"owner-{shop_id}@mail.example",
        "owner_address": f"{shop_id} Home Road, Hangzhou",
        "id_number_hash": f"idh-{shop_id}",
        "bank_account_hash": f"bank-{shop_id}",
        "device_id": f"dev-{shop_id}",
    }
    row.update(overrides)
    return row


def build_marketplace(
    shops: list[dict[str, object]],
    listings_per_shop: int = 2,
    orders: list[tuple[str, str, str, float, datetime]] | None = None,
) -> Marketplace:
    """Shops as given; ``listings_per_shop`` listings each (``<shop>-L<i>``); orders as
    (shop, listing, buyer, amount, ordered_at)."""
    listings = [
        {
            "listing_id": f"{s['shop_id']}-L{i}",
            "shop_id": s["shop_id"],
            "created_at": SNAPSHOT - timedelta(days=300),
            "title": f"Luxury bag 高仿 {i}",
            "description": "desc",
            "brand": None,
            "category": s["category"],
            "price": 100.0 + i,
            "delisted_at": None,
        }
        for s in shops
        for i in range(listings_per_shop)
    ]
    order_rows = [
        {
            "order_id": f"O{n}",
            "shop_id": shop,
            "listing_id": listing,
            "buyer_id": buyer,
            "ordered_at": at,
            "amount": amount,
            "refunded_at": None,
        }
        for n, (shop, listing, buyer, amount, at) in enumerate(orders or [])
    ]
    empty = {name: _frame(name, []) for name in TABLES_BY_NAME}
    return Marketplace(
        shops=_frame("shops", shops),
        brands=empty["brands"],
        authorisations=empty["authorisations"],
        listings=_frame("listings", listings),
        listing_edits=empty["listing_edits"],
        orders=_frame("orders", order_rows),
        complaints=empty["complaints"],
        reviews=empty["reviews"],
        verdicts=empty["verdicts"],
        snapshot_at=pd.Timestamp(SNAPSHOT),
    )


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to head once; each test gets a copy (migrating takes ~0.5 s)."""
    path = tmp_path_factory.mktemp("template") / "sanctions.db"
    migrate(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_store_url(postgres_admin_url: str) -> Iterator[str]:
    """One schema migrated to head for the whole session; tests get it emptied (see ``db_url``)."""
    with postgres_schema(postgres_admin_url, prefix="t_sanctions_") as url:
        migrate(url)
        yield url


def _emptied(url: str) -> str:
    """Every table emptied (ids restarted) and the audit head back at genesis: as freshly migrated."""
    tables = [t.name for t in service_metadata().sorted_tables]
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        conn.execute(sa.text("INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, :h)"), {"h": GENESIS})
    engine.dispose()
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        target = tmp_path / "sanctions.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), target)
        return f"sqlite:///{target}"
    return _emptied(str(request.getfixturevalue("postgres_store_url")))


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = open_store(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with Session(engine, expire_on_commit=False) as s:
        yield s
