"""The console's own tables, beside the serving tables in the service's database.

* ``console_settings`` — the session-signing secret (created once, shared by every worker and kept
  across restarts, so signing in survives a restart and never depends on an environment variable);
* ``console_sessions`` — who is signed in: one row per console session (the sha256 of the cookie's
  random token, never the token), deleted at sign-out, so a copied cookie dies with it;
* ``console_findings`` — what reviewers found when they checked a shop of the audit sample (shops the
  model did not flag). Exported as verdict rows for training by :func:`serving.console.sample.export_verdicts`.

Declared on the service database's one metadata and created by its Alembic migrations, like the
serving tables (see ``serving.db``); the database is migrated before the console starts.
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from core.db import metadata, writing

console_settings = sa.Table(
    "console_settings",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(200), nullable=False),
)

findings = sa.Table(
    "console_findings",
    metadata,
    sa.Column("finding_id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("shop_id", sa.String(64), nullable=False),
    #: counterfeit | genuine | unsure
    sa.Column("verdict", sa.String(16), nullable=False),
    sa.Column("note", sa.Text(), nullable=False, default=""),
    sa.Column("actor_id", sa.String(64), nullable=False),
    sa.Column("created_at", sa.DateTime(), nullable=False),
    #: the model's latest view of the shop when it was sampled (None if never scored)
    sa.Column("score", sa.Float(), nullable=True),
    sa.Column("tier", sa.String(16), nullable=True),
    sa.Column("model_version", sa.String(64), nullable=True),
    sa.Index("ix_console_findings_shop", "shop_id"),
    sa.Index("ix_console_findings_created", "created_at"),
)

VERDICTS = ("counterfeit", "genuine", "unsure")

sessions = sa.Table(
    "console_sessions",
    metadata,
    #: sha256 (hex) of the random token the session cookie carries
    sa.Column("session_id", sa.String(64), primary_key=True),
    sa.Column("key_id", sa.String(32), nullable=False),
    #: the key's role at sign-in: a key whose role changed since no longer matches, so its sessions end
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("csrf", sa.String(64), nullable=False),
    sa.Column("created_at", sa.DateTime(), nullable=False),
    sa.Column("expires_at", sa.DateTime(), nullable=False),
    sa.Index("ix_console_sessions_key", "key_id"),
    sa.Index("ix_console_sessions_expires", "expires_at"),
)


def session_secret(engine: Engine) -> str:
    """The secret that signs console cookies: read, or created once (a racing second writer loses)."""
    with engine.begin() as conn:
        row = conn.execute(
            sa.select(console_settings.c.value).where(console_settings.c.name == "session_secret")
        ).first()
        if row is not None:
            return str(row[0])
    try:
        with writing(engine).begin() as conn:
            conn.execute(console_settings.insert().values(name="session_secret", value=secrets.token_urlsafe(48)))
    except sa.exc.IntegrityError:
        pass
    with engine.connect() as conn:
        return str(
            conn.execute(
                sa.select(console_settings.c.value).where(console_settings.c.name == "session_secret")
            ).scalar_one()
        )


# --------------------------------------------------------------------------- the team's tables (issue 21)

#: who works a case now: one row per case (the primary key makes a second holder impossible); a claim
#: lapses at ``expires_at`` and may then be taken by someone else
claims = sa.Table(
    "console_claims",
    metadata,
    sa.Column("case_id", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("actor_id", sa.String(64), nullable=False),
    sa.Column("claimed_at", sa.DateTime(), nullable=False),
    sa.Column("expires_at", sa.DateTime(), nullable=False),
    #: the admin who assigned it, None when the holder claimed it
    sa.Column("assigned_by", sa.String(64), nullable=True),
    sa.Index("ix_console_claims_actor", "actor_id", "expires_at"),
)

#: append-only notes on a case (also in the audit chain as ``case.note``)
notes = sa.Table(
    "console_notes",
    metadata,
    sa.Column("note_id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("case_id", sa.Integer(), nullable=False),
    sa.Column("actor_id", sa.String(64), nullable=False),
    sa.Column("created_at", sa.DateTime(), nullable=False),
    sa.Column("body", sa.Text(), nullable=False),
    sa.Index("ix_console_notes_case", "case_id", "note_id"),
)

#: files attached to a case, kept in the database with their sha256 (``case.attachment`` in the chain)
attachments = sa.Table(
    "console_attachments",
    metadata,
    sa.Column("attachment_id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("case_id", sa.Integer(), nullable=False),
    sa.Column("actor_id", sa.String(64), nullable=False),
    sa.Column("created_at", sa.DateTime(), nullable=False),
    sa.Column("filename", sa.String(200), nullable=False),
    sa.Column("content_type", sa.String(100), nullable=False),
    sa.Column("size", sa.Integer(), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("data", sa.LargeBinary(), nullable=False),
    sa.Index("ix_console_attachments_case", "case_id", "attachment_id"),
)

#: a case's tags (a tag is on a case or not: the pair is the key)
tags = sa.Table(
    "console_tags",
    metadata,
    sa.Column("case_id", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("tag", sa.String(40), primary_key=True),
    sa.Column("actor_id", sa.String(64), nullable=False),
    sa.Column("created_at", sa.DateTime(), nullable=False),
    sa.Index("ix_console_tags_tag", "tag"),
)

#: a case put aside until a date: out of the waiting queue and "next case" until then
snoozes = sa.Table(
    "console_snoozes",
    metadata,
    sa.Column("case_id", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("until", sa.DateTime(), nullable=False),
    sa.Column("actor_id", sa.String(64), nullable=False),
    sa.Column("created_at", sa.DateTime(), nullable=False),
)

TEAM_TABLES = (claims, notes, attachments, tags, snoozes)

# --------------------------------------------------------------------------- the monitor's drift history (issue 20)

#: one row per sweep: its drift against the model's training population (score PSI, per-feature PSI,
#: sample sizes), appended by every sweep (``dajia sweep``, on a cluster too, and the crackdown's). A
#: sweep is identified by model and as-of: re-running it at the same as-of keeps the first row.
drift_history = sa.Table(
    "console_drift_history",
    metadata,
    sa.Column("drift_id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("model_name", sa.String(200), nullable=False),
    sa.Column("model_version", sa.String(64), nullable=False),
    sa.Column("as_of", sa.DateTime(), nullable=False),
    sa.Column("recorded_at", sa.DateTime(), nullable=False),
    #: local | cluster (how the sweep ran)
    sa.Column("mode", sa.String(16), nullable=False),
    #: shops scored by the sweep, and the sample the drift was measured on (now and reference)
    sa.Column("shops", sa.Integer(), nullable=False),
    sa.Column("sample_now", sa.Integer(), nullable=False),
    sa.Column("sample_ref", sa.Integer(), nullable=False),
    sa.Column("reference_as_of", sa.DateTime(), nullable=False),
    sa.Column("score_psi", sa.Float(), nullable=False),
    sa.Column("score_band", sa.String(32), nullable=False),
    sa.Column("small_sample", sa.Boolean(), nullable=False),
    #: {feature: psi}
    sa.Column("feature_psi", sa.JSON(), nullable=False),
    sa.UniqueConstraint(
        "model_name", "model_version", "as_of", name="uq_console_drift_history_model_name_model_version_as_of"
    ),
)
