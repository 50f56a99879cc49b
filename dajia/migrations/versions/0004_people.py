"""Issue 18, people not keys: every API key belongs to a person (``serving_api_keys.person_id``), and every
case event and audit entry names the credential the person acted with (``via``: ``key:<id>``,
``console:<key id>``, ``cli:<os user>``).

Keys made before this revision have no person; ``sanctions.people.adopt_keys`` (run by
``dajia.db.open_store`` after migrating) makes each of them a person of its own, the key's existing actor
id ``api-key:<key id>`` named by the key's name, through the audited workflow (DDL here, data there: the
audit chain must record the adoption).

Revision ID: 0004_people
Revises: 0004_seller
Create Date: 2026-12-08 00:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_people"
down_revision: str | None = "0004_seller"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("serving_api_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("person_id", sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f("ix_serving_api_keys_person_id"), ["person_id"], unique=False)
    with op.batch_alter_table("case_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("via", sa.String(length=96), nullable=True))
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.add_column(sa.Column("via", sa.String(length=96), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_column("via")
    with op.batch_alter_table("case_events", schema=None) as batch_op:
        batch_op.drop_column("via")
    with op.batch_alter_table("serving_api_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_serving_api_keys_person_id"))
        batch_op.drop_column("person_id")
