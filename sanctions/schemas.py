"""Request and result shapes of the workflow services (pydantic; ready for the HTTP layer)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Evidence(BaseModel):
    """A piece of evidence a decision cites.

    ``kind`` is one of: test_buy, brand_owner (proof: brand owner's authentication),
    reviewer_confirmed (proof only when ``ref`` names what was examined), consumer_reports,
    score, linked_to_closed_shop, refusal, deadline_missed, other.
    """

    model_config = ConfigDict(frozen=True)

    kind: str = Field(min_length=1, max_length=48)
    ref: str = Field(default="", max_length=500)
    detail: str = Field(default="", max_length=2000)
    data: dict[str, Any] = Field(default_factory=dict)

    @field_validator("kind")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in EVIDENCE_KINDS:
            raise ValueError(f"unknown evidence kind {v!r}; one of {', '.join(EVIDENCE_KINDS)}")
        return v


EVIDENCE_KINDS = (
    "test_buy",
    "brand_owner",
    "reviewer_confirmed",
    "consumer_reports",
    "score",
    "linked_to_closed_shop",
    "refusal",
    "deadline_missed",
    "appeal",
    "other",
)
#: evidence that proves counterfeiting (step 1 needs one of these)
PROOF_KINDS = ("test_buy", "brand_owner", "reviewer_confirmed")


class CaseEventView(BaseModel):
    event_id: int
    at: datetime
    actor_id: str
    role: str
    simulated: bool
    action: str
    old_status: str | None
    new_status: str
    reason: str
    score: float | None
    threshold: float | None
    model_name: str | None
    model_version: str | None
    evidence: list[dict[str, Any]]
    #: the credential the actor used (``key:<id>``, ``console:<key id>``, ``cli:<os user>``; None: the system)
    via: str | None = None


class AppealFileView(BaseModel):
    """A file a seller attached to an appeal, without its bytes (a download of its own)."""

    file_id: int
    case_id: int
    #: the appeal's case event: its reason is the seller's statement
    event_id: int
    created_at: datetime
    filename: str
    content_type: str
    size: int
    sha256: str


class CaseView(BaseModel):
    case_id: int
    shop_id: str
    shop_name: str
    shop_status: str
    category: str
    status: str
    version: int
    origin: str
    measure: str | None
    score: float | None
    tier: str | None
    threshold: float | None
    model_name: str | None
    model_version: str | None
    reasons: list[str]
    evidence: list[dict[str, Any]]
    opened_at: datetime
    decided_at: datetime | None
    updated_at: datetime
    ended_at: datetime | None
    events: list[CaseEventView] = Field(default_factory=list)
    claims: list[ClaimView] = Field(default_factory=list)
    #: what the seller attached to its appeals (the statement is the appeal event's reason)
    appeal_files: list[AppealFileView] = Field(default_factory=list)


class ClaimView(BaseModel):
    claim_id: int
    case_id: int
    shop_id: str
    buyer_id: str
    order_ids: list[str]
    category: str
    paid_total: float
    refund: float
    punitive: float
    amount: float
    status: str
    created_at: datetime
    deadline_at: datetime
    paid_at: datetime | None
    payment_ref: str | None
    confirmed_at: datetime | None


class TransitionResult(BaseModel):
    """What one workflow change did."""

    case_id: int
    action: str
    old_status: str
    new_status: str
    version: int
    shop_id: str
    shop_status: str
    claims_created: int = 0
    claims_voided: int = 0
    compensation_owed: float = 0.0
    disclosures_withdrawn: int = 0
    follow_up: list[TransitionResult] = Field(default_factory=list)


class ClaimResult(BaseModel):
    claim_id: int
    case_id: int
    status: str
    case_status: str
    shop_status: str


class RoutingReport(BaseModel):
    """What a routing sweep did, by outcome."""

    seen: int = 0
    below_tier: int = 0
    opened: int = 0
    #: of ``opened``: shops whose earlier case was dismissed, settled or reversed, reopened on new evidence
    reopened: int = 0
    rescored: int = 0
    unchanged: int = 0
    #: shops whose latest case was dismissed, settled or reversed, with nothing new since: left alone
    kept_decided: int = 0
    skipped_closed: int = 0
    skipped_in_appeal: int = 0
    unknown_shops: list[str] = Field(default_factory=list)
    opened_case_ids: list[int] = Field(default_factory=list)


class EvasionReport(BaseModel):
    opened: int = 0
    opened_case_ids: list[int] = Field(default_factory=list)
    links: dict[str, list[dict[str, Any]]] = Field(default_factory=dict)


CaseView.model_rebuild()
