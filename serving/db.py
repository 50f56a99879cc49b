"""The serving tables (API keys, prediction log) in the service's database.

The service's database is one schema with one migration history: these tables are declared on the
one metadata (``core.db.metadata``, its naming convention included) and created and evolved by the
application's Alembic migrations in ``dajia/migrations`` (revision ``0002``), like the workflow
tables; a database whose serving tables were made by the ``create_all`` of earlier versions
upgrades in place (the migration creates only what is missing).
"""

from __future__ import annotations

from typing import cast

import sqlalchemy as sa

from core.db import metadata
from sanctions.models import ApiKeyRow

#: the API keys, declared beside the people they are issued to (``sanctions.models.ApiKeyRow``) so the
#: audit chain covers them
api_keys = cast(sa.Table, ApiKeyRow.__table__)

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
    #: retention (``serving.retention``) finds the old rows by time (migration 0003_sessions)
    sa.Index("ix_serving_predictions_logged_at", "logged_at"),
)
