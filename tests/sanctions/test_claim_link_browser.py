"""A consumer opens their claim link in Chromium (real browser, real server): sees what they are owed,
confirms receipt; the same link opened earlier in another tab is refused with a sentence that says why."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from sanctions import cases
from sanctions.models import Claim, OutboxMessage
from tests.console.conftest import browser
from tests.sanctions.api_support import Served, decide, scores, seller, served

__all__ = ["browser", "served"]  # the fixtures


def test_consumer_confirms_through_the_link_page_and_a_second_use_is_refused(served: Served, browser: Any) -> None:
    served.client("scorer").post("/v1/cases/routing", json=scores({"S4": 0.9}))
    decide(served.client("reviewer"), "S4", "ban")
    with served.session() as s:
        (notice,) = s.execute(
            select(OutboxMessage.payload).where(
                OutboxMessage.recipient == "B2", OutboxMessage.topic == "compensation_owed"
            )
        ).scalars()
        claim_id = s.execute(select(Claim.claim_id).where(Claim.buyer_id == "B2")).scalar_one()
        s.rollback()
        cases.record_payment(s, claim_id, seller("S4"), payment_ref="WX-2026-0042")
    page_url = served.base_url + "/claim/" + str(notice["link"]).removeprefix("/v1/claim-links/")

    ctx = browser.new_context()
    try:
        mine, stale = ctx.new_page(), ctx.new_page()
        for p in (mine, stale):
            p.set_default_timeout(15_000)
            p.goto(page_url)
        assert mine.locator("#shop").inner_text() == "Shop S4 精品店 (S4)"
        assert mine.locator("#amount").inner_text().startswith("580.00 yuan")
        assert mine.locator("#status").inner_text() == "paid"
        assert "WX-2026-0042" in mine.content() and "owner" not in mine.content()
        with mine.expect_navigation():
            mine.locator("#confirm").click()
        assert mine.locator("#message").inner_text() == "Thank you: your confirmation is recorded."
        assert mine.locator("#status").inner_text() == "confirmed"
        assert mine.locator("#confirm").count() == 0
        # the other tab still shows the button: the link is spent, and the page says so
        with stale.expect_navigation() as nav:
            stale.locator("#confirm").click()
        assert nav.value is not None and nav.value.status == 409
        assert "this link was already used" in stale.locator("#error").inner_text()
    finally:
        ctx.close()
    with served.session() as s:
        assert s.execute(select(Claim.status).where(Claim.claim_id == claim_id)).scalar_one() == "confirmed"
