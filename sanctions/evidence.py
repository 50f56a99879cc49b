"""Evidence frozen at case open: what a decision will rest on, copied when the case opens.

A snapshot holds the shop record (business fields; of the shopkeeper's personal fields only those
a ban-evasion link rests on), each listing (title, price, brand, category, dates; the store keeps no
description), the score with its threshold, model name and version, reasons and feature values
(when the scorer hands them over) and the linked shops. It is written once, in the transaction that
opens the case, never updated; its sha256 (``content_hash``) is in the case's ``case.open`` audit
entry and the row is bound into the chain with the case (``audit.COVERED``), so editing a snapshot
breaks ``dajia audit verify``. :func:`compare` sets it beside the data as it is now and marks what
changed since opening.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, cast

from pydantic import BaseModel
from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from sanctions import bulk
from sanctions.audit import canonical
from sanctions.models import Case, EvidenceSnapshot, Listing, Shop
from sanctions.scored import ScoredShop

SNAPSHOTS = cast(Table, EvidenceSnapshot.__table__)
#: the shop's record as kept in a snapshot (no personal field)
SHOP_FIELDS = (
    "shop_id",
    "name",
    "category",
    "status",
    "opened_at",
    "business_registration",
    "business_phone",
    "business_email",
)
LISTING_FIELDS = ("listing_id", "title", "price", "brand", "category", "created_at", "delisted_at", "withdrawn")
_SHOP_COLUMNS = [getattr(Shop, f) for f in SHOP_FIELDS]
_LISTING_COLUMNS = [Listing.shop_id, *(getattr(Listing, f) for f in LISTING_FIELDS)]


def _plain(v: Any) -> Any:
    return v.isoformat() if isinstance(v, datetime) else v


def _records(session: Session, shop_ids: Sequence[str]) -> tuple[dict[str, dict[str, Any]], dict[str, list[Any]]]:
    """Shop records and their listings as a snapshot keeps them, for ``shop_ids`` (two queries)."""
    shops = {
        r[0]: {f: _plain(v) for f, v in zip(SHOP_FIELDS, r, strict=True)}
        for r in session.execute(select(*_SHOP_COLUMNS).where(bulk.among(session, Shop.shop_id, list(shop_ids))))
    }
    listings: dict[str, list[dict[str, Any]]] = defaultdict(list)
    rows = session.execute(
        select(*_LISTING_COLUMNS)
        .where(bulk.among(session, Listing.shop_id, list(shop_ids)))
        .order_by(Listing.shop_id, Listing.listing_id)
    )
    for r in rows:
        listings[r[0]].append({f: _plain(v) for f, v in zip(LISTING_FIELDS, r[1:], strict=True)})
    return shops, listings


def take(
    session: Session,
    case_ids: Mapping[str, int],
    scored: Mapping[str, ScoredShop],
    links: Mapping[str, list[dict[str, Any]]],
    now: datetime,
) -> list[dict[str, Any]]:
    """The snapshot rows of newly opened cases (shop id -> case id); the caller inserts them."""
    shop_ids = list(case_ids)
    shops, listings = _records(session, shop_ids)
    needed = {
        sid: sorted({f for e in links.get(sid, []) for f in e.get("data", {}).get("fields", [])}) for sid in shop_ids
    }
    personal: dict[str, dict[str, Any]] = {}
    wanted = sorted({f for fs in needed.values() for f in fs})
    if wanted:  # only the linkage fields a ban-evasion case rests on
        cols = [Shop.shop_id, *(getattr(Shop, f) for f in wanted)]
        for r in session.execute(select(*cols).where(bulk.among(session, Shop.shop_id, shop_ids))):
            values = dict(zip(wanted, r[1:], strict=True))
            personal[r[0]] = {f: values[f] for f in needed[r[0]]}
    out = []
    for sid, case_id in case_ids.items():
        s = scored.get(sid)
        content: dict[str, Any] = {
            "case_id": case_id,
            "taken_at": now.isoformat(),
            "shop": {**shops.get(sid, {"shop_id": sid}), "linkage": personal.get(sid, {})},
            "listings": listings.get(sid, []),
            "score": None
            if s is None
            else {
                "score": float(s.score),
                "tier": s.tier,
                "threshold": float(s.suspected_threshold),
                "model_name": s.model_name,
                "model_version": str(s.model_version),
                "reasons": list(s.reasons),
                "features": _finite(s.features) if s.features else None,
            },
            "linked_shops": [
                {"shop_id": e.get("ref"), "shared_fields": e.get("data", {}).get("fields", [])}
                for e in links.get(sid, [])
            ],
        }
        text = canonical(content)  # hashed, and stored as it is (not serialised a second time)
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        out.append(
            {"case_id": case_id, "taken_at": now, "content": bulk.Serialized(content, text), "content_hash": digest}
        )
    return out


def _finite(features: Mapping[str, float | None]) -> dict[str, float | None]:
    """Feature values as JSON can hold them (a missing value, NaN, as null)."""
    return {str(k): (None if v is None or v != v else float(v)) for k, v in features.items()}


class Difference(BaseModel):
    """One thing compared: as at opening (``then``) and now; ``changed`` when they differ."""

    what: str
    field: str
    then: Any
    now: Any
    changed: bool = True


class EvidenceComparison(BaseModel):
    case_id: int
    taken_at: datetime
    content_hash: str
    hash_ok: bool
    then: dict[str, Any]
    now: dict[str, Any]
    #: every field compared, side by side (for the case page)
    lines: list[Difference]

    @property
    def changes(self) -> list[Difference]:
        """What is not as it was when the case opened."""
        return [x for x in self.lines if x.changed]


def compare(session: Session, case_id: int) -> EvidenceComparison | None:
    """The snapshot of ``case_id`` beside the data now, with every difference; None without a snapshot."""
    snap = session.get(EvidenceSnapshot, case_id)
    case = session.get(Case, case_id)
    if snap is None or case is None:
        return None
    then: dict[str, Any] = dict(cast(dict[str, Any], snap.content))
    shops, listings = _records(session, [case.shop_id])
    now_score = {"score": case.score, "tier": case.tier, "model_version": case.model_version}
    now_shop: dict[str, Any] = shops.get(case.shop_id, {})
    now_listings: list[Any] = listings.get(case.shop_id, [])
    now = {"shop": now_shop, "listings": now_listings, "score": now_score}
    lines: list[Difference] = []

    def line(what: str, field: str, was: Any, is_: Any) -> None:
        lines.append(Difference(what=what, field=field, then=was, now=is_, changed=was != is_))

    then_shop = dict(then.get("shop") or {})
    for f in SHOP_FIELDS:
        if f in then_shop:
            line("shop", f, then_shop[f], now_shop.get(f))
    then_score = dict(then.get("score") or {})
    for f in ("score", "tier", "model_version"):
        if then_score:
            line("score", f, then_score.get(f), now_score.get(f))
    before = {x["listing_id"]: x for x in then.get("listings") or []}
    after = {x["listing_id"]: x for x in now_listings}
    for lid in sorted(before.keys() | after.keys()):
        b, a = before.get(lid), after.get(lid)
        if b is None or a is None:
            line(f"listing {lid}", "listing", b and "present", a and "present")
            continue
        for f in LISTING_FIELDS[1:]:
            line(f"listing {lid}", f, b.get(f), a.get(f))
    digest = hashlib.sha256(canonical(then).encode("utf-8")).hexdigest()
    return EvidenceComparison(
        case_id=case_id,
        taken_at=snap.taken_at,
        content_hash=snap.content_hash,
        hash_ok=digest == snap.content_hash,
        then=then,
        now=now,
        lines=lines,
    )
