"""The application's side of the one database: migrations, run before anything uses it.

``dajia serve``, every CLI command and the crackdown call :func:`open_store` (or :func:`migrate`)
before they build what uses the database, as the FastAPI template's pre-start does; the packages
below (sanctions, serving) take an engine on a migrated database and never migrate themselves.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, MetaData, text
from sqlalchemy import exc as sa_exc

from core.db import is_sqlite, make_engine, metadata, writing
from core.errors import DajiaError

_MIGRATED: set[str] = set()
_LOCK = threading.Lock()
#: advisory lock id serialising concurrent migrations on PostgreSQL
MIGRATION_LOCK_ID = 7_245_001


def service_metadata() -> MetaData:
    """The one metadata with every table of the service declared on it: importing each owner declares its
    tables (the workflow's, the serving tables, the console's)."""
    import sanctions.models  # noqa: F401
    import serving.console.db
    import serving.db  # noqa: F401

    return metadata


def _alembic_config(connection: Any) -> Any:
    from alembic.config import Config

    here = Path(__file__).resolve().parent
    cfg = Config(str(here / "alembic.ini"))
    cfg.set_main_option("script_location", str(here / "migrations"))
    cfg.attributes["connection"] = connection
    return cfg


def migrate(url_or_engine: str | Engine, revision: str = "head") -> None:
    """Bring the database at ``url_or_engine`` to ``revision`` (Alembic, shipped in the package).
    Idempotent; concurrent starts are serialised on PostgreSQL by an advisory lock."""
    from alembic import command

    engine = make_engine(url_or_engine) if isinstance(url_or_engine, str) else url_or_engine
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
    engine = make_engine(url, **kwargs)
    with _LOCK:
        if url not in _MIGRATED:
            migrate(engine)
            adopt_keys(engine)
            _MIGRATED.add(url)
    return engine


def adopt_keys(engine: Engine) -> list[str]:
    """Give every API key made before keys belonged to people a person of its own (issue 18's migration
    path, ``sanctions.people.adopt_keys``: audited, so it runs here rather than in the DDL revision)."""
    from sqlalchemy.orm import Session

    from sanctions.people import adopt_keys as adopt

    with Session(engine, expire_on_commit=False) as session:
        return adopt(session).key_ids


def database_problem(exc: sa_exc.DBAPIError) -> str:
    """One line saying what the database refused: the driver's first line only. Never the statement's
    parameters (shopkeepers' personal data; the engine hides them too) nor PostgreSQL's DETAIL line,
    which can quote a row's values."""
    orig = getattr(exc, "orig", None) or exc
    first = (str(orig).strip().splitlines() or [type(orig).__name__])[0]
    return f"the database refused the operation: {first[:300]} ({type(exc).__name__})"


def check_writable(engine: Engine) -> None:
    """A ``DajiaError`` (one line) unless the database takes a write: a read-only file or transaction,
    a missing permission. The probe updates no row."""
    try:
        with writing(engine).begin() as conn:
            conn.execute(text("UPDATE console_settings SET value = value WHERE name = '-'"))
    except sa_exc.DBAPIError as exc:
        raise DajiaError(database_problem(exc)) from None
