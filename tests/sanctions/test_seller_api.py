"""Issue 17 point 3, the seller's side, through the real HTTP API on SQLite and PostgreSQL: the shop's
signed seller link (carried by every notice to the seller) shows its cases and the claims it owes; the
shopkeeper pays, refuses, and appeals with a statement and files (hash stored, size and type limits,
served only as downloads); a reviewer sees the statement and the files next to the appeal form.
Forged, expired and other-shop links are refused as claim links are."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

import httpx
from sqlalchemy import select

from sanctions import notices
from sanctions.models import AppealFile, AuditEntry, Claim, OutboxMessage
from sanctions.tx import utcnow
from tests.sanctions.api_support import Served, decide, scores, served

__all__ = ["served"]  # the fixture

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64 + b"receipt of genuine stock"


def seller_link(served: Served, shop_id: str, topic: str) -> str:
    """The link in the latest notice of ``topic`` to the keeper of ``shop_id``."""
    with served.session() as s:
        payloads = s.execute(
            select(OutboxMessage.payload)
            .where(
                OutboxMessage.kind == "notify_seller",
                OutboxMessage.recipient == f"keeper-{shop_id}",
                OutboxMessage.topic == topic,
            )
            .order_by(OutboxMessage.message_id)
        ).scalars()
        link = str(list(payloads)[-1]["link"])
    assert link.startswith(notices.SELLER_LINK_PATH)
    return link


def test_a_seller_sees_what_it_owes_pays_and_appeals_with_a_file(served: Served) -> None:
    scorer, reviewer, public = served.client("scorer"), served.client("reviewer"), served.client()
    scorer.post("/v1/cases/routing", json=scores({"S4": 0.9, "S2": 0.9}))
    opened = seller_link(served, "S4", "case_opened")  # the notice of the opening carries the link already
    first = public.get(opened).json()
    assert (first["shop_id"], first["shop_status"], first["owed"]) == ("S4", "active", 0.0)
    (case,) = first["cases"]
    assert (case["status"], case["can_appeal"], case["can_refuse"], case["claims"]) == ("open", False, False, [])
    assert "owner_phone" not in str(first)

    decide(reviewer, "S4", "ban")  # buyers B1 (50 yuan) and B2 (80 yuan) get claims
    decide(reviewer, "S2", "ban")  # another shop: its claim is not S4's to pay
    link = seller_link(served, "S4", "shop_banned")
    view = public.get(link).json()
    (case,) = view["cases"]
    case_id = case["case_id"]
    assert case["status"] == "banned" and case["can_appeal"] and case["can_refuse"]
    assert case["public_reason"].startswith("The shop is banned")
    owed = {c["buyer_id"]: c for c in case["claims"]}
    assert {b: c["amount"] for b, c in owed.items()} == {"B1": 550.0, "B2": 580.0}
    assert view["owed"] == 1130.0 and all(c["can_pay"] for c in owed.values())

    # pay one claim; paying it again is the workflow's 409
    b1 = owed["B1"]["claim_id"]
    paid = public.post(f"{link}/claims/{b1}/payment", json={"payment_ref": "WX-1"})
    assert paid.status_code == 200, paid.text
    assert paid.json()["status"] == "paid"
    again = public.post(f"{link}/claims/{b1}/payment", json={"payment_ref": "WX-1"})
    assert again.status_code == 409, again.text
    after = public.get(link).json()
    assert after["owed"] == 580.0
    with served.session() as s:
        other = s.execute(select(Claim.claim_id).where(Claim.shop_id == "S2")).scalar_one()
        pay_audit = s.execute(select(AuditEntry).where(AuditEntry.action == "claim.pay")).scalars().one()
        assert pay_audit.actor_id == "keeper-S4"  # the actor is the seller
    not_mine = public.post(f"{link}/claims/{other}/payment", json={"payment_ref": "X"})
    assert not_mine.status_code == 403 and "another shop's" in not_mine.json()["message"]
    assert public.post(f"{link}/claims/{other}/payment", json={"payment_ref": ""}).status_code == 422

    # files refused before the appeal: type, content not matching the type, size; nothing is written
    url = f"{link}/cases/{case_id}/appeal"
    html = public.post(url, data={"statement": "x"}, files={"files": ("a.html", b"<script>", "text/html")})
    assert html.status_code == 415 and "'text/html' is not accepted" in html.json()["message"], html.text
    fake = public.post(url, data={"statement": "x"}, files={"files": ("a.png", b"<html>", "image/png")})
    assert fake.status_code == 415 and "content is not image/png" in fake.json()["message"]
    big = public.post(
        url, data={"statement": "x"}, files={"files": ("big.txt", b"a" * (6 * 1024 * 1024), "text/plain")}
    )
    assert big.status_code == 422 and "over the limit" in big.json()["message"], big.text
    from serving.config import ServeOptions

    over = ServeOptions().max_body_bytes + 1024 * 1024  # past the service's body limit: the middleware's 413
    huge = public.post(url, data={"statement": "x"}, files={"files": ("huge.txt", b"a" * over, "text/plain")})
    assert huge.status_code == 413, huge.text
    assert public.post(url, data={"statement": ""}).status_code == 422
    assert public.get(link).json()["cases"][0]["status"] == "banned"

    # the appeal: a statement and a file, stored with its hash
    statement = "The bags are genuine: we bought them from the brand's distributor. 发票 attached. <b>not bold</b>"
    filed = public.post(
        url,
        data={"statement": statement},
        files=[("files", ("invoice.png", PNG, "image/png")), ("files", ("note.txt", b"batch 2026-05", "text/plain"))],
    )
    assert filed.status_code == 200, filed.text
    assert (filed.json()["old_status"], filed.json()["new_status"]) == ("banned", "appealed_ban")
    assert public.post(url, data={"statement": statement}).status_code == 409  # appealed already
    with served.session() as s:
        stored = s.execute(select(AppealFile).order_by(AppealFile.file_id)).scalars().all()
        assert [(f.filename, f.size, f.sha256) for f in stored] == [
            ("invoice.png", len(PNG), hashlib.sha256(PNG).hexdigest()),
            ("note.txt", 13, hashlib.sha256(b"batch 2026-05").hexdigest()),
        ]
        audit = s.execute(select(AuditEntry).where(AuditEntry.action == "case.appeal")).scalars().one()
        assert audit.actor_id == "keeper-S4"
        assert hashlib.sha256(PNG).hexdigest() in str(audit.payload)

    # a reviewer sees the statement and the files; downloads are attachments, never rendered
    seen = reviewer.get(f"/v1/cases/{case_id}").json()
    assert [e["reason"] for e in seen["events"] if e["action"] == "appeal"] == [statement]
    files = seen["appeal_files"]
    assert [f["filename"] for f in files] == ["invoice.png", "note.txt"]
    for got in (
        reviewer.get(f"/v1/cases/{case_id}/appeal-files/{files[0]['file_id']}"),
        public.get(f"{link}/cases/{case_id}/appeal-files/{files[0]['file_id']}"),
    ):
        assert got.status_code == 200 and got.content == PNG
        assert got.headers["content-disposition"] == 'attachment; filename="invoice.png"'
        assert got.headers["x-content-type-options"] == "nosniff"
        assert got.headers["content-type"] == "application/octet-stream"
        assert got.headers["x-content-sha256"] == hashlib.sha256(PNG).hexdigest()
    assert public.get(f"/v1/cases/{case_id}/appeal-files/{files[0]['file_id']}").status_code == 401
    page = console_case_page(served, case_id)
    statement_block = page.split('id="appeal-statement"', 1)[1].split("</blockquote>", 1)[0]
    assert "The bags are genuine" in statement_block and "&lt;b&gt;not bold&lt;/b&gt;" in statement_block
    assert f"/console/cases/{case_id}/appeal-files/{files[0]['file_id']}" in statement_block
    assert 'action="/console/cases/' in page.split('id="appeal-statement"', 1)[1]  # the appeal form follows


def console_case_page(served: Served, case_id: int) -> str:
    """The console's case page as a signed-in reviewer sees it."""
    with httpx.Client(base_url=served.base_url, timeout=60) as c:
        form = c.get("/console/login").text
        token = re.search(r'name="csrf_token" value="([^"]+)"', form)
        assert token is not None
        r = c.post(
            "/console/login",
            data={
                "csrf_token": token.group(1),
                "api_key": served.keys["reviewer2"],
                "next": f"/console/cases/{case_id}",
            },
            headers={"Origin": served.base_url},
            follow_redirects=True,
        )
        assert r.status_code == 200, r.text[:500]
        return r.text


