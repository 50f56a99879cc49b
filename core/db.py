"""The one database: its metadata, the one engine factory and the unit of work.

Every table of the service (the sanction workflow's, the serving tables, the console's) is declared
on :data:`metadata` (one naming convention) by the package that owns it; the schema is created and
evolved only by the application's Alembic migrations (``dajia/migrations``), which import every owner.

SQLite and PostgreSQL are configured here, once, for every user of the database in a process:

* SQLite: WAL journal, foreign keys on, a 60 s busy timeout; every unit of work that writes begins
  ``BEGIN IMMEDIATE`` (one writer at a time, no lost updates, no busy error in the middle of a
  transaction) while reads stay deferred and never block writers. ``synchronous`` is ``NORMAL`` (a
  commit survives a killed process) unless ``FULL`` is asked for (also a power cut: one fsync a commit).
  ``checkpoint_in_background``: connections never checkpoint the WAL inside a commit; a
  ``serving.wal.WalCheckpointer`` beside the engine does.
* PostgreSQL: pooled connections are pre-pinged (one loopback round trip on checkout) so the first
  transaction after a database restart does not fail; optimistic versions, row locks and the audit
  head lock do the rest.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Engine, MetaData
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from core.errors import DajiaError
from core.settings import sqlite_file

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: the service's one schema: every owner declares its tables here
metadata = MetaData(naming_convention=NAMING)


class Base(DeclarativeBase):
    """Declarative base of the ORM tables, on the one :data:`metadata`."""

    metadata = metadata


#: the largest id an ``Integer`` column holds on every supported database (PostgreSQL's ``integer`` is
#: 32-bit; SQLite's 64-bit): ids from outside are checked against it before they reach a query
MAX_ID = 2**31 - 1
#: characters no text column can hold on every supported database: PostgreSQL refuses NUL in text
#: (SQLite would store it silently) and a lone UTF-16 surrogate cannot be encoded for either driver
FORBIDDEN_TEXT = re.compile("[\x00\ud800-\udfff]")


def storable_text(value: str) -> str | None:
    """None when every database can store ``value``, else why not (a sentence for an error message)."""
    m = FORBIDDEN_TEXT.search(value)
    if m is None:
        return None
    what = "the NUL character (\\u0000)" if m.group() == "\x00" else f"a lone surrogate (\\u{ord(m.group()):04x})"
    return f"must not contain {what}"


#: execution option marking a connection whose transaction will write (SQLite: BEGIN IMMEDIATE)
WRITE_OPTION = "dajia_write"
#: SQLite: seconds a connection waits for the write lock before giving up
BUSY_TIMEOUT_SECONDS = 60
#: bytes a started-over SQLite log file is cut back to (``PRAGMA journal_size_limit``)
JOURNAL_SIZE_LIMIT = 64 * 1024 * 1024


def is_sqlite(url_or_engine: str | Engine) -> bool:
    url = url_or_engine.url if isinstance(url_or_engine, Engine) else make_url(url_or_engine)
    return url.get_backend_name() == "sqlite"


def make_engine(
    url: str, sqlite_synchronous: str = "NORMAL", *, checkpoint_in_background: bool = False, **kwargs: Any
) -> Engine:
    """The engine for the database at ``url`` (see the module's docstring for what is decided here).

    Parameters of failed statements are never rendered into error messages or logs
    (``hide_parameters``): they may hold shopkeepers' personal data.
    """
    if sqlite_synchronous not in ("NORMAL", "FULL"):
        raise ValueError(f"sqlite_synchronous must be NORMAL or FULL, got {sqlite_synchronous!r}")
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise DajiaError(f"DATABASE_URL is not a valid SQLAlchemy URL: {url!r} ({exc})") from exc
    kwargs.setdefault("hide_parameters", True)
    if parsed.get_backend_name() != "sqlite":
        return sa.create_engine(url, pool_pre_ping=True, **kwargs)
    db = sqlite_file(url)
    if db is not None:
        db.parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_SECONDS, "check_same_thread": False}, **kwargs)

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # transactions are begun by _on_begin, not by the driver
        cur = dbapi_connection.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={sqlite_synchronous}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_SECONDS * 1000}")
        if checkpoint_in_background:
            cur.execute("PRAGMA wal_autocheckpoint=0")
            # after a burst, a log started over is cut back to this size rather than kept at its largest
            cur.execute(f"PRAGMA journal_size_limit={JOURNAL_SIZE_LIMIT}")
        cur.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # writers take the write lock up front; readers stay deferred and never block writers (WAL)
        write = conn.get_execution_options().get(WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def writing(engine: Engine) -> Engine:
    """``engine`` whose transactions will write (SQLite: ``BEGIN IMMEDIATE``), for ``with writing(e).begin()``."""
    return engine.execution_options(**{WRITE_OPTION: True})


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def end_read_transaction(session: Session, what: str) -> None:
    """End the read-only transaction ``session`` auto-began (a query before a change), so the change
    starts a transaction of its own; pending unflushed changes are refused (``what`` names the caller)
    rather than silently rolled back or committed."""
    if session.in_transaction():
        if session.new or session.dirty or session.deleted:
            raise RuntimeError(f"{what}: the session holds uncommitted changes of its own")
        session.rollback()


@contextmanager
def unit_of_work(session: Session) -> Iterator[Session]:
    """One transaction around one change: commit on success, roll back on any error.

    A read-only transaction the session auto-began (a query before the change) is ended first;
    pending unflushed changes of the caller are refused rather than silently committed.
    """
    end_read_transaction(session, "unit_of_work")
    with session.begin():
        session.connection(execution_options={WRITE_OPTION: True})
        yield session
