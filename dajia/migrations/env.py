"""Alembic environment: migrations run on the connection ``dajia.db.migrate`` hands over.

The application knows every table of the service's database, so its migrations live here: importing
the owners' modules declares their tables on the one metadata (``core.db.metadata``).
"""

from __future__ import annotations

from alembic import context

import sanctions.models  # noqa: F401  (the workflow's tables)
import serving.console.db
import serving.db  # noqa: F401  (API keys, prediction log)
from core.db import make_engine, metadata

config = context.config
target_metadata = metadata


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
    engine = make_engine(url)
    with engine.begin() as conn:
        _run(conn)
    engine.dispose()
