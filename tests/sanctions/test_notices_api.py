"""Issue 17, notices and claim links, through the real HTTP API on SQLite and PostgreSQL: every buyer a
sanction touches is told (ban and closure, proof-closures included) without the seller's personal
data; each claim's signed link confirms or disputes once; expired, forged and spent links are refused."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from sanctions import cases, notices
from sanctions.models import Claim, OutboxMessage
from sanctions.storefront import SHOP_COLUMNS
from sanctions.tx import utcnow
from tests.sanctions.api_support import PROOF, Served, decide, scores, seller, served
from tests.sanctions.conftest import shop_row

__all__ = ["served"]  # the fixture

#: the shopkeeper's personal values of shops S3, S4, E2 (shop_row's): none may reach a buyer
PERSONAL = ("owner_phone", "owner_email", "owner_address", "id_number_hash", "bank_account_hash", "device_id")


def buyer_notices(served: Served) -> list[dict[str, Any]]:
    with served.session() as s:
        rows = s.execute(
            select(OutboxMessage).where(OutboxMessage.kind == "notify_buyer").order_by(OutboxMessage.message_id)
        ).scalars()
        return [{"to": m.recipient, "topic": m.topic, **m.payload} for m in rows]


def test_every_affected_buyer_is_told_what_they_are_owed_and_how(served: Served) -> None:
    scorer, reviewer = served.client("scorer"), served.client("reviewer")
    scorer.post("/v1/cases/routing", json=scores({"S3": 0.9, "S4": 0.9, "E2": 0.9}))
    decide(reviewer, "S4", "ban")  # B1 and B2 bought there
    decide(reviewer, "S3", "close", evidence=PROOF)  # B5 bought there: no claim, told all the same
    decide(reviewer, "E2", "ban")  # B3
    with served.session() as s:
        cases.refuse_compensation(s, decide_case(served, "E2"), seller("E2"))

    sent = buyer_notices(served)
    by = {(n["to"], n["topic"], n["shop_id"]): n for n in sent}
    assert set(by) == {
        ("B1", "compensation_owed", "S4"),
        ("B2", "compensation_owed", "S4"),
        ("B5", "shop_closed", "S3"),
        ("B3", "compensation_owed", "E2"),
        ("B3", "shop_closed", "E2"),
    }
    ban = by[("B2", "compensation_owed", "S4")]
    assert ban["shop_name"] == "Shop S4 精品店" and ban["measure"] == "ban"
    assert ban["public_reason"].startswith("The shop is banned for suspected sale of counterfeit goods")
    assert ban["owed"] == {
        "claim_id": ban["claim_id"],
        "amount": 580.0,
        "refund": 80.0,
        "punitive": 500.0,
        "currency": "CNY",
    }
    assert (
        "confirm it with your link" in ban["how"] and ban["deadline_at"] and ban["link"].startswith("/v1/claim-links/")
    )
    proof = by[("B5", "shop_closed", "S3")]
    assert proof["public_reason"] == "The shop was closed: the sale of counterfeit goods was proven (test buy)."
    assert (proof["owed"], proof["link"], proof["orders"]) == (None, None, ["O5", "O6"])
    assert "order dispute" in proof["how"]
    refused = by[("B3", "shop_closed", "E2")]
    assert refused["public_reason"].startswith("The shop was closed: it refused to compensate")
    assert refused["owed"]["amount"] == 560.0 and refused["link"]
    # never the seller's personal data
    text = json.dumps(sent, ensure_ascii=False)
    for sid in ("S3", "S4", "E2"):
        row = shop_row(sid)
        assert all(str(row[f]) not in text for f in PERSONAL), sid
    assert set(PERSONAL) <= set(SHOP_COLUMNS)


def decide_case(served: Served, shop_id: str) -> int:
    reviewer = served.client("reviewer")
    listed = reviewer.get("/v1/cases", params={"shop_id": shop_id}).json()
    return int(max(c["case_id"] for c in listed))


def test_a_claim_link_confirms_or_disputes_once_and_refuses_clearly(served: Served) -> None:
    scorer, reviewer, public = served.client("scorer"), served.client("reviewer"), served.client()
    scorer.post("/v1/cases/routing", json=scores({"S4": 0.9}))
    decide(reviewer, "S4", "ban")
    links = {n["to"]: n["link"] for n in buyer_notices(served)}
    b1, b2 = links["B1"], links["B2"]

    first = public.get(b1).json()
    assert (first["status"], first["shop_name"], first["can_confirm"]) == ("owed", "Shop S4 精品店", False)
    assert "owner_phone" not in first
    early = public.post(f"{b1}/confirmation")
    assert early.status_code == 409 and "has not recorded a payment" in early.json()["message"]

    with served.session() as s:
        claims = {c.buyer_id: c.claim_id for c in s.execute(select(Claim)).scalars()}
        cases.record_payment(s, claims["B1"], seller("S4"), payment_ref="T-1")
        cases.record_payment(s, claims["B2"], seller("S4"), payment_ref="T-2")
    disputed = public.post(f"{b1}/dispute")
    assert disputed.status_code == 200 and disputed.json()["status"] == "disputed"
    assert public.post(f"{b1}/dispute").status_code == 409  # not paid again yet
    with served.session() as s:
        cases.record_payment(s, claims["B1"], seller("S4"), payment_ref="T-1b")
    assert public.post(f"{b1}/confirmation").json()["status"] == "confirmed"
    assert public.post(f"{b2}/confirmation").json()["case_status"] == "settled"  # the last one lifts the ban
    spent = public.post(f"{b1}/confirmation")
    assert spent.status_code == 409 and "already used" in spent.json()["message"]
    assert public.get("/v1/storefront/shops/S4").json()["state"] == "visible"

    # altered, expired, and a link of one buyer used for another's claim
    forged = public.get(b1[:-3] + ("AAA" if not b1.endswith("AAA") else "BBB"))
    assert forged.status_code == 404 and "not a valid claim link" in forged.json()["message"]
    with served.session() as s:
        old = notices.claim_link(s, claims["B2"], "B2", at=utcnow() - timedelta(days=notices.LINK_DAYS + 1))
        s.commit()
    expired = public.get(old)
    assert expired.status_code == 410 and "expired" in expired.json()["message"]
    with served.session() as s:
        other = notices.claim_link(s, claims["B2"], "B1")
        s.commit()
    assert public.get(other).status_code == 403


def test_a_legal_basis_discloses_personal_fields_only_for_the_cases_it_names(served: Served) -> None:
    scorer, reviewer, admin, public = (served.client(r) for r in ("scorer", "reviewer", "admin", None))
    scorer.post("/v1/cases/routing", json=scores({"S1": 0.9, "S2": 0.9}))
    named = decide(reviewer, "S1", "close", evidence=PROOF)["case_id"]
    decide(reviewer, "S2", "close", evidence=PROOF)
    refused = admin.post(
        "/v1/disclosure-policies", json={"name": "court", "personal_fields": ["owner_phone"], "legal_basis": "order"}
    )
    assert refused.status_code == 409 and "cases its legal basis is for" in refused.json()["message"]
    policy = {
        "name": "court-order-17",
        "personal_fields": ["owner_phone"],
        "legal_basis": "Court order (2026) Zhe 01 No. 17, against the keeper of S1",
        "case_ids": [named],
    }
    assert admin.post("/v1/disclosure-policies", json=policy).json()["case_ids"] == [named]
    second = served.client("admin2")  # four eyes: the policy and the entries are approved by another admin
    assert second.post("/v1/disclosure-policies/court-order-17/approval").status_code == 200
    proposed = admin.post("/v1/disclosures/proposals", json={"basis": "court order 17", "policy": "court-order-17"})
    assert len(proposed.json()["proposed"]) == 2, proposed.text
    batch = second.post("/v1/disclosures/approval", json={})
    assert len(batch.json()["published"]) == 2, batch.text
    entries = {e["shop_id"]: e for e in public.get("/v1/public/closed-shops").json()}
    assert entries["S1"]["personal"]["owner_phone"] == "138-S1" and entries["S1"]["policy"] == "court-order-17"
    assert set(entries["S2"]["personal"].values()) == {"***"} and entries["S2"]["policy"] == "default"
