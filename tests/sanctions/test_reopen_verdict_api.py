"""Issue 17 point 5, a new verdict as new evidence, through the real HTTP API on SQLite and PostgreSQL: a
shop whose case was dismissed is reopened by routing when the marketplace brings a counterfeit verdict
dated after that decision (and known by then), and the case records which verdict; an older verdict, a
genuine one, one made from the workflow's own decisions, or one dated after the routing reopens nothing."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from sanctions.storefront import import_marketplace
from sanctions.tx import utcnow
from tests.sanctions.api_support import Served, _orders, _shops, case_of, decide, scores, served
from tests.sanctions.conftest import SNAPSHOT, _frame, build_marketplace

__all__ = ["served"]  # the fixture


def test_a_counterfeit_verdict_after_a_dismissal_reopens_the_shop_once(served: Served) -> None:
    scorer, reviewer = served.client("scorer"), served.client("reviewer")
    sweep = {"S1": 0.9, "S2": 0.9}
    assert scorer.post("/v1/cases/routing", json=scores(sweep)).json()["opened"] == 2
    decide(reviewer, "S1", "dismiss")
    decide(reviewer, "S2", "dismiss")
    dismissed_at = utcnow()
    verdicts = [
        # S1: a test buy after the dismissal: new evidence
        ("V-S1-new", "S1", dismissed_at, "counterfeit", "test_buy"),
        # S2: nothing new: older than the decision, genuine, the workflow's own label, not known yet
        ("V-S2-old", "S2", SNAPSHOT - timedelta(days=5), "counterfeit", "brand_owner"),
        ("V-S2-genuine", "S2", dismissed_at, "genuine", "test_buy"),
        ("case2-ev9", "S2", dismissed_at, "counterfeit", "reviewer"),
        ("V-S2-future", "S2", dismissed_at + timedelta(days=30), "counterfeit", "test_buy"),
    ]
    frame = _frame(
        "verdicts",
        [
            {"verdict_id": v, "shop_id": s, "decided_at": at, "outcome": o, "evidence_kind": k}
            for v, s, at, o, k in verdicts
        ],
    )
    mp = dataclasses.replace(build_marketplace(_shops(), orders=_orders()), verdicts=frame)
    assert import_marketplace(served.engine, mp, detect_evasion=False).verdicts_added == 4  # not case2-ev9
    assert import_marketplace(served.engine, mp, detect_evasion=False).verdicts_added == 0  # idempotent

    routed = scorer.post("/v1/cases/routing", json=scores(sweep)).json()
    assert (routed["opened"], routed["reopened"], routed["kept_decided"]) == (1, 1, 1), routed
    s1 = case_of(reviewer, "S1")
    assert s1["status"] == "open"
    (new,) = [e for e in s1["evidence"] if e["kind"] == "new_evidence"]
    assert new["ref"] == "verdict V-S1-new"
    assert new["data"]["why"] == "new_verdict" and new["data"]["prior_status"] == "dismissed"
    assert new["data"]["evidence_kind"] == "test_buy"
    assert s1["events"][0]["reason"].startswith("reopened on new evidence: counterfeit verdict V-S1-new (test buy)")
    assert case_of(reviewer, "S2")["status"] == "dismissed"

    # the same routing again: nothing; decided again, the same verdict is no longer new
    again = scorer.post("/v1/cases/routing", json=scores(sweep)).json()
    assert (again["opened"], again["rescored"], again["unchanged"], again["kept_decided"]) == (0, 0, 1, 1), again
    decide(reviewer, "S1", "dismiss")
    after = scorer.post("/v1/cases/routing", json=scores(sweep)).json()
    assert (after["opened"], after["kept_decided"]) == (0, 2), after
