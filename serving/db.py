"""The serving tables (API keys, prediction log) in the service's database.

The service's database is one schema with one migration history: these tables are declared on the
sanction store's metadata (``sanctions.models.Base.metadata``, its naming convention included) and
created and evolved by the Alembic migrations in ``sanctions/migrations`` (revision ``0002``), like
the workflow tables. ``ensure_schema`` brings a database to the head revision; a database whose
serving tables were made by the ``create_all`` of earlier versions upgrades in place (the migration
creates only what is missing).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sanctions.models import Base

metadata = Base.metadata

api_keys = sa.Table(
    "serving_api_keys",
    metadata,
    sa.Column("key_id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    #: sha256 hex of the secret; the secret itself is never stored
    sa.Column("secret_sha256", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", sa.DateTime(), nullable=False),
    sa.Column("revoked_at", sa.DateTime(), nullable=True),
)

predictions = sa.Table(
    "serving_predictions",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("logged_at", sa.DateTime(), nullable=False),
    sa.Column("request_id", sa.String(64), nullable=False),
    sa.Column("key_id", sa.String(32), nullable=True),
    sa.Column("shop_id", sa.String(64), nullable=False),
    sa.Column("model_name", sa.String(200), nullable=False),
    sa.Column("model_version", sa.String(32), nullable=False),
    sa.Column("feature_digest", sa.String(64), nullable=False),
    sa.Column("score", sa.Float(), nullable=False),
    sa.Column("tier", sa.String(16), nullable=False),
    sa.Column("reasons", sa.JSON(), nullable=False),
    #: a challenger's score, logged for comparison and never returned to the caller
    sa.Column("shadow", sa.Boolean(), nullable=False, default=False),
    sa.Index("ix_serving_predictions_shop", "shop_id", "id"),
)


#: bytes a started-over SQLite log file is cut back to (``PRAGMA journal_size_limit``)
JOURNAL_SIZE_LIMIT = 64 * 1024 * 1024


def make_engine(url: str, sqlite_synchronous: str = "FULL", *, checkpoint_in_background: bool = False) -> Engine:
    """An engine for the service's database.

    SQLite runs in WAL mode. ``sqlite_synchronous``: ``NORMAL`` makes a commit survive the process being
    killed (the WAL write is in the OS before the commit returns) but not a power cut; ``FULL`` also
    fsyncs the WAL on every commit (survives a power cut; costs one fsync per group commit).
    ``checkpoint_in_background``: the engine's connections never checkpoint the WAL inside a commit
    (``wal_autocheckpoint=0``); run a ``serving.wal.WalCheckpointer`` beside it, or the log grows.
    PostgreSQL commits are durable by its own settings.
    """
    if sqlite_synchronous not in ("NORMAL", "FULL"):
        raise ValueError(f"sqlite_synchronous must be NORMAL or FULL, got {sqlite_synchronous!r}")
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: object, _record: object) -> None:
            cur = dbapi_conn.cursor()  # type: ignore[attr-defined]
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA synchronous={sqlite_synchronous}")
            cur.execute("PRAGMA busy_timeout=30000")
            if checkpoint_in_background:
                cur.execute("PRAGMA wal_autocheckpoint=0")
                # after a burst, a log started over is cut back to this size rather than kept at its largest
                cur.execute(f"PRAGMA journal_size_limit={JOURNAL_SIZE_LIMIT}")
            cur.close()

        return engine
    return sa.create_engine(url, pool_pre_ping=True)


def ensure_schema(engine: Engine) -> None:
    """Migrate the database behind ``engine`` to the head revision: every table of the service (the
    sanction workflow's, these, the console's). Idempotent; concurrent starts are serialised on
    PostgreSQL by the migration's advisory lock."""
    from sanctions.store import migrate

    migrate(engine.url.render_as_string(hide_password=False))
