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


def test_a_serialized_json_value_is_stored_as_the_plain_value_is(session: Session) -> None:
    """The snapshot's fast path (its canonical JSON text stored as it is) equals the plain path, on every
    insert path (ORM for a few rows, executemany or COPY for many) and both databases."""
    from sanctions.audit import canonical

    meta = sa.MetaData()
    table = sa.Table(
        "bulk_json_scratch", meta, sa.Column("id", sa.Integer, primary_key=True), sa.Column("doc", sa.JSON)
    )
    meta.create_all(session.get_bind())
    content = {"score": {"features": {"a": 1.5, "b": None}, "reasons": ["高仿"]}, "listings": [{"t": "x"}]}
    try:
        for start, n in ((1, 3), (1000, bulk.COPY_FROM + 5)):
            rows = [
                {"id": start + i, "doc": bulk.Serialized(content, canonical(content)) if i % 2 else content}
                for i in range(n)
            ]
            with session.begin():
                bulk.insert_rows(session, table, rows)
            got = session.execute(sa.select(table.c.doc).where(table.c.id >= start)).scalars().all()
            session.rollback()
            assert len(got) == n and all(g == content for g in got)
    finally:
        meta.drop_all(session.get_bind())
