"""What the affected buyers are told, and the signed link each claim gets.

Every sanction that touches a purchase notifies its buyers (outbox ``notify_buyer``): a ban (one
notice per claim, ``compensation_owed``) and a closure (``shop_closed``: every buyer with an order
in the affected window, proof-closures included). A notice says which shop (id and name: never the
shopkeeper's personal data), the public reason (a fixed text per measure, never the reviewer's free
text), what the buyer is owed (if anything) and how to get it, and the deadline.

A claim's link (``/v1/claim-links/<token>``) is signed with the store's own secret
(``workflow_secrets``, made on first use) by ``itsdangerous``: it names one claim and one buyer and
serves one purpose, confirming receipt or disputing it; no account is needed. It expires after
``LINK_DAYS`` and is spent once the claim is confirmed (a second use is refused, saying when it was used).

A shop's seller link (``/v1/seller-links/<token>``, page ``/seller/<token>``) is signed with the same secret
but its own salt and purpose: it names one shop and its keeper, rides on every notice to the seller, and
lets the keeper see its cases and claims, pay, refuse and appeal (``sanctions.seller``) for
``SELLER_LINK_DAYS``.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from core.errors import DajiaError, Forbidden
from sanctions.models import WorkflowSecret

#: a claim link is valid this long after it was made (the claim's deadline is 30 days; disputes take longer)
LINK_DAYS = 120
LINK_PATH = "/v1/claim-links/"
_SALT = "dajia-claim-link"
_PURPOSE = "claim-receipt"

#: the public reason of each measure, as buyers read it
PUBLIC_REASONS = {
    "close": "The shop was closed: the sale of counterfeit goods was proven ({proof}).",
    "refuse": "The shop was closed: it refused to compensate the buyers of suspected counterfeit goods.",
    "escalate": "The shop was closed: it did not compensate the buyers of suspected counterfeit goods in time.",
    "ban": (
        "The shop is banned for suspected sale of counterfeit goods, until it has compensated every affected buyer."
    ),
}
PROOF_NAMES = {"test_buy": "test buy", "brand_owner": "brand owner's authentication", "reviewer_confirmed": "review"}
HOW_TO_CLAIM = (
    "The shop must pay you this amount by the deadline. When it arrives, confirm it with your link; "
    "if the shop says it paid and nothing arrived, dispute it with the same link. If the shop does not "
    "pay by the deadline, it is closed and your claim stands."
)
NOTHING_OWED = (
    "No compensation was ordered with this measure. For a refund of the orders listed, use the "
    "marketplace's order dispute process."
)


class LinkRefused(DajiaError):
    """A claim link that cannot be used: ``http_status`` is the answer (404 unknown, 410 expired, 409 used)."""

    def __init__(self, message: str, http_status: int) -> None:
        super().__init__(message)
        self.http_status = http_status


def public_reason(measure: str, proof_kinds: list[str] | None = None) -> str:
    proof = ", ".join(PROOF_NAMES.get(k, k) for k in proof_kinds or []) or "review"
    return PUBLIC_REASONS[measure].format(proof=proof)


def _secret(session: Session, *, create: bool = True) -> str:
    value = session.execute(select(WorkflowSecret.value).where(WorkflowSecret.name == _SALT)).scalar_one_or_none()
    if value is None and not create:
        raise LinkRefused("this is not a valid claim link (no link was ever made here)", 404)
    if value is None:
        row = {"name": _SALT, "value": secrets.token_urlsafe(48), "created_at": datetime.now(UTC).replace(tzinfo=None)}
        dialect = session.get_bind().dialect.name
        stmt = (pg_insert if dialect == "postgresql" else sqlite_insert)(WorkflowSecret).values(**row)
        session.execute(stmt.on_conflict_do_nothing(index_elements=["name"]))
        value = session.execute(select(WorkflowSecret.value).where(WorkflowSecret.name == _SALT)).scalar_one()
    return str(value)


def _signer(secret: str, at: float | None = None, *, salt: str = _SALT) -> URLSafeTimedSerializer:
    """The links' serializer (``salt``: which kind of link); signing at ``at`` (seconds since the epoch) when given."""
    if at is None:
        return URLSafeTimedSerializer(secret, salt=salt)
    stamp = int(at)

    class _At(TimestampSigner):
        def get_timestamp(self) -> int:
            return stamp

    return URLSafeTimedSerializer(secret, salt=salt, signer=_At)


