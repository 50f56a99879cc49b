"""The sanction store's tables (SQLAlchemy ORM).

Three groups: the storefront projection the workflow acts on (shops, listings, orders), the
workflow itself (actors, cases, case events, claims, campaigns, disclosures) and what makes it
trustworthy (the hash-chained audit log, the outbox, idempotency keys). The schema is created
and evolved only by the Alembic migrations in ``dajia/migrations``; a test proves the
migrations and these classes agree.

Times are naive UTC. Money is stored in fen (1/100 yuan) as integers so sums are exact.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base
from sanctions.workflow import OPEN_STATUSES

_OPEN_SQL = "status IN (" + ", ".join(f"'{s}'" for s in sorted(OPEN_STATUSES)) + ")"


# --------------------------------------------------------------------------- storefront


class Shop(Base):
    """A shop as the workflow sees it: identity, contacts, linkage identifiers and its status."""

    __tablename__ = "shops"

    shop_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    shopkeeper_id: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(200))
    category: Mapped[str] = mapped_column(String(32))
    opened_at: Mapped[datetime] = mapped_column(DateTime)
    #: active | banned | closed
    status: Mapped[str] = mapped_column(String(16), default="active", server_default="active")
    business_registration: Mapped[str] = mapped_column(String(64))
    business_phone: Mapped[str] = mapped_column(String(64))
    business_email: Mapped[str] = mapped_column(String(200))
    owner_phone: Mapped[str] = mapped_column(String(64), index=True)
    owner_email: Mapped[str] = mapped_column(String(200), index=True)
    owner_address: Mapped[str] = mapped_column(String(200), index=True)
    id_number_hash: Mapped[str] = mapped_column(String(64), index=True)
    bank_account_hash: Mapped[str] = mapped_column(String(64), index=True)
    device_id: Mapped[str] = mapped_column(String(64), index=True)
    status_changed_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class Listing(Base):
    """A listing; ``frozen`` while a case is open, ``withdrawn`` once the shop is closed."""

    __tablename__ = "listings"

    listing_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    shop_id: Mapped[str] = mapped_column(ForeignKey("shops.shop_id"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    title: Mapped[str] = mapped_column(String(500))
    brand: Mapped[str | None] = mapped_column(String(200), nullable=True)
    category: Mapped[str] = mapped_column(String(32))
    price: Mapped[float] = mapped_column(Float)
    delisted_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    frozen: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    withdrawn: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))


class Order(Base):
    __tablename__ = "orders"

    order_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    shop_id: Mapped[str] = mapped_column(ForeignKey("shops.shop_id"), index=True)
    listing_id: Mapped[str] = mapped_column(ForeignKey("listings.listing_id"), index=True)
    buyer_id: Mapped[str] = mapped_column(String(64))
    ordered_at: Mapped[datetime] = mapped_column(DateTime)
    amount: Mapped[float] = mapped_column(Float)
    refunded_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


# --------------------------------------------------------------------------- workflow


class ActorRow(Base):
    """Everyone who acts on a case; ``simulated`` marks the demo's stand-in humans."""

    __tablename__ = "actors"

    actor_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    simulated: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    #: the person acting under this id (one person may hold a reviewer and an admin id); None: unknown
    person_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)


class Person(Base):
    """A reviewer or admin with a name; their actor ids point here (``actors.person_id``)."""

    __tablename__ = "people"

    person_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    created_by: Mapped[str] = mapped_column(String(64))


class ApiKeyRow(Base):
    """An API key of the HTTP service, issued to a person (``sanctions.people.issue_key``): only the sha256
    of its secret is stored. Declared here, beside the people it belongs to, so the audit chain covers it;
    ``serving.auth`` reads and checks it."""

    __tablename__ = "serving_api_keys"

    key_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    #: sha256 hex of the secret; the secret itself is never stored
    secret_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    #: the person the key was issued to (None only for keys made before issue 18, until adopted)
    person_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)


class Case(Base):
    """One investigation of one shop. At most one open case per shop (partial unique index)."""

    __tablename__ = "cases"
    __table_args__ = (
        Index(
            "uq_cases_one_open_per_shop",
            "shop_id",
            unique=True,
            sqlite_where=text(_OPEN_SQL),
            postgresql_where=text(_OPEN_SQL),
        ),
    )

    case_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    shop_id: Mapped[str] = mapped_column(ForeignKey("shops.shop_id"), index=True)
    status: Mapped[str] = mapped_column(String(24), index=True)
    #: optimistic lock: every ORM flush is UPDATE … WHERE version = <the version loaded>
    version: Mapped[int] = mapped_column(Integer, default=1)
    #: why it opened: score | ban_evasion
    origin: Mapped[str] = mapped_column(String(16))
    #: the measure in force or last taken: close | ban | None
    measure: Mapped[str | None] = mapped_column(String(16), nullable=True)
    score: Mapped[float | None] = mapped_column(Float, nullable=True)
    tier: Mapped[str | None] = mapped_column(String(16), nullable=True)
    threshold: Mapped[float | None] = mapped_column(Float, nullable=True)
    model_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    model_version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    reasons: Mapped[list[str]] = mapped_column(JSON, default=list)
    evidence: Mapped[list[dict[str, object]]] = mapped_column(JSON, default=list)
    #: identifies the scoring that last touched the case; a rerun of the same scoring is a no-op
    route_key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    opened_at: Mapped[datetime] = mapped_column(DateTime)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)

    #: the version is bumped by hand once per workflow change (``cases._transition``); every ORM
    #: flush still checks it: UPDATE … WHERE version = <the version loaded>
    __mapper_args__ = {"version_id_col": version, "version_id_generator": False}  # noqa: RUF012


