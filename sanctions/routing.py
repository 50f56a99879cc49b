"""Opening cases: routing scored shops, and ban evasion.

Routing is set-based: scored shops are taken in chunks, each chunk one transaction (a few
queries and executemany inserts, never one transaction per shop). It is crash-safe and
retry-safe: the partial unique index ``uq_cases_one_open_per_shop`` allows one open case per
shop, and each case remembers the ``route_key`` (a digest of shop, model, version, score, tier)
of the scoring that last touched it, so rerunning a sweep that was killed midway opens each
remaining case once and leaves the others as they are. Two sweeps racing on the same shop: the
loser's chunk hits the unique index, rolls back and is retried, then finds the open case.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from core.db import unit_of_work
from core.errors import Conflict, DajiaError, InvalidTransition
from marketplace.schema import LINKAGE_FIELDS
from sanctions import bulk, notices, storefront, tx
from sanctions import evidence as evidence_snapshots
from sanctions.models import Case, CaseEvent, Listing, MarketVerdict, Shop
from sanctions.schemas import EvasionReport, RoutingReport
from sanctions.scored import TIERS, ScoredShop
from sanctions.workflow import (
    OPEN_STATUSES,
    SYSTEM,
    Action,
    Actor,
    CaseStatus,
    Role,
    check_transition,
    require_role,
)

SCORER = Actor("scorer", Role.SCORER)
#: a case that ended without a standing measure (dismissed, settled, reversed) is reopened by a score
#: only when it rose at least this much above the score that decision was made on
REOPEN_SCORE_MARGIN = 0.05
ENDED_WITHOUT_MEASURE: tuple[str, ...] = tuple(
    s.value for s in (CaseStatus.DISMISSED, CaseStatus.SETTLED, CaseStatus.REVERSED)
)
_CASES = cast(Table, Case.__table__)
_EVENTS = cast(Table, CaseEvent.__table__)


def route_key(s: ScoredShop) -> str:
    """Identifies one scoring of one shop: the same scoring routed twice is recognised."""
    raw = f"{s.shop_id}|{s.model_name}|{s.model_version}|{float(s.score)!r}|{s.tier}|{float(s.suspected_threshold)!r}"
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


def _chunks(items: Iterable[ScoredShop], size: int) -> Iterator[list[ScoredShop]]:
    buf: list[ScoredShop] = []
    for item in items:
        buf.append(item)
        if len(buf) >= size:
            yield buf
            buf = []
    if buf:
        yield buf


def _merge(total: RoutingReport, part: RoutingReport) -> None:
    for name in ("opened", "reopened", "rescored", "unchanged", "kept_decided", "skipped_closed", "skipped_in_appeal"):
        setattr(total, name, getattr(total, name) + getattr(part, name))
    total.unknown_shops.extend(part.unknown_shops)
    total.opened_case_ids.extend(part.opened_case_ids)


def route_scored(
    session: Session,
    scored: Iterable[ScoredShop],
    *,
    actor: Actor = SCORER,
    tier: str = "suspected",
    chunk_size: int = 5000,
    now: datetime | None = None,
    throttle: float = 0.0,
    retries: int = 3,
) -> RoutingReport:
    """Open a case for every shop scored at or above ``tier`` (or rescore its open case).

    Opening freezes the shop's listings and notifies the seller (outbox). ``throttle`` sleeps
    between chunks to go easy on a live database. Shops unknown to the store are reported, not
    fatal. Returns counts by outcome.
    """
    require_role(actor, Role.SCORER, Role.SYSTEM, what="route scored shops into cases")
    if tier not in TIERS:
        raise DajiaError(f"tier must be one of {', '.join(TIERS)}, got {tier!r}")
    when = now or tx.utcnow()
    report = RoutingReport()
    for chunk in _chunks(scored, chunk_size):
        report.seen += len(chunk)
        eligible: dict[str, ScoredShop] = {}
        for s in chunk:
            if s.at_least(tier):
                eligible[s.shop_id] = s  # a later line for the same shop wins
            else:
                report.below_tier += 1
        if not eligible:
            continue
        for attempt in range(retries + 1):
            try:
                with unit_of_work(session):
                    tx.ensure_actor(session, actor, when)
                    part = _route_chunk(session, list(eligible.values()), actor, when)
                break
            except (IntegrityError, Conflict) as exc:
                if attempt == retries:
                    raise Conflict(f"routing: a concurrent sweep kept winning ({exc})") from exc
        _merge(report, part)
        if throttle > 0:
            time.sleep(throttle)
    return report


def _route_chunk(session: Session, items: Sequence[ScoredShop], actor: Actor, now: datetime) -> RoutingReport:
    part = RoutingReport()
    ids = [s.shop_id for s in items]
    shops = {
        r.shop_id: r
        for r in session.execute(
            select(Shop.shop_id, Shop.status, Shop.shopkeeper_id, Shop.name).where(
                bulk.among(session, Shop.shop_id, ids)
            )
        )
    }
    open_cases = {
        r.shop_id: r
        for r in session.execute(
            select(Case.case_id, Case.shop_id, Case.status, Case.version, Case.route_key, Case.opened_at).where(
                bulk.among(session, Case.shop_id, ids), Case.status.in_(sorted(OPEN_STATUSES))
            )
        )
    }
    decided = _last_decided(session, [sid for sid in ids if sid not in open_cases])
    verdicts = _verdicts_since(session, decided, now)
    to_open: list[ScoredShop] = []
    reopen_evidence: dict[str, list[dict[str, Any]]] = {}
    to_rescore: list[tuple[Any, ScoredShop, str, str]] = []  # (open case, scoring, route key, new status)
    for s in items:
        shop = shops.get(s.shop_id)
        if shop is None:
            part.unknown_shops.append(s.shop_id)
            continue
        key = route_key(s)
        oc = open_cases.get(s.shop_id)
        if oc is not None:
            # the same scoring again, or scores older than the case (a ban-evasion case opened since): the
            # case stands; a rescore dated before its opening would rewrite its history
            if oc.route_key == key or oc.opened_at > now:
                part.unchanged += 1
                continue
            try:
                to_rescore.append((oc, s, key, check_transition(oc.status, Action.RESCORE, actor).value))
            except InvalidTransition:
                part.skipped_in_appeal += 1  # a case in appeal keeps the score it was decided on
        elif shop.status == "closed":
            part.skipped_closed += 1
        elif s.shop_id in decided:
            why = [e for e in (_score_rose(decided[s.shop_id], s),) if e is not None]
            why += [_verdict_evidence(decided[s.shop_id], v) for v in verdicts.get(s.shop_id, [])]
            if not why:
                part.kept_decided += 1  # decided already, nothing new since: the decision stands
            else:
                reopen_evidence[s.shop_id] = why
                to_open.append(s)
        else:
            to_open.append(s)

    ch = tx.Change(session, actor, now)
    if to_open:
        new_ids = bulk.allocate_ids(session, _CASES, len(to_open))
        rows = [
            {
                "case_id": case_id,
                "shop_id": s.shop_id,
                "status": CaseStatus.OPEN.value,
                "version": 1,
                "origin": "score",
                "measure": None,
                "score": float(s.score),
                "tier": s.tier,
                "threshold": float(s.suspected_threshold),
                "model_name": s.model_name,
                "model_version": str(s.model_version),
                "reasons": list(s.reasons),
                "evidence": [_score_evidence(s), *reopen_evidence.get(s.shop_id, [])],
                "route_key": route_key(s),
                "opened_at": now,
                "decided_at": None,
                "updated_at": now,
                "ended_at": None,
            }
            for case_id, s in zip(new_ids, to_open, strict=True)
        ]
        bulk.insert_rows(session, _CASES, rows)
        created = [(case_id, s.shop_id) for case_id, s in zip(new_ids, to_open, strict=True)]
        by_shop = {s.shop_id: s for s in to_open}
        case_ids = {shop_id: int(case_id) for case_id, shop_id in created}
        evidence = {str(r["shop_id"]): cast(list[dict[str, Any]], r["evidence"]) for r in rows}  # once, case+event
        reasons = {
            sid: "reopened on new evidence: " + "; ".join(str(e["detail"]) for e in ev)
            for sid, ev in reopen_evidence.items()
        }
        _open_effects(
            ch,
            case_ids,
            {sid: shops[sid] for sid in case_ids},
            by_shop,
            "score",
            now,
            evidence=evidence,
            reasons=reasons,
        )
        part.opened = len(created)
        part.reopened = len(reasons)
        part.opened_case_ids = [int(c) for c, _ in created]
    if to_rescore:
        stmt = (
            update(_CASES)
            .where(_CASES.c.case_id == bindparam("b_case"), _CASES.c.version == bindparam("b_version"))
            .values(
                score=bindparam("b_score"),
                tier=bindparam("b_tier"),
                threshold=bindparam("b_threshold"),
                model_name=bindparam("b_model"),
                model_version=bindparam("b_model_version"),
                reasons=bindparam("b_reasons"),
                route_key=bindparam("b_key"),
                version=bindparam("b_new_version"),
                updated_at=bindparam("b_now"),
            )
        )
        params = [
            {
                "b_case": oc.case_id,
                "b_version": oc.version,
                "b_score": float(s.score),
                "b_tier": s.tier,
                "b_threshold": float(s.suspected_threshold),
                "b_model": s.model_name,
                "b_model_version": str(s.model_version),
                "b_reasons": list(s.reasons),
                "b_key": key,
                "b_new_version": oc.version + 1,
                "b_now": now,
            }
            for oc, s, key, _ in to_rescore
        ]
        res = session.execute(stmt, params)
        if session.get_bind().dialect.supports_sane_multi_rowcount and res.rowcount != len(params):  # type: ignore[attr-defined]
            raise Conflict("a case changed while it was being rescored")
        bulk.insert_rows(
            session,
            _EVENTS,
            [
                _event_row(oc.case_id, actor, now, Action.RESCORE.value, oc.status, new, "new score", s)
                for oc, s, _, new in to_rescore
            ],
        )
        for oc, s, _, _ in to_rescore:
            ch.audit(
                "case.rescore",
                "case",
                oc.case_id,
                {"shop_id": s.shop_id, "score": float(s.score), "model_version": str(s.model_version)},
            )
        part.rescored = len(to_rescore)
    ch.finish()
    return part


@dataclass(frozen=True)
class _Decided:
    """A shop's latest case, which ended without a standing measure, and what its decisions saw."""

    case_id: int
    status: str
    decided_at: datetime | None
    #: the highest score any of the shop's decided cases was decided on (None: none had a score)
    score: float | None
    #: the scorings (route keys) those cases had seen
    keys: frozenset[str]