def claim_link(session: Session, claim_id: int, buyer_id: str, *, at: datetime | None = None) -> str:
    """The path of claim ``claim_id``'s link for ``buyer_id``, signed now (or at ``at``, naive UTC)."""
    when = None if at is None else at.replace(tzinfo=UTC).timestamp()
    token = _signer(_secret(session), when).dumps({"c": int(claim_id), "b": buyer_id, "p": _PURPOSE})
    return LINK_PATH + str(token)


@dataclass(frozen=True)
class LinkHolder:
    claim_id: int
    buyer_id: str


def read_link(session: Session, token: str, *, max_age_days: int = LINK_DAYS) -> LinkHolder:
    """The claim and buyer a token names; LinkRefused (404 forged or not a claim link, 410 expired)."""
    try:
        data: Any = _signer(_secret(session, create=False)).loads(token, max_age=max_age_days * 86400)
    except SignatureExpired as exc:
        made = exc.date_signed.strftime("%Y-%m-%d") if exc.date_signed else "long ago"
        raise LinkRefused(
            f"this claim link expired (made {made}, valid {max_age_days} days); ask the marketplace for a new one",
            410,
        ) from None
    except BadSignature:
        raise LinkRefused("this is not a valid claim link (it may have been altered or cut short)", 404) from None
    if not isinstance(data, dict) or data.get("p") != _PURPOSE or not isinstance(data.get("c"), int):
        raise LinkRefused("this link is not a claim link", 404)
    return LinkHolder(int(data["c"]), str(data["b"]))


def check_holder(holder: LinkHolder, claim_buyer: str) -> None:
    if holder.buyer_id != claim_buyer:
        raise Forbidden("this link belongs to another buyer")


# --------------------------------------------------------------------------- the seller's link

#: a seller link is valid this long after it was made (every later notice carries a fresh one)
SELLER_LINK_DAYS = 180
SELLER_LINK_PATH = "/v1/seller-links/"
#: the page for people (the same token)
SELLER_PAGE_PATH = "/seller/"
_SELLER_SALT = "dajia-seller-link"
_SELLER_PURPOSE = "seller-shop"


def seller_link(session: Session, shop_id: str, shopkeeper_id: str, *, at: datetime | None = None) -> str:
    """The path of shop ``shop_id``'s seller link for its keeper ``shopkeeper_id``, signed now (or at ``at``).

    Signed with the store's secret like a claim link, but with a salt and purpose of its own: a claim
    link is no seller link and a seller link is no claim link."""
    when = None if at is None else at.replace(tzinfo=UTC).timestamp()
    token = _signer(_secret(session), when, salt=_SELLER_SALT).dumps(
        {"s": shop_id, "k": shopkeeper_id, "p": _SELLER_PURPOSE}
    )
    return SELLER_LINK_PATH + str(token)


def seller_links(session: Session) -> Callable[[str, str], str]:
    """``seller_link`` for many shops in one transaction (the secret read once): (shop, keeper) -> path."""
    signer = _signer(_secret(session), salt=_SELLER_SALT)
    return lambda shop_id, keeper: (
        SELLER_LINK_PATH + str(signer.dumps({"s": shop_id, "k": keeper, "p": _SELLER_PURPOSE}))
    )


@dataclass(frozen=True)
class SellerHolder:
    shop_id: str
    shopkeeper_id: str


def read_seller_link(session: Session, token: str, *, max_age_days: int = SELLER_LINK_DAYS) -> SellerHolder:
    """The shop and keeper a seller token names; LinkRefused (404 forged or not a seller link, 410 expired)."""
    try:
        data: Any = _signer(_secret(session, create=False), salt=_SELLER_SALT).loads(
            token, max_age=max_age_days * 86400
        )
    except SignatureExpired as exc:
        made = exc.date_signed.strftime("%Y-%m-%d") if exc.date_signed else "long ago"
        raise LinkRefused(
            f"this seller link expired (made {made}, valid {max_age_days} days); "
            "use the link in the marketplace's latest notice to you",
            410,
        ) from None
    except BadSignature:
        raise LinkRefused("this is not a valid seller link (it may have been altered or cut short)", 404) from None
    except LinkRefused:
        raise LinkRefused("this is not a valid seller link (no link was ever made here)", 404) from None
    if not isinstance(data, dict) or data.get("p") != _SELLER_PURPOSE or not isinstance(data.get("s"), str):
        raise LinkRefused("this link is not a seller link", 404)
    return SellerHolder(str(data["s"]), str(data["k"]))