#: the review queue's order within a status (``serving.console.queue.ids_in_queue_order``): the database
#: reads a status's cases riskiest first and stops at the page, instead of sorting every waiting case
Index("ix_cases_queue", Case.status, Case.score.desc(), Case.case_id)


class CaseEvent(Base):
    """Append-only history of a case: old and new value, who, why, and the score behind it."""

    __tablename__ = "case_events"

    event_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.case_id"), index=True)
    at: Mapped[datetime] = mapped_column(DateTime)
    actor_id: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    simulated: Mapped[bool] = mapped_column(Boolean, default=False)
    action: Mapped[str] = mapped_column(String(32))
    old_status: Mapped[str | None] = mapped_column(String(24), nullable=True)
    new_status: Mapped[str] = mapped_column(String(24))
    reason: Mapped[str] = mapped_column(Text, default="")
    score: Mapped[float | None] = mapped_column(Float, nullable=True)
    threshold: Mapped[float | None] = mapped_column(Float, nullable=True)
    model_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    model_version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    evidence: Mapped[list[dict[str, object]]] = mapped_column(JSON, default=list)
    #: the credential the actor used: ``key:<id>``, ``console:<key id>``, ``cli:<os user>`` (None: the system)
    via: Mapped[str | None] = mapped_column(String(96), nullable=True)


class EvidenceSnapshot(Base):
    """What a case's decision will rest on, copied once when the case opened (``sanctions.evidence``)."""

    __tablename__ = "evidence_snapshots"

    case_id: Mapped[int] = mapped_column(ForeignKey("cases.case_id"), primary_key=True, autoincrement=False)
    taken_at: Mapped[datetime] = mapped_column(DateTime)
    content: Mapped[dict[str, object]] = mapped_column(JSON)
    #: sha256 of the canonical JSON of ``content`` (also in the case's ``case.open`` audit entry)
    content_hash: Mapped[str] = mapped_column(String(64))


class Claim(Base):
    """What a banned shop owes one affected consumer; payment and confirmation recorded."""

    __tablename__ = "claims"
    __table_args__ = (UniqueConstraint("case_id", "buyer_id"),)

    claim_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.case_id"), index=True)
    shop_id: Mapped[str] = mapped_column(String(64), index=True)
    buyer_id: Mapped[str] = mapped_column(String(64), index=True)
    order_ids: Mapped[list[str]] = mapped_column(JSON)
    category: Mapped[str] = mapped_column(String(32))
    paid_total_fen: Mapped[int] = mapped_column(BigInteger)
    refund_fen: Mapped[int] = mapped_column(BigInteger)
    punitive_fen: Mapped[int] = mapped_column(BigInteger)
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    #: owed | paid | confirmed | void
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    deadline_at: Mapped[datetime] = mapped_column(DateTime)
    paid_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    payment_ref: Mapped[str | None] = mapped_column(String(200), nullable=True)
    confirmed_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    voided_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class Campaign(Base):
    """A crackdown campaign: its cases, the announcement and the warning to every seller."""

    __tablename__ = "campaigns"

    campaign_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    title: Mapped[str] = mapped_column(String(200))
    #: draft | approved | published
    status: Mapped[str] = mapped_column(String(16))
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    approved_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    approved_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    published_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    published_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    announcement: Mapped[dict[str, object] | None] = mapped_column(JSON, nullable=True)
    html: Mapped[str | None] = mapped_column(Text, nullable=True)


class CampaignCase(Base):
    __tablename__ = "campaign_cases"

    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.campaign_id"), primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.case_id"), primary_key=True)


class DisclosurePolicy(Base):
    """Which personal fields may be published, and the legal basis that allows it."""

    __tablename__ = "disclosure_policies"

    policy_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    personal_fields: Mapped[list[str]] = mapped_column(JSON)
    legal_basis: Mapped[str] = mapped_column(Text)
    #: the cases the legal basis is for: personal fields go out only in these cases' entries
    case_ids: Mapped[list[int] | None] = mapped_column(JSON, nullable=True)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    #: proposed (names personal fields, waits for a second admin) | approved
    status: Mapped[str] = mapped_column(String(16), default="approved", server_default="approved")
    approved_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    approved_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class Disclosure(Base):
    """One entry of the public list of closed shops, already masked by its policy."""

    __tablename__ = "disclosures"

    disclosure_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.case_id"), index=True, unique=True)
    shop_id: Mapped[str] = mapped_column(String(64), index=True)
    policy_id: Mapped[int | None] = mapped_column(ForeignKey("disclosure_policies.policy_id"), nullable=True)
    #: proposed | published | withdrawn
    status: Mapped[str] = mapped_column(String(16))
    entry: Mapped[dict[str, object]] = mapped_column(JSON)
    #: four eyes: the admin who drafted the entry, and the second admin who approved (published) it
    drafted_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    drafted_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    approved_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    basis: Mapped[str] = mapped_column(Text)
    published_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    withdrawn_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    withdrawn_reason: Mapped[str | None] = mapped_column(Text, nullable=True)