def _last_decided(session: Session, shop_ids: Sequence[str]) -> dict[str, _Decided]:
    """{shop: _Decided} for shops among ``shop_ids`` whose latest case was dismissed, settled or reversed."""
    if not shop_ids:
        return {}
    rows: dict[str, list[Any]] = {}
    for r in session.execute(
        select(Case.case_id, Case.shop_id, Case.status, Case.score, Case.route_key, Case.decided_at, Case.ended_at)
        .where(bulk.among(session, Case.shop_id, list(shop_ids)))
        .order_by(Case.case_id)
    ):
        rows.setdefault(r.shop_id, []).append(r)
    out: dict[str, _Decided] = {}
    for sid, history in rows.items():
        last = history[-1]
        if last.status not in ENDED_WITHOUT_MEASURE:
            continue
        decided = [r for r in history if r.status in ENDED_WITHOUT_MEASURE]
        scored = [float(r.score) for r in decided if r.score is not None]
        out[sid] = _Decided(
            case_id=int(last.case_id),
            status=str(last.status),
            decided_at=last.ended_at or last.decided_at,
            score=max(scored) if scored else None,
            keys=frozenset(str(r.route_key) for r in decided if r.route_key),
        )
    return out


def _score_rose(prior: _Decided, s: ScoredShop) -> dict[str, Any] | None:
    """The new evidence a scoring brings against a shop's decided case: its score rose past the highest
    score the shop's decisions were made on by ``REOPEN_SCORE_MARGIN`` (or, when no decision had a
    score, a scoring those decisions had not seen); None when there is nothing new."""
    before = prior.score
    if before is not None and float(s.score) < before + REOPEN_SCORE_MARGIN:
        return None
    if before is None and route_key(s) in prior.keys:
        return None
    was = "no score (opened on a link)" if before is None else f"{before:.4f}"
    return {
        "kind": "new_evidence",
        "ref": f"case {prior.case_id}",
        "detail": f"score rose from {was} to {float(s.score):.4f} since case {prior.case_id} was {prior.status}",
        "data": {
            "why": "score_rose",
            "prior_case_id": prior.case_id,
            "prior_status": prior.status,
            "decided_at": prior.decided_at.isoformat() if prior.decided_at else None,
            "prior_score": before,
            "score": float(s.score),
        },
    }


