"""Set-based writes for sweeps: COPY on PostgreSQL, executemany on SQLite, ids allocated up front.

A routing sweep writes four rows per case (case, event, outbox, audit entry). Through
SQLAlchemy's multi-row ``INSERT … RETURNING`` that costs mostly statement building and parsing;
here ids come first (one ``nextval`` round trip on PostgreSQL, ``max(id)`` under SQLite's
``BEGIN IMMEDIATE`` write lock) and the rows go out through ``COPY … FROM STDIN`` or a plain
``executemany``, inside the caller's transaction.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import (
    JSON,
    Boolean,
    ColumnElement,
    Connection,
    DateTime,
    Insert,
    String,
    Table,
    any_,
    bindparam,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

#: below this many rows a plain INSERT is cheaper than COPY's extra round trip
COPY_FROM = 64


def among(session: Session, column: Any, values: Sequence[str]) -> ColumnElement[bool]:
    """``column IN (values)``. On PostgreSQL ``column = ANY(:array)``, ONE parameter instead of
    thousands (thousands of placeholders cost more to build and parse than the query itself); on
    SQLite a plain ``IN`` with one placeholder a value, and beyond ``SQLITE_IN_LIMIT`` values (SQLite
    allows at most 32,766 placeholders in a statement) ``IN (SELECT value FROM json_each(:ids))``."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return cast(ColumnElement[bool], column == any_(bindparam(None, list(values), type_=ARRAY(String))))
    if dialect == "sqlite" and len(values) > SQLITE_IN_LIMIT:
        ids = select(text("value")).select_from(func.json_each(bindparam(None, json.dumps(list(values)))))
        return column.in_(ids.scalar_subquery())
    return column.in_(list(values))


#: the most values ``among`` sends to SQLite as placeholders
SQLITE_IN_LIMIT = 30_000


def allocate_ids(session: Session, table: Table, n: int) -> list[int]:
    """``n`` fresh integer primary keys for ``table`` (its single autoincrement column)."""
    if n <= 0:
        return []
    (pk,) = table.primary_key.columns
    if session.get_bind().dialect.name == "postgresql":
        rows = session.execute(
            text("SELECT nextval(pg_get_serial_sequence(:t, :c)) FROM generate_series(1, :n)"),
            {"t": table.name, "c": pk.name, "n": n},
        ).scalars()
        return sorted(int(x) for x in rows)
    start = int(session.execute(select(func.coalesce(func.max(pk), 0))).scalar_one())
    return list(range(start + 1, start + 1 + n))


_INSERTS: dict[str, Insert] = {}


class Serialized:
    """A JSON column's value and its JSON text, made once by the caller (the evidence snapshot hashes its
    canonical JSON anyway): the bulk paths store ``text`` as is instead of serialising ``value`` again;
    the ORM path gets ``value``. The same content either way (tested: ``tests/sanctions/test_bulk.py``)."""

    __slots__ = ("text", "value")

    def __init__(self, value: Any, text: str) -> None:
        self.value, self.text = value, text


def _plain(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: (v.value if isinstance(v, Serialized) else v) for k, v in r.items()} for r in rows]


def insert_rows(session: Session, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert ``rows`` (all with the same keys) into ``table`` in the session's transaction."""
    if not rows:
        return
    conn = session.connection()
    dialect = conn.dialect.name
    if dialect == "sqlite" and len(rows) >= COPY_FROM:
        _sqlite_executemany(conn, table, rows)
        return
    if dialect != "postgresql" or len(rows) < COPY_FROM:
        stmt = _INSERTS.get(table.name)
        if stmt is None:
            stmt = _INSERTS[table.name] = insert(table)
        conn.execute(stmt, _plain(rows))
        return
    cols = list(rows[0])
    json_cols = {c for c in cols if isinstance(table.c[c].type, JSON)}
    raw = conn.connection.driver_connection
    assert raw is not None
    with raw.cursor() as cur, cur.copy(f"COPY {table.name} ({', '.join(cols)}) FROM STDIN") as copy:
        for r in rows:
            copy.write_row([_json(r[c]) if c in json_cols and r[c] is not None else r[c] for c in cols])


def _json(v: Any) -> str:
    return v.text if isinstance(v, Serialized) else json.dumps(v, ensure_ascii=False)


def _kind(t: Any) -> str:
    if isinstance(t, JSON):
        return "json"
    if isinstance(t, DateTime):
        return "dt"
    if isinstance(t, Boolean):
        return "bool"
    return ""


def _sqlite_executemany(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """The driver's own executemany with values already in SQLAlchemy's SQLite storage format
    (JSON text, ``YYYY-MM-DD HH:MM:SS.ffffff`` datetimes, 0/1 booleans): no per-row processing."""
    cols = list(rows[0])
    kinds = [_kind(table.c[c].type) for c in cols]

    def convert(kind: str, v: Any) -> Any:
        if v is None:
            return None
        if kind == "json":
            return _json(v)
        if kind == "dt":
            return v.strftime("%Y-%m-%d %H:%M:%S.%f")
        if kind == "bool":
            return int(bool(v))
        return v

    sql = f"INSERT INTO {table.name} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
    params = [tuple(convert(k, r[c]) for k, c in zip(kinds, cols, strict=True)) for r in rows]
    conn.exec_driver_sql(sql, params)