# --------------------------------------------------------------------------- trust


class AuditEntry(Base):
    """Append-only; ``hash = sha256(prev_hash + canonical JSON of the entry)``."""

    __tablename__ = "audit_log"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[str] = mapped_column(String(32))
    actor_id: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    simulated: Mapped[bool] = mapped_column(Boolean)
    action: Mapped[str] = mapped_column(String(48))
    entity_type: Mapped[str] = mapped_column(String(32))
    entity_id: Mapped[str] = mapped_column(String(64))
    payload: Mapped[str] = mapped_column(Text)
    #: canonical JSON {table: {group key: digest}} of the rows this entry wrote (``audit.bind_rows``)
    rows: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: the credential the actor used (as ``case_events.via``); hashed when set
    via: Mapped[str | None] = mapped_column(String(96), nullable=True)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """The chain's head, one row; locked by every append so concurrent writers never fork it."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))


class AuditKey(Base):
    """The Ed25519 key that signs audit checkpoints (``sanctions.checkpoint``), made on first use,
    unless ``settings.audit_key_file`` names a key kept outside the store."""

    __tablename__ = "audit_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    private_key: Mapped[str] = mapped_column(String(64))
    public_key: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime)


class OutboxMessage(Base):
    """Everything that leaves the system, written in the same transaction as the change."""

    __tablename__ = "outbox"

    message_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    #: unique per logical message so a retried change never sends twice
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)
    #: notify_seller | notify_buyer | warning | publication
    kind: Mapped[str] = mapped_column(String(24), index=True)
    recipient: Mapped[str] = mapped_column(String(64))
    topic: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, object]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    #: pending | delivered | dead (gave up after the retry policy's attempts; see ``outbox.Retry``)
    status: Mapped[str] = mapped_column(String(16), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    #: after a failed send: not tried again before this (exponential backoff)
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)


class IdempotencyKey(Base):
    """A client's retry key, the hash of its request and the result it got the first time."""

    __tablename__ = "idempotency_keys"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    operation: Mapped[str] = mapped_column(String(48))
    request_hash: Mapped[str] = mapped_column(String(64))
    result: Mapped[dict[str, object]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime)


# --------------------------------------------------------------------------- effects


class StorefrontChange(Base):
    """One visibility change of a shop on the storefront, in commit order (the feed a catalogue follows).

    ``state``: visible | frozen (listings unchangeable) | not_purchasable (banned) | removed (closed).
    ``seq`` is taken while the transaction holds the audit chain's head lock, so on PostgreSQL rows
    become visible in ``seq`` order and a reader resuming after a cursor never skips one.
    """

    __tablename__ = "storefront_changes"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    shop_id: Mapped[str] = mapped_column(String(64), index=True)
    state: Mapped[str] = mapped_column(String(16))
    case_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    action: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(DateTime)


class WorkflowSecret(Base):
    """Secrets the workflow signs with (the consumers' claim links), made once per store."""

    __tablename__ = "workflow_secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime)


class PublicCorrection(Base):
    """A public correction: a measure that was announced or disclosed was reversed on appeal."""

    __tablename__ = "public_corrections"

    correction_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(Integer, index=True, unique=True)
    shop_id: Mapped[str] = mapped_column(String(64))
    shop_name: Mapped[str] = mapped_column(String(200))
    text: Mapped[str] = mapped_column(Text)
    campaign_ids: Mapped[list[int]] = mapped_column(JSON)
    published_at: Mapped[datetime] = mapped_column(DateTime)


class MarketVerdict(Base):
    """A verdict of the marketplace's own investigations (the contract's ``verdicts`` table), copied by
    ``storefront.import_marketplace``: a counterfeit verdict dated after a case was dismissed, settled or
    reversed is new evidence that reopens the shop (``routing``)."""

    __tablename__ = "market_verdicts"

    verdict_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    shop_id: Mapped[str] = mapped_column(String(64), index=True)
    decided_at: Mapped[datetime] = mapped_column(DateTime)
    #: counterfeit | genuine
    outcome: Mapped[str] = mapped_column(String(16))
    evidence_kind: Mapped[str] = mapped_column(String(32))


class AppealFile(Base):
    """A file a seller attached to an appeal: kept with its sha256, size and type; served only as a download."""

    __tablename__ = "appeal_files"

    file_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.case_id"), index=True)
    #: the appeal's case event (the statement is its reason)
    event_id: Mapped[int] = mapped_column(Integer)
    actor_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    filename: Mapped[str] = mapped_column(String(200))
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    data: Mapped[bytes] = mapped_column(LargeBinary)