def _verdicts_since(session: Session, decided: dict[str, _Decided], now: datetime) -> dict[str, list[Any]]:
    """{shop: the marketplace's counterfeit verdicts on it dated after its decided case ended and not after
    ``now``}, oldest first: each is new evidence since that decision (a verdict dated later is not known yet)."""
    if not decided:
        return {}
    out: dict[str, list[Any]] = {}
    rows = session.execute(
        select(MarketVerdict)
        .where(
            bulk.among(session, MarketVerdict.shop_id, sorted(decided)),
            MarketVerdict.outcome == "counterfeit",
            MarketVerdict.decided_at <= now,
        )
        .order_by(MarketVerdict.decided_at, MarketVerdict.verdict_id)
    ).scalars()
    for v in rows:
        since = decided[v.shop_id].decided_at
        if since is None or v.decided_at > since:
            out.setdefault(v.shop_id, []).append(v)
    return out


def _verdict_evidence(prior: _Decided, v: MarketVerdict) -> dict[str, Any]:
    """The new evidence a marketplace verdict dated after a shop's decided case brings."""
    return {
        "kind": "new_evidence",
        "ref": f"verdict {v.verdict_id}",
        "detail": f"counterfeit verdict {v.verdict_id} ({v.evidence_kind.replace('_', ' ')}) of "
        f"{v.decided_at:%Y-%m-%d} since case {prior.case_id} was {prior.status}",
        "data": {
            "why": "new_verdict",
            "verdict_id": v.verdict_id,
            "verdict_at": v.decided_at.isoformat(),
            "evidence_kind": v.evidence_kind,
            "prior_case_id": prior.case_id,
            "prior_status": prior.status,
            "decided_at": prior.decided_at.isoformat() if prior.decided_at else None,
        },
    }


