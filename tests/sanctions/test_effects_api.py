"""Issue 17 through the real HTTP API (uvicorn on loopback), on SQLite and on PostgreSQL: re-running
routing is a no-op, every closure checks ban evasion, the storefront projection and its feed."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from dajia.crackdown import store_footprint
from sanctions import cases
from sanctions.models import Claim
from sanctions.routing import detect_ban_evasion
from sanctions.workflow import Actor, Role
from tests.sanctions.api_support import PROOF, SNAPSHOT, Served, case_of, decide, scores, seller, served

__all__ = ["served"]  # the fixture


def test_rerouting_the_same_scores_changes_nothing_and_decided_shops_reopen_only_on_new_evidence(
    served: Served,
) -> None:
    scorer, reviewer = served.client("scorer"), served.client("reviewer")
    sweep = {"S1": 0.85, "S2": 0.9, "S3": 0.95, "S4": 0.92, "S5": 0.88, "S6": 0.2}
    first = scorer.post("/v1/cases/routing", json=scores(sweep))
    assert first.status_code == 200, first.text
    assert (first.json()["opened"], first.json()["below_tier"]) == (5, 1)
    decide(reviewer, "S1", "dismiss")
    assert decide(reviewer, "S2", "ban")["new_status"] == "banned"  # B1 is owed
    decide(reviewer, "S3", "close", evidence=PROOF)
    decide(reviewer, "S4", "ban")
    decide(reviewer, "S5", "close", evidence=PROOF)
    with served.session() as s:  # S2's buyer is paid and confirms: settled; S5's seller appeals
        (claim,) = s.execute(select(Claim).where(Claim.shop_id == "S2")).scalars()
        cases.record_payment(s, claim.claim_id, seller("S2"), payment_ref="T-1")
        cases.confirm_claim(s, claim.claim_id, Actor("B1", Role.CONSUMER))
        cases.appeal(s, case_of(reviewer, "S5")["case_id"], seller("S5"), reason="genuine stock")
    r = served.client("reviewer2").post(  # four eyes: not the reviewer who closed it
        f"/v1/cases/{case_of(reviewer, 'S5')['case_id']}/appeal-decisions", json={"uphold": True, "reason": "mix-up"}
    )
    assert r.json()["new_status"] == "reversed"
    assert [case_of(reviewer, s)["status"] for s in ("S1", "S2", "S3", "S4", "S5")] == [
        "dismissed",
        "settled",
        "closed",
        "banned",
        "reversed",
    ]

    with served.session() as s:
        before = store_footprint(s)
    for _ in range(2):  # the same scores, twice more: nothing opens, nothing freezes, nothing is written
        again = scorer.post("/v1/cases/routing", json=scores(sweep)).json()
        assert (again["opened"], again["rescored"], again["reopened"]) == (0, 0, 0), again
        assert (again["kept_decided"], again["skipped_closed"], again["unchanged"]) == (3, 1, 1), again
        with served.session() as s:
            assert store_footprint(s) == before

    # a little noise on the scores is no new evidence; a score that rose past the decided one by the margin is
    noisy = scorer.post("/v1/cases/routing", json=scores({"S1": 0.87, "S2": 0.91}, version="8")).json()
    assert (noisy["opened"], noisy["kept_decided"]) == (0, 2)
    rose = scorer.post("/v1/cases/routing", json=scores({"S1": 0.97, "S5": 0.95}, version="8")).json()
    assert (rose["opened"], rose["reopened"]) == (2, 2)
    s1 = case_of(reviewer, "S1")
    assert s1["status"] == "open"
    (new,) = [e for e in s1["evidence"] if e["kind"] == "new_evidence"]
    assert new["data"]["why"] == "score_rose" and new["data"]["prior_status"] == "dismissed"
    assert (new["data"]["prior_score"], new["data"]["score"]) == (0.85, 0.97)
    assert s1["events"][0]["reason"].startswith("reopened on new evidence: score rose from 0.8500 to 0.9700")
    assert case_of(reviewer, "S5")["evidence"][-1]["data"]["prior_status"] == "reversed"


def test_every_closure_checks_ban_evasion_in_its_own_transaction(served: Served) -> None:
    scorer, reviewer = served.client("scorer"), served.client("reviewer")
    routed = scorer.post("/v1/cases/routing", json=scores({"E1": 0.9, "E2": 0.9, "E3": 0.9, "E4": 0.9})).json()
    assert routed["opened"] == 4

    def evasion_case(shop_id: str) -> dict[str, Any] | None:
        listed = reviewer.get("/v1/cases", params={"shop_id": shop_id}).json()
        found = [c for c in listed if c["origin"] == "ban_evasion"]
        return found[0] if found else None

    # closure on proof (through the API)
    decide(reviewer, "E1", "close", evidence=PROOF)
    e1x = evasion_case("E1x")
    assert e1x is not None and e1x["status"] == "open"
    assert [e["ref"] for e in e1x["evidence"]] == ["E1"] and e1x["evidence"][0]["data"]["fields"] == ["owner_phone"]
    # refusal to compensate (the seller)
    decide(reviewer, "E2", "ban")
    with served.session() as s:
        cases.refuse_compensation(s, case_of(reviewer, "E2")["case_id"], seller("E2"))
    assert evasion_case("E2x") is not None
    # escalation past the deadline (the deadline job)
    decide(reviewer, "E3", "ban")
    with served.session() as s:
        (done,) = cases.escalate_overdue(s, now=SNAPSHOT + timedelta(days=400))
    assert done.new_status == "closed" and evasion_case("E3x") is not None
    # closing a ban-evasion case is a closure too: E1y, linked to E1x, is caught
    decide(reviewer, "E1x", "close", evidence=PROOF)
    e1y = evasion_case("E1y")
    assert e1y is not None and [e["ref"] for e in e1y["evidence"]] == ["E1x"]
    # opened by the system in the closing transaction, audited, the seller told
    events = reviewer.get(f"/v1/cases/{e1y['case_id']}").json()["events"]
    assert [(e["action"], e["actor_id"]) for e in events] == [("open", "system")]
    # so a later sweep has nothing left to find, and a dismissed link is not reopened
    with served.session() as s:
        assert detect_ban_evasion(s).opened == 0
    decide(reviewer, "E1y", "dismiss")
    with served.session() as s:
        assert detect_ban_evasion(s).opened == 0


def test_the_storefront_follows_every_measure_and_its_feed_is_ordered_and_resumable(served: Served) -> None:
    scorer, reviewer, public = served.client("scorer"), served.client("reviewer"), served.client()
    assert public.get("/v1/storefront/shops/S4").json()["state"] == "visible"
    scorer.post("/v1/cases/routing", json=scores({"S3": 0.9, "S4": 0.9, "S5": 0.9}))
    s4 = public.get("/v1/storefront/shops/S4").json()
    assert (s4["state"], s4["purchasable"], s4["listings_frozen"], len(s4["listings"])) == ("frozen", True, True, 2)
    decide(reviewer, "S4", "ban")
    s4 = public.get("/v1/storefront/shops/S4").json()
    assert (s4["state"], s4["purchasable"], s4["listings"]) == ("not_purchasable", False, [])
    decide(reviewer, "S3", "close", evidence=PROOF)
    assert public.get("/v1/storefront/shops/S3").status_code == 404
    decide(reviewer, "S5", "dismiss")
    assert public.get("/v1/storefront/shops/S5").json()["state"] == "visible"
    with served.session() as s:
        cid = case_of(reviewer, "S3")["case_id"]
        cases.appeal(s, cid, seller("S3"), reason="genuine")
    appeal_reviewer = served.client("reviewer2")  # four eyes: not the reviewer who closed it
    appeal_reviewer.post(f"/v1/cases/{cid}/appeal-decisions", json={"uphold": True, "reason": "lab error"})
    s3 = public.get("/v1/storefront/shops/S3").json()
    assert (s3["state"], s3["purchasable"], len(s3["listings"])) == ("visible", True, 2)

    whole = public.get("/v1/storefront/changes").json()
    got = [(c["shop_id"], c["state"], c["action"]) for c in whole["changes"]]
    assert got == [
        ("S3", "frozen", "opened"),
        ("S4", "frozen", "opened"),
        ("S5", "frozen", "opened"),
        ("S4", "not_purchasable", "banned"),
        ("S3", "removed", "closed"),
        ("S5", "visible", "dismissed"),
        ("S3", "visible", "reversed"),
    ]
    assert all(c["case_id"] is not None and c["at"] for c in whole["changes"])
    cursors = [int(c["cursor"]) for c in whole["changes"]]
    assert cursors == sorted(cursors)
    # resumable: pages of 3 from the start give the same changes, and the end says where to wait
    paged: list[dict[str, Any]] = []
    after = ""
    while True:
        page = public.get("/v1/storefront/changes", params={"after": after, "limit": 3}).json()
        paged += page["changes"]
        if not page["changes"]:
            break
        after = page["next"]
    assert paged == whole["changes"] and after == whole["next"]
    # re-routing the same scores publishes no change
    scorer.post("/v1/cases/routing", json=scores({"S3": 0.9, "S4": 0.9, "S5": 0.9}))
    assert public.get("/v1/storefront/changes", params={"after": whole["next"]}).json()["changes"] == []
    bad = public.get("/v1/storefront/changes", params={"after": "yesterday"})
    assert bad.status_code == 400 and "after" in bad.text


def test_a_reversed_shop_appears_in_no_public_output_except_its_correction(served: Served) -> None:
    scorer, reviewer, admin, public = (served.client(r) for r in ("scorer", "reviewer", "admin", None))
    scorer.post("/v1/cases/routing", json=scores({"S1": 0.9, "S2": 0.9}))
    cleared = decide(reviewer, "S1", "close", evidence=PROOF)["case_id"]
    decide(reviewer, "S2", "close", evidence=PROOF)
    campaign = reviewer.post("/v1/campaigns", json={"title": "打假 2026"}).json()["campaign_id"]
    admin.post(f"/v1/campaigns/{campaign}/approval")
    admin.post(f"/v1/campaigns/{campaign}/publication")
    admin.post("/v1/disclosures/proposals", json={"basis": "board decision 7"})
    assert served.client("admin2").post("/v1/disclosures/approval", json={}).status_code == 200

    def outputs() -> dict[str, str]:
        return {
            "announcements": public.get("/v1/public/announcements").text,
            "announcement": public.get(f"/v1/public/announcements/{campaign}").text,
            "closed-shops": public.get("/v1/public/closed-shops").text,
            "corrections": public.get("/v1/public/corrections").text,
        }

    def names(text: str, shop: str) -> bool:
        return f'"{shop}"' in text or f"Shop {shop} " in text or f"({shop}," in text

    before = outputs()
    assert all(names(before[k], "S1") for k in ("announcements", "announcement", "closed-shops"))
    assert before["corrections"] == "[]"
    with served.session() as s:
        cases.appeal(s, cleared, seller("S1"), reason="the test buy was of another shop's parcel")
    upheld = served.client("reviewer2").post(  # four eyes: not the reviewer who closed it
        f"/v1/cases/{cleared}/appeal-decisions", json={"uphold": True, "reason": "parcel mix-up"}
    )
    assert upheld.json()["disclosures_withdrawn"] == 1

    after = outputs()
    for name in ("announcements", "announcement", "closed-shops"):
        assert not names(after[name], "S1"), name  # gone from every public output...
        assert names(after[name], "S2"), name  # ...while the other closure stands
    (correction,) = public.get("/v1/public/corrections").json()  # ...except its correction
    assert correction["shop_id"] == "S1" and correction["campaign_ids"] == [campaign]
    assert "reversed on appeal" in correction["text"]
    announced = public.get(f"/v1/public/announcements/{campaign}").json()
    assert announced["announcement"]["totals"]["shops_closed"] == 1
    assert announced["announcement"]["measures_reversed"] == 1 and "Corrected" in announced["html"]
    # the storefront feed carries the reversal: the shop is visible again
    last = public.get("/v1/storefront/changes").json()["changes"][-1]
    assert (last["shop_id"], last["state"], last["action"]) == ("S1", "visible", "reversed")
