"""Alembic environment: migrations run on the connection sanctions.store.migrate hands over."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from sanctions.models import Base
from serving import db as serving_tables
from serving.console import db as console_tables

config = context.config
#: every table of the service's database: the workflow's, the serving tables (API keys, prediction log)
#: and the console's, all declared on the one metadata (importing their modules declares them)
target_metadata = Base.metadata
if serving_tables.metadata is not target_metadata or console_tables.metadata is not target_metadata:
    raise RuntimeError("the serving and console tables must be declared on sanctions.models.Base.metadata")


def _run(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # type: ignore[attr-defined]
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("give the database with -x url=...")
    engine = create_engine(url)
    with engine.begin() as conn:
        _run(conn)
    engine.dispose()
