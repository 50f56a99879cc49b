"""The SQL store: engines, migrations run programmatically, sessions and units of work.

SQLite (the default file) and PostgreSQL behave the same for the workflow: on SQLite every unit
of work begins ``BEGIN IMMEDIATE`` (one writer at a time, no lost updates, no busy errors in the
middle of a transaction) while reads stay deferred; PostgreSQL relies on optimistic versions,
row locks and the audit head lock.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from dajia.errors import DajiaError
from dajia.settings import sqlite_file

_MIGRATED: set[str] = set()
#: execution option marking a connection whose transaction will write (SQLite: BEGIN IMMEDIATE)
WRITE_OPTION = "dajia_write"
_LOCK = threading.Lock()
#: advisory lock id serialising concurrent migrations on PostgreSQL
MIGRATION_LOCK_ID = 7_245_001


def is_sqlite(url_or_engine: str | Engine) -> bool:
    url = url_or_engine.url if isinstance(url_or_engine, Engine) else make_url(url_or_engine)
    return url.get_backend_name() == "sqlite"


def create_store_engine(url: str, **kwargs: Any) -> Engine:
    """An engine configured for the workflow (SQLite: WAL, foreign keys, BEGIN IMMEDIATE)."""
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise DajiaError(f"DATABASE_URL is not a valid SQLAlchemy URL: {url!r} ({exc})") from exc
    if parsed.get_backend_name() == "sqlite":
        db = sqlite_file(url)
        if db is not None:
            db.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 60}, **kwargs)

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None
            cur = dbapi_connection.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=60000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Any) -> None:
            # writers take the write lock up front; readers stay deferred and never block writers (WAL)
            write = conn.get_execution_options().get(WRITE_OPTION, False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

        return engine
    # no pool_pre_ping: it costs a round trip per transaction; a dropped connection is invalidated
    # on its first error and the pool opens a new one
    return create_engine(url, **kwargs)


def _alembic_config(connection: Any) -> Any:
    from alembic.config import Config

    here = Path(__file__).resolve().parent
    cfg = Config(str(here / "alembic.ini"))
    cfg.set_main_option("script_location", str(here / "migrations"))
    cfg.attributes["connection"] = connection
    return cfg


def migrate(url_or_engine: str | Engine, revision: str = "head") -> None:
    """Bring the database at ``url_or_engine`` to ``revision`` (Alembic, shipped in the package)."""
    from alembic import command

    engine = create_store_engine(url_or_engine) if isinstance(url_or_engine, str) else url_or_engine
    try:
        with engine.connect() as conn:
            if not is_sqlite(engine):
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK_ID})
            command.upgrade(_alembic_config(conn), revision)
            conn.commit()
    finally:
        if isinstance(url_or_engine, str):
            engine.dispose()


def open_store(url: str, **kwargs: Any) -> Engine:
    """An engine on ``url`` whose schema is migrated to head (once per process and URL)."""
    engine = create_store_engine(url, **kwargs)
    with _LOCK:
        if url not in _MIGRATED:
            migrate(engine)
            _MIGRATED.add(url)
    return engine


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
    """One transaction around one workflow change: commit on success, roll back on any error.

    A read-only transaction the session auto-began (a query before the change) is ended first;
    pending unflushed changes of the caller are refused rather than silently committed.
    """
    end_read_transaction(session, "unit_of_work")
    with session.begin():
        session.connection(execution_options={WRITE_OPTION: True})
        yield session
