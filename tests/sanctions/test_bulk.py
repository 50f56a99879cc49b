"""``sanctions.bulk.among`` beyond SQLite's placeholder limit."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from sanctions import bulk


def test_among_takes_more_ids_than_sqlite_has_placeholders() -> None:
    engine = sa.create_engine("sqlite://")
    meta = sa.MetaData()
    shops = sa.Table("shops", meta, sa.Column("shop_id", sa.String, primary_key=True))
    meta.create_all(engine)
    n = 40_000  # above SQLite's 32,766 placeholders a statement
    assert n > bulk.SQLITE_IN_LIMIT
    with Session(engine) as session:
        session.execute(shops.insert(), [{"shop_id": f"S{i}"} for i in range(n)])
        wanted = [f"S{i}" for i in range(0, n, 2)] + [f"X{i}" for i in range(n // 2)]  # half unknown
        q = sa.select(sa.func.count()).select_from(shops).where(bulk.among(session, shops.c.shop_id, wanted))
        assert session.execute(q).scalar_one() == n // 2
        small = sa.select(shops.c.shop_id).where(bulk.among(session, shops.c.shop_id, ["S1", "S3", "nope"]))
        assert sorted(session.execute(small).scalars()) == ["S1", "S3"]
