"""Issue 17: the storefront feed (one row per visibility change of a shop) and the workflow's signing
secrets (the consumers' claim links), the cases a disclosure policy's legal basis is for, and the outbox's retry
bookkeeping (next attempt, last error; status ``dead`` after the last attempt), and the public
corrections of reversed measures.

Revision ID: 0003_effects
Revises: 0002
Create Date: 2026-12-07 18:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_effects"
down_revision: str | None = "0003_governance"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "storefront_changes",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("shop_id", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_storefront_changes")),
    )
    with op.batch_alter_table("storefront_changes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_storefront_changes_shop_id"), ["shop_id"], unique=False)
    op.create_table(
        "workflow_secrets",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_workflow_secrets")),
    )
    with op.batch_alter_table("disclosure_policies", schema=None) as batch_op:
        batch_op.add_column(sa.Column("case_ids", sa.JSON(), nullable=True))
    op.create_table(
        "public_corrections",
        sa.Column("correction_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("shop_id", sa.String(length=64), nullable=False),
        sa.Column("shop_name", sa.String(length=200), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("campaign_ids", sa.JSON(), nullable=False),
        sa.Column("published_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("correction_id", name=op.f("pk_public_corrections")),
    )
    with op.batch_alter_table("public_corrections", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_public_corrections_case_id"), ["case_id"], unique=True)
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("next_attempt_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("last_error", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_table("public_corrections")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("last_error")
        batch_op.drop_column("next_attempt_at")
    with op.batch_alter_table("disclosure_policies", schema=None) as batch_op:
        batch_op.drop_column("case_ids")
    op.drop_table("workflow_secrets")
    with op.batch_alter_table("storefront_changes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_storefront_changes_shop_id"))
    op.drop_table("storefront_changes")
