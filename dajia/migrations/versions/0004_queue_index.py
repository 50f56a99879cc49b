"""The review queue's index: cases by (status, score descending, case id), so the queue page and "next
case" read each status's cases riskiest first and stop at the page instead of sorting every waiting
case (``serving.console.queue.ids_in_queue_order``).

Revision ID: 0004_queue_index
Revises: 0003_effects
Create Date: 2026-12-08 01:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_queue_index"
down_revision: str | None = "0003_effects"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_cases_queue", "cases", ["status", sa.text("score DESC"), "case_id"])


def downgrade() -> None:
    op.drop_index("ix_cases_queue", table_name="cases")