def _score_evidence(s: ScoredShop) -> dict[str, Any]:
    return {
        "kind": "score",
        "ref": f"{s.model_name}:{s.model_version}",
        "detail": f"score {float(s.score):.4f} at or above the suspected threshold {float(s.suspected_threshold):.4f}",
        "data": {"score": float(s.score), "tier": s.tier, "reasons": list(s.reasons), "source": s.source},
    }


def _event_row(
    case_id: int,
    actor: Actor,
    now: datetime,
    action: str,
    old: str | None,
    new: str,
    reason: str,
    s: ScoredShop | None,
    evidence: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The case event of a routing step, with the scoring ``s`` behind it (if any) as its basis."""
    return tx.case_event(
        case_id,
        actor,
        now,
        action,
        old,
        new,
        reason,
        evidence=evidence if evidence is not None else ([_score_evidence(s)] if s else []),
        score=float(s.score) if s else None,
        threshold=float(s.suspected_threshold) if s else None,
        model_name=s.model_name if s else None,
        model_version=str(s.model_version) if s else None,
    )


def _open_effects(
    ch: tx.Change,
    case_ids: dict[str, int],
    shops: dict[str, Any],
    scored: dict[str, ScoredShop],
    origin: str,
    now: datetime,
    evidence: dict[str, list[dict[str, Any]]] | None = None,
    reasons: dict[str, str] | None = None,
) -> None:
    """Events, frozen listings, seller notices and audit entries for newly opened cases."""
    session = ch.session
    events = []
    for shop_id, case_id in case_ids.items():
        s = scored.get(shop_id)
        reason = (reasons or {}).get(shop_id) or "score at or above the suspected threshold"
        ev = (evidence or {}).get(shop_id)
        events.append(_event_row(case_id, ch.actor, now, "open", None, CaseStatus.OPEN.value, reason, s, ev))
    bulk.insert_rows(session, _EVENTS, events)
    # the evidence as it stands at opening, frozen (before the listing freeze changes nothing it keeps)
    snapshots = evidence_snapshots.take(session, case_ids, scored, (evidence or {}) if origin != "score" else {}, now)
    bulk.insert_rows(session, evidence_snapshots.SNAPSHOTS, snapshots)
    snapshot_hash = {int(r["case_id"]): str(r["content_hash"]) for r in snapshots}
    shop_ids = list(case_ids)
    session.execute(
        update(Listing).where(bulk.among(session, Listing.shop_id, shop_ids)).values(frozen=True),
        execution_options={"synchronize_session": False},
    )
    link = notices.seller_links(session)
    for shop_id, case_id in case_ids.items():
        shop = shops[shop_id]
        s = scored.get(shop_id)
        storefront.record_change(ch, shop_id, storefront.FROZEN, case_id, "opened")
        ch.outbox(
            dedupe_key=f"case:{case_id}:opened",
            kind="notify_seller",
            recipient=shop.shopkeeper_id,
            topic="case_opened",
            payload={
                "case_id": case_id,
                "shop_id": shop_id,
                "shop_name": shop.name,
                "listings_frozen": True,
                "link": link(shop_id, shop.shopkeeper_id),
            },
        )
        payload: dict[str, Any] = {"shop_id": shop_id, "origin": origin, "snapshot": snapshot_hash[case_id]}
        if s is not None:
            payload.update(score=float(s.score), threshold=float(s.suspected_threshold), model_version=s.model_version)
        if origin != "score" and evidence and shop_id in evidence:
            payload["evidence"] = evidence[shop_id]
        ch.audit("case.open", "case", case_id, payload)


# --------------------------------------------------------------------------- ban evasion


def find_links(
    session: Session, shop_ids: Sequence[str] | None = None, *, closed_ids: Sequence[str] | None = None
) -> dict[str, dict[str, list[str]]]:
    """{shop: {closed shop: [shared identifier fields]}} for shops not closed that share an
    identifier (phone, e-mail, ID hash, bank account, device, address) with a closed shop;
    only among ``shop_ids`` and only with the closed shops ``closed_ids`` when given."""
    links: dict[str, dict[str, list[str]]] = {}
    batches: list[list[str] | None] = [None]
    if shop_ids is not None:
        ids = list(shop_ids)
        batches = [ids[i : i + 5000] for i in range(0, len(ids), 5000)]
    for field in LINKAGE_FIELDS:
        a = aliased(Shop)
        c = aliased(Shop)
        for batch in batches:
            q = (
                select(a.shop_id, c.shop_id)
                .join(c, getattr(a, field) == getattr(c, field))
                .where(c.status == "closed", a.status != "closed", a.shop_id != c.shop_id, getattr(c, field) != "")
            )
            if batch is not None:
                q = q.where(bulk.among(session, a.shop_id, batch))
            if closed_ids is not None:
                q = q.where(bulk.among(session, c.shop_id, list(closed_ids)))
            for shop_id, closed_id in session.execute(q):
                links.setdefault(shop_id, {}).setdefault(closed_id, []).append(field)
    return links


def detect_ban_evasion(
    session: Session,
    *,
    shop_ids: Sequence[str] | None = None,
    actor: Actor = SYSTEM,
    now: datetime | None = None,
) -> EvasionReport:
    """Open a case for every shop linked to a closed shop, with the link as evidence.

    Skipped: shops with an open case already, and shops whose earlier ban-evasion case already
    covered exactly these closed shops (a dismissed link is not reopened until a new one appears).
    Every closure also runs this for the shops linked to the closed one (:func:`evasion_after_closure`),
    so this sweep finds only what the closures could not (e.g. shops imported later).
    """
    require_role(actor, Role.SYSTEM, Role.REVIEWER, Role.ADMIN, what="open ban-evasion cases")
    when = now or tx.utcnow()
    with unit_of_work(session):
        links = find_links(session, shop_ids)
        if not links:
            return EvasionReport()
        tx.ensure_actor(session, actor, when)
        ch = tx.Change(session, actor, when)
        report = _open_evasion(ch, links)
        ch.finish()
    return report


def evasion_after_closure(ch: tx.Change, closed_shop_ids: Sequence[str]) -> EvasionReport:
    """Inside the transaction that closed ``closed_shop_ids``: open ban-evasion cases for the shops
    linked to them (by the system, whoever closed the shop), evidence listing every closed shop each
    is linked to. The caller's ``ch.finish`` writes the outbox and audit records."""
    linked = find_links(ch.session, closed_ids=closed_shop_ids)
    if not linked:
        return EvasionReport()
    tx.ensure_actor(ch.session, SYSTEM, ch.now)
    links = find_links(ch.session, sorted(linked))
    return _open_evasion(ch, links, actor=SYSTEM)


def _open_evasion(ch: tx.Change, links: dict[str, dict[str, list[str]]], actor: Actor | None = None) -> EvasionReport:
    session, when = ch.session, ch.now
    report = EvasionReport()
    candidates = list(links)
    busy: set[str] = set()
    seen_links: dict[str, set[str]] = {}
    for i in range(0, len(candidates), 5000):
        batch = candidates[i : i + 5000]
        for shop_id, status, origin, prior_evidence in session.execute(
            select(Case.shop_id, Case.status, Case.origin, Case.evidence).where(
                bulk.among(session, Case.shop_id, batch)
            )
        ):
            if status in OPEN_STATUSES:
                busy.add(shop_id)
            elif origin == "ban_evasion":
                refs = {str(e.get("ref")) for e in prior_evidence or [] if e.get("kind") == "linked_to_closed_shop"}
                seen_links.setdefault(shop_id, set()).update(r for r in refs if r and r != "None")
    todo = {
        sid: closed
        for sid, closed in links.items()
        if sid not in busy and not set(closed) <= seen_links.get(sid, set())
    }
    if not todo:
        return report
    decided = _last_decided(session, sorted(todo))
    evidence: dict[str, list[dict[str, Any]]] = {}
    for sid, closed in todo.items():
        items: list[dict[str, Any]] = [
            {
                "kind": "linked_to_closed_shop",
                "ref": closed_id,
                "detail": f"shares {', '.join(sorted(fields))} with closed shop {closed_id}",
                "data": {"fields": sorted(fields)},
            }
            for closed_id, fields in sorted(closed.items())
        ]
        prior = decided.get(sid)
        if prior is not None:
            new = sorted(set(closed) - seen_links.get(sid, set()))
            items.append(
                {
                    "kind": "new_evidence",
                    "ref": f"case {prior.case_id}",
                    "detail": f"new link to closed shop(s) {', '.join(new)} "
                    f"since case {prior.case_id} was {prior.status}",
                    "data": {"why": "new_link", "prior_case_id": int(prior.case_id), "prior_status": str(prior.status)},
                }
            )
        evidence[sid] = items
    reasons = {
        sid: "ban evasion: shares identifiers with closed shop(s) " + ", ".join(sorted(closed))
        for sid, closed in todo.items()
    }
    new_ids = bulk.allocate_ids(session, _CASES, len(todo))
    rows = [
        {
            "case_id": case_id,
            "shop_id": sid,
            "status": CaseStatus.OPEN.value,
            "version": 1,
            "origin": "ban_evasion",
            "reasons": [reasons[sid]],
            "evidence": evidence[sid],
            "opened_at": when,
            "updated_at": when,
        }
        for case_id, sid in zip(new_ids, sorted(todo), strict=True)
    ]
    bulk.insert_rows(session, _CASES, rows)
    created = list(zip(new_ids, sorted(todo), strict=True))
    case_ids = {shop_id: int(case_id) for case_id, shop_id in created}
    shops = {
        r.shop_id: r
        for r in session.execute(
            select(Shop.shop_id, Shop.shopkeeper_id, Shop.name).where(bulk.among(session, Shop.shop_id, list(case_ids)))
        )
    }
    who = ch if actor is None else tx.Change(session, actor, when)
    _open_effects(who, case_ids, shops, {}, "ban_evasion", when, evidence=evidence, reasons=reasons)
    if who is not ch:
        ch.absorb(who)
    report.opened = len(created)
    report.opened_case_ids = [cid for cid, _ in created]
    report.links = {sid: evidence[sid] for sid in sorted(todo)}
    return report
