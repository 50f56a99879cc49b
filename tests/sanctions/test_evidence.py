"""Evidence frozen at case open: the snapshot's content, its hash in the chain, what changed since."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from marketplace.schema import PERSONAL_FIELDS
from sanctions import cases
from sanctions.audit import canonical, verify_chain
from sanctions.evidence import compare
from sanctions.models import AuditEntry, EvidenceSnapshot
from sanctions.routing import route_scored
from sanctions.scored import ScoredShop
from sanctions.storefront import import_marketplace
from sanctions.workflow import Actor, Role
from tests.sanctions.conftest import SNAPSHOT, build_marketplace, shop_row
from tests.sanctions.test_paths import TEST_BUY


def _opened(session: Session) -> int:
    import_marketplace(session, build_marketplace([shop_row("S1"), shop_row("S2")]))
    s = ScoredShop(
        "S1", 0.91, "suspected", "dajia-shop-risk", "7", ["12 complaints"], 0.8, features={"price_ratio": 0.2}
    )
    return route_scored(session, [s], now=SNAPSHOT).opened_case_ids[0]


def test_the_snapshot_freezes_shop_listings_score_and_is_hashed_into_the_chain(session: Session) -> None:
    case_id = _opened(session)
    snap = session.get(EvidenceSnapshot, case_id)
    assert snap is not None
    content = dict(snap.content)
    assert content["shop"]["name"] == "Shop S1 精品店" and content["shop"]["business_registration"] == "BR-S1"
    assert content["shop"]["linkage"] == {} and not set(PERSONAL_FIELDS) & set(content["shop"])  # no personal field
    assert [(x["listing_id"], x["title"], x["price"]) for x in content["listings"]] == [
        ("S1-L0", "Luxury bag 高仿 0", 100.0),
        ("S1-L1", "Luxury bag 高仿 1", 101.0),
    ]
    assert content["score"] == {
        "score": 0.91,
        "tier": "suspected",
        "threshold": 0.8,
        "model_name": "dajia-shop-risk",
        "model_version": "7",
        "reasons": ["12 complaints"],
        "features": {"price_ratio": 0.2},
    }
    assert snap.content_hash == hashlib.sha256(canonical(content).encode()).hexdigest()
    (payload,) = session.execute(select(AuditEntry.payload).where(AuditEntry.action == "case.open")).scalars()
    assert json.loads(payload)["snapshot"] == snap.content_hash
    assert verify_chain(session).ok


def test_compare_marks_what_changed_since_opening(session: Session) -> None:
    case_id = _opened(session)
    assert compare(session, case_id).changes == []  # type: ignore[union-attr]
    route_scored(session, [ScoredShop("S1", 0.97, "suspected", "dajia-shop-risk", "8", [], 0.8)], now=SNAPSHOT)
    cases.decide(
        session, case_id, "close", Actor("rev-1", Role.REVIEWER), reason="p", evidence=[TEST_BUY], now=SNAPSHOT
    )
    cmp = compare(session, case_id)
    assert cmp is not None and cmp.hash_ok
    got = {(c.what, c.field, c.then, c.now) for c in cmp.changes}
    assert ("score", "score", 0.91, 0.97) in got and ("score", "model_version", "7", "8") in got
    assert ("shop", "status", "active", "closed") in got
    assert ("listing S1-L0", "withdrawn", False, True) in got


def test_editing_a_snapshots_title_is_caught(session: Session, engine: Engine, db_url: str) -> None:
    case_id = _opened(session)
    seq = session.execute(select(AuditEntry.seq).where(AuditEntry.action == "case.open")).scalar_one()
    session.rollback()
    snap = session.get(EvidenceSnapshot, case_id)
    assert snap is not None
    content = dict(snap.content)
    content["listings"][0]["title"] = "Genuine bag (edited)"
    session.rollback()
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE evidence_snapshots SET content = :c WHERE case_id = :k"),
            {"c": json.dumps(content), "k": case_id},
        )
    env = {**os.environ, "DATABASE_URL": db_url}
    proc = subprocess.run(
        [sys.executable, "-m", "dajia.cli", "audit", "verify"], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2, proc.stdout
    assert f"audit chain broken at entry {seq}: " in proc.stderr
    assert f"evidence_snapshots rows of case {case_id}" in proc.stderr
    assert compare(session, case_id).hash_ok is False  # type: ignore[union-attr]