def test_a_seller_refuses_and_links_are_refused_clearly(served: Served) -> None:
    scorer, reviewer, public = served.client("scorer"), served.client("reviewer"), served.client()
    scorer.post("/v1/cases/routing", json=scores({"E2": 0.9, "S4": 0.9}))
    decide(reviewer, "E2", "ban")
    decide(reviewer, "S4", "ban")
    link, s4 = seller_link(served, "E2", "shop_banned"), seller_link(served, "S4", "shop_banned")
    e2_case = public.get(link).json()["cases"][0]["case_id"]
    s4_case = public.get(s4).json()["cases"][0]["case_id"]

    other = public.post(f"{s4}/cases/{e2_case}/refusal", json={})
    assert other.status_code == 403 and "another shop's" in other.json()["message"]
    refused = public.post(f"{link}/cases/{e2_case}/refusal", json={"reason": "we will not pay"})
    assert refused.status_code == 200, refused.text
    assert (refused.json()["new_status"], refused.json()["shop_status"]) == ("closed", "closed")
    assert public.post(f"{link}/cases/{e2_case}/refusal", json={}).status_code == 409
    closed = public.get(link).json()
    assert closed["shop_status"] == "closed" and closed["cases"][0]["can_appeal"]  # a closure may be appealed
    assert "refused to compensate" in closed["cases"][0]["public_reason"]
    assert public.get("/v1/storefront/shops/E2").status_code == 404

    forged = public.get(link[:-3] + ("AAA" if not link.endswith("AAA") else "BBB"))
    assert forged.status_code == 404 and "not a valid seller link" in forged.json()["message"]
    with served.session() as s:
        old = notices.seller_link(s, "S4", "keeper-S4", at=utcnow() - timedelta(days=notices.SELLER_LINK_DAYS + 1))
        wrong_keeper = notices.seller_link(s, "S4", "keeper-E2")
        claim_id = s.execute(select(Claim.claim_id).where(Claim.shop_id == "S4")).scalars().first()
        assert claim_id is not None
        claim_link = notices.claim_link(s, claim_id, "B1")
        s.commit()
    expired = public.get(old)
    assert expired.status_code == 410 and "expired" in expired.json()["message"]
    assert public.get(wrong_keeper).status_code == 403
    as_seller = public.get(notices.SELLER_LINK_PATH + claim_link.removeprefix(notices.LINK_PATH))
    assert as_seller.status_code == 404  # a claim link is no seller link
    assert public.get(f"{s4}/cases/{s4_case}/appeal-files/1").status_code == 404
    with_file = public.post(
        f"{old}/cases/{s4_case}/appeal",
        data={"statement": "x"},
        files={"files": ("a.html", b"<script>", "text/html")},
    )
    assert with_file.status_code == 410  # the link is checked before the files


def test_the_seller_page_refuses_a_form_from_another_site(served: Served) -> None:
    served.client("scorer").post("/v1/cases/routing", json=scores({"S4": 0.9}))
    decide(served.client("reviewer"), "S4", "ban")
    token = seller_link(served, "S4", "shop_banned").removeprefix(notices.SELLER_LINK_PATH)
    public = served.client()
    page = public.get(f"/seller/{token}")
    assert page.status_code == 200 and "<script" not in page.text
    assert "script-src" not in page.headers["content-security-policy"]
    assert page.headers["content-security-policy"].startswith("default-src 'none'")
    claim_id = int(re.findall(r'name="claim_id" value="(\d+)"', page.text)[0])
    cross = public.post(
        f"/seller/{token}",
        data={"action": "pay", "claim_id": str(claim_id), "payment_ref": "X"},
        headers={"Origin": "https://evil.example"},
    )
    assert cross.status_code == 403 and "another site" in cross.text
    with served.session() as s:
        assert s.execute(select(Claim.status).where(Claim.claim_id == claim_id)).scalar_one() == "owed"
