"""Governance (issue 18): four eyes on disclosures and disclosure policies; audit entries bound to rows.

Disclosure entries are drafted by one admin (``drafted_by``, ``drafted_at``, status ``proposed``)
and published by a second (``approved_by``, ``published_at``, now empty until then); a disclosure
policy that names personal fields waits for a second admin (``status``, ``approved_by``,
``approved_at``). Existing rows: an entry's drafter is its approver (it was published in one step
before), existing policies are ``approved``. ``audit_log.rows`` holds the digests of the rows each
entry wrote (empty for older entries, whose hash stays as it was); ``audit_keys`` the key that signs
the chain's checkpoints; ``people`` (named reviewers and admins, ``actors.person_id``);
``evidence_snapshots`` the evidence frozen when each case opened.

Revision ID: 0003_governance
Revises: 0002
Create Date: 2026-12-07 18:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_governance"
down_revision: str | None = "0003_sessions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("disclosure_policies", schema=None) as batch_op:
        batch_op.add_column(sa.Column("status", sa.String(length=16), server_default="approved", nullable=False))
        batch_op.add_column(sa.Column("approved_by", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("approved_at", sa.DateTime(), nullable=True))
    with op.batch_alter_table("disclosures", schema=None) as batch_op:
        batch_op.add_column(sa.Column("drafted_by", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("drafted_at", sa.DateTime(), nullable=True))
        batch_op.alter_column("approved_by", existing_type=sa.String(length=64), nullable=True)
        batch_op.alter_column("published_at", existing_type=sa.DateTime(), nullable=True)
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.add_column(sa.Column("rows", sa.Text(), nullable=True))
    op.create_table(
        "people",
        sa.Column("person_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("person_id", name=op.f("pk_people")),
    )
    with op.batch_alter_table("actors", schema=None) as batch_op:
        batch_op.add_column(sa.Column("person_id", sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f("ix_actors_person_id"), ["person_id"], unique=False)
    op.create_table(
        "evidence_snapshots",
        sa.Column("case_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("taken_at", sa.DateTime(), nullable=False),
        sa.Column("content", sa.JSON(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["cases.case_id"], name=op.f("fk_evidence_snapshots_case_id_cases")),
        sa.PrimaryKeyConstraint("case_id", name=op.f("pk_evidence_snapshots")),
    )
    op.create_table(
        "audit_keys",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("private_key", sa.String(length=64), nullable=False),
        sa.Column("public_key", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_keys")),
    )
    op.execute("UPDATE disclosures SET drafted_by = approved_by, drafted_at = published_at WHERE drafted_by IS NULL")


def downgrade() -> None:
    op.drop_table("audit_keys")
    op.drop_table("evidence_snapshots")
    with op.batch_alter_table("actors", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_actors_person_id"))
        batch_op.drop_column("person_id")
    op.drop_table("people")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_column("rows")
    with op.batch_alter_table("disclosures", schema=None) as batch_op:
        batch_op.drop_column("drafted_at")
        batch_op.drop_column("drafted_by")
    with op.batch_alter_table("disclosure_policies", schema=None) as batch_op:
        batch_op.drop_column("approved_at")
        batch_op.drop_column("approved_by")
        batch_op.drop_column("status")
