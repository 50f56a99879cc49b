"""The monitor's drift history (``console_drift_history``): one row per sweep with its drift against the
model's training population, appended by every sweep and read by the monitor's trend plots.

Revision ID: 0004_voice
Revises: 0004_queue_index
Create Date: 2026-12-08 00:50:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_voice"
down_revision: str | None = "0004_queue_index"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "console_drift_history",
        sa.Column("drift_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("model_name", sa.String(length=200), nullable=False),
        sa.Column("model_version", sa.String(length=64), nullable=False),
        sa.Column("as_of", sa.DateTime(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("shops", sa.Integer(), nullable=False),
        sa.Column("sample_now", sa.Integer(), nullable=False),
        sa.Column("sample_ref", sa.Integer(), nullable=False),
        sa.Column("reference_as_of", sa.DateTime(), nullable=False),
        sa.Column("score_psi", sa.Float(), nullable=False),
        sa.Column("score_band", sa.String(length=32), nullable=False),
        sa.Column("small_sample", sa.Boolean(), nullable=False),
        sa.Column("feature_psi", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("drift_id", name="pk_console_drift_history"),
        sa.UniqueConstraint(
            "model_name", "model_version", "as_of", name="uq_console_drift_history_model_name_model_version_as_of"
        ),
    )


def downgrade() -> None:
    op.drop_table("console_drift_history")
