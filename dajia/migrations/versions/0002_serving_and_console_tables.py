"""The service's own tables: API keys and the prediction log (``serving.db``), the console's settings and
findings (``serving.console.db``).

Earlier versions created these four with ``create_all`` when the service, ``dajia keys`` or the console
first ran, so a database may already hold some of them (with the same columns). This revision creates
only the tables and indexes that are missing: such a database upgrades in place, its rows kept.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 15:44:39.175283
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _tables() -> list[sa.Table]:
    """The four tables as this revision creates them (kept here: a migration must not follow later
    edits of the models)."""
    meta = sa.MetaData()
    return [
        sa.Table(
            "serving_api_keys",
            meta,
            sa.Column("key_id", sa.String(length=32), nullable=False),
            sa.Column("name", sa.String(length=200), nullable=False),
            sa.Column("role", sa.String(length=16), nullable=False),
            sa.Column("secret_sha256", sa.String(length=64), nullable=False),
            sa.Column("created_at", sa.DateTime(), nullable=False),
            sa.Column("revoked_at", sa.DateTime(), nullable=True),
            sa.PrimaryKeyConstraint("key_id", name="pk_serving_api_keys"),
            sa.UniqueConstraint("secret_sha256", name="uq_serving_api_keys_secret_sha256"),
        ),
        sa.Table(
            "serving_predictions",
            meta,
            sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
            sa.Column("logged_at", sa.DateTime(), nullable=False),
            sa.Column("request_id", sa.String(length=64), nullable=False),
            sa.Column("key_id", sa.String(length=32), nullable=True),
            sa.Column("shop_id", sa.String(length=64), nullable=False),
            sa.Column("model_name", sa.String(length=200), nullable=False),
            sa.Column("model_version", sa.String(length=32), nullable=False),
            sa.Column("feature_digest", sa.String(length=64), nullable=False),
            sa.Column("score", sa.Float(), nullable=False),
            sa.Column("tier", sa.String(length=16), nullable=False),
            sa.Column("reasons", sa.JSON(), nullable=False),
            sa.Column("shadow", sa.Boolean(), nullable=False),
            sa.PrimaryKeyConstraint("id", name="pk_serving_predictions"),
            sa.Index("ix_serving_predictions_shop", "shop_id", "id"),
        ),
        sa.Table(
            "console_settings",
            meta,
            sa.Column("name", sa.String(length=64), nullable=False),
            sa.Column("value", sa.String(length=200), nullable=False),
            sa.PrimaryKeyConstraint("name", name="pk_console_settings"),
        ),
        sa.Table(
            "console_findings",
            meta,
            sa.Column("finding_id", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("shop_id", sa.String(length=64), nullable=False),
            sa.Column("verdict", sa.String(length=16), nullable=False),
            sa.Column("note", sa.Text(), nullable=False),
            sa.Column("actor_id", sa.String(length=64), nullable=False),
            sa.Column("created_at", sa.DateTime(), nullable=False),
            sa.Column("score", sa.Float(), nullable=True),
            sa.Column("tier", sa.String(length=16), nullable=True),
            sa.Column("model_version", sa.String(length=64), nullable=True),
            sa.PrimaryKeyConstraint("finding_id", name="pk_console_findings"),
            sa.Index("ix_console_findings_shop", "shop_id"),
            sa.Index("ix_console_findings_created", "created_at"),
        ),
    ]


def upgrade() -> None:
    bind = op.get_bind()
    inspector = sa.inspect(bind)
    for table in _tables():
        if not inspector.has_table(table.name):
            table.create(bind)  # with its indexes
            continue
        present = {ix["name"] for ix in inspector.get_indexes(table.name)}
        for index in table.indexes:
            if index.name not in present:
                index.create(bind)


def downgrade() -> None:
    bind = op.get_bind()
    for table in reversed(_tables()):
        table.drop(bind, checkfirst=True)
