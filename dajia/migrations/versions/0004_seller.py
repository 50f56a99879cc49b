"""Issue 17: the seller's side and reopening on a new verdict. Files sellers attach to appeals
(``appeal_files``: content hash, size, type, bytes) and the marketplace's verdicts copied into the store
(``market_verdicts``) so routing can tell a verdict dated after a decision.

Revision ID: 0004_seller
Revises: 0004_voice (the lead re-chains revisions at merge)
Create Date: 2026-12-08 00:45:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_seller"
down_revision: str | None = "0004_voice"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "market_verdicts",
        sa.Column("verdict_id", sa.String(length=64), nullable=False),
        sa.Column("shop_id", sa.String(length=64), nullable=False),
        sa.Column("decided_at", sa.DateTime(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("evidence_kind", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("verdict_id", name=op.f("pk_market_verdicts")),
    )
    with op.batch_alter_table("market_verdicts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_market_verdicts_shop_id"), ["shop_id"], unique=False)
    op.create_table(
        "appeal_files",
        sa.Column("file_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("actor_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("filename", sa.String(length=200), nullable=False),
        sa.Column("content_type", sa.String(length=100), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["cases.case_id"], name=op.f("fk_appeal_files_case_id_cases")),
        sa.PrimaryKeyConstraint("file_id", name=op.f("pk_appeal_files")),
    )
    with op.batch_alter_table("appeal_files", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_appeal_files_case_id"), ["case_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("appeal_files", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_appeal_files_case_id"))
    op.drop_table("appeal_files")
    with op.batch_alter_table("market_verdicts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_market_verdicts_shop_id"))
    op.drop_table("market_verdicts")
