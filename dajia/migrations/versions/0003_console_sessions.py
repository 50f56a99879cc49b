"""Server-side console sessions (``console_sessions``): signing out, revoking a key or changing its role
ends its sessions at once (a copied cookie no longer works). Also an index on the prediction log's
``logged_at``, by which its retention (``dajia predictions prune``) finds the old rows.

Revision ID: 0003_sessions
Revises: 0002
Create Date: 2026-12-07 17:50:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_sessions"
down_revision: str | None = "0003_console_team"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "console_sessions",
        sa.Column("session_id", sa.String(length=64), nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("csrf", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("session_id", name="pk_console_sessions"),
    )
    op.create_index("ix_console_sessions_key", "console_sessions", ["key_id"])
    op.create_index("ix_console_sessions_expires", "console_sessions", ["expires_at"])
    # a database whose serving tables came from create_all (see 0002) may hold it already
    existing = {ix["name"] for ix in sa.inspect(op.get_bind()).get_indexes("serving_predictions")}
    if "ix_serving_predictions_logged_at" not in existing:
        op.create_index("ix_serving_predictions_logged_at", "serving_predictions", ["logged_at"])


def downgrade() -> None:
    op.drop_index("ix_serving_predictions_logged_at", table_name="serving_predictions")
    op.drop_index("ix_console_sessions_expires", table_name="console_sessions")
    op.drop_index("ix_console_sessions_key", table_name="console_sessions")
    op.drop_table("console_sessions")
