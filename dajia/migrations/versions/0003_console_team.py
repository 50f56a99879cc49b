"""The console's team tables (issue 21): claims, notes, attachments, tags, snoozes (``serving.console.db``).

Revision ID: 0003_console_team
Revises: 0002
Create Date: 2026-12-07 18:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_console_team"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _tables() -> list[sa.Table]:
    """The five tables as this revision creates them (kept here: a migration must not follow later
    edits of the models)."""
    meta = sa.MetaData()
    return [
        sa.Table(
            "console_claims",
            meta,
            sa.Column("case_id", sa.Integer(), autoincrement=False, nullable=False),
            sa.Column("actor_id", sa.String(length=64), nullable=False),
            sa.Column("claimed_at", sa.DateTime(), nullable=False),
            sa.Column("expires_at", sa.DateTime(), nullable=False),
            sa.Column("assigned_by", sa.String(length=64), nullable=True),
            sa.PrimaryKeyConstraint("case_id", name="pk_console_claims"),
            sa.Index("ix_console_claims_actor", "actor_id", "expires_at"),
        ),
        sa.Table(
            "console_notes",
            meta,
            sa.Column("note_id", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("case_id", sa.Integer(), nullable=False),
            sa.Column("actor_id", sa.String(length=64), nullable=False),
            sa.Column("created_at", sa.DateTime(), nullable=False),
            sa.Column("body", sa.Text(), nullable=False),
            sa.PrimaryKeyConstraint("note_id", name="pk_console_notes"),
            sa.Index("ix_console_notes_case", "case_id", "note_id"),
        ),
        sa.Table(
            "console_attachments",
            meta,
            sa.Column("attachment_id", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("case_id", sa.Integer(), nullable=False),
            sa.Column("actor_id", sa.String(length=64), nullable=False),
            sa.Column("created_at", sa.DateTime(), nullable=False),
            sa.Column("filename", sa.String(length=200), nullable=False),
            sa.Column("content_type", sa.String(length=100), nullable=False),
            sa.Column("size", sa.Integer(), nullable=False),
            sa.Column("sha256", sa.String(length=64), nullable=False),
            sa.Column("data", sa.LargeBinary(), nullable=False),
            sa.PrimaryKeyConstraint("attachment_id", name="pk_console_attachments"),
            sa.Index("ix_console_attachments_case", "case_id", "attachment_id"),
        ),
        sa.Table(
            "console_tags",
            meta,
            sa.Column("case_id", sa.Integer(), autoincrement=False, nullable=False),
            sa.Column("tag", sa.String(length=40), nullable=False),
            sa.Column("actor_id", sa.String(length=64), nullable=False),
            sa.Column("created_at", sa.DateTime(), nullable=False),
            sa.PrimaryKeyConstraint("case_id", "tag", name="pk_console_tags"),
            sa.Index("ix_console_tags_tag", "tag"),
        ),
        sa.Table(
            "console_snoozes",
            meta,
            sa.Column("case_id", sa.Integer(), autoincrement=False, nullable=False),
            sa.Column("until", sa.DateTime(), nullable=False),
            sa.Column("actor_id", sa.String(length=64), nullable=False),
            sa.Column("created_at", sa.DateTime(), nullable=False),
            sa.PrimaryKeyConstraint("case_id", name="pk_console_snoozes"),
        ),
    ]


def upgrade() -> None:
    bind = op.get_bind()
    for table in _tables():
        table.create(bind, checkfirst=True)  # with its indexes


def downgrade() -> None:
    bind = op.get_bind()
    for table in reversed(_tables()):
        table.drop(bind, checkfirst=True)
