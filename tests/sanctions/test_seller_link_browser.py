"""A shopkeeper opens its seller link in Chromium (real browser, real server) on a phone and a desktop:
sees what it owes, records a payment, files an appeal with a statement and a file; then a reviewer finds
the statement and the file beside the appeal form in the console. Screenshots at 390 and 1440 px."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from sqlalchemy import select

from sanctions import notices
from sanctions.models import AppealFile, Claim
from tests.console.conftest import browser
from tests.sanctions.api_support import Served, decide, scores, served
from tests.sanctions.test_seller_api import PNG, seller_link

__all__ = ["browser", "served"]  # the fixtures

OUTPUT = Path(__file__).resolve().parents[2] / "test-output" / "seller"


def shot(page: Any, name: str) -> None:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(OUTPUT / f"{name}.png"), full_page=True)


def test_seller_pays_and_appeals_through_the_page_and_a_reviewer_sees_the_statement(
    served: Served, browser: Any, tmp_path: Path
) -> None:
    served.client("scorer").post("/v1/cases/routing", json=scores({"S4": 0.9}))
    decide(served.client("reviewer"), "S4", "ban")
    token = seller_link(served, "S4", "shop_banned").removeprefix(notices.SELLER_LINK_PATH)
    page_url = f"{served.base_url}{notices.SELLER_PAGE_PATH}{token}"
    with served.session() as s:
        claims = {c.buyer_id: c.claim_id for c in s.execute(select(Claim)).scalars()}
    invoice = tmp_path / "invoice.png"
    invoice.write_bytes(PNG)
    statement = "Our bags are genuine: bought from the brand's distributor, invoice attached. <i>really</i>"

    for width in (1440, 390):
        ctx = browser.new_context(viewport={"width": width, "height": 900})
        try:
            page = ctx.new_page()
            page.set_default_timeout(15_000)
            page.goto(page_url)
            assert page.locator("#shop").inner_text() == "Shop S4 精品店 (S4)"
            assert page.evaluate("document.documentElement.scrollWidth") <= width, "the page is wider than the screen"
            assert "owner" not in page.content() and page.locator("script").count() == 0
            if width == 1440:
                assert page.locator("#owed").inner_text() == "1130.00 yuan"
                shot(page, "seller-owed-1440")
                page.locator(f"#ref-{claims['B1']}").fill("WX-2026-0042")
                with page.expect_navigation():
                    page.locator(f"#pay-{claims['B1']}").click()
                assert "Payment of claim" in page.locator("#message").inner_text()
                assert page.locator("#owed").inner_text() == "580.00 yuan"
                case = page.locator("section.case").first
                case.locator("textarea").fill(statement)
                case.locator("input[type=file]").set_input_files(str(invoice))
                with page.expect_navigation():
                    case.locator("button", has_text="File the appeal").click()
                assert "Your appeal of case" in page.locator("#message").inner_text()
                assert statement in page.locator("blockquote.appeal-statement").inner_text()
                with page.expect_download() as dl:
                    page.locator("ul.appeal-files a").first.click()
                saved = tmp_path / "back.png"
                dl.value.save_as(saved)
                assert saved.read_bytes() == PNG and dl.value.suggested_filename == "invoice.png"
                shot(page, "seller-appealed-1440")
            else:
                assert page.locator(".status").first.inner_text() == "appealed ban"
                shot(page, "seller-appealed-390")
        finally:
            ctx.close()
    with served.session() as s:
        (stored,) = s.execute(select(AppealFile)).scalars()
        assert stored.sha256 == hashlib.sha256(PNG).hexdigest()
        case_id = stored.case_id

    # a second reviewer (not the one who banned) reads the statement beside the appeal form
    ctx = browser.new_context(viewport={"width": 1440, "height": 900})
    try:
        page = ctx.new_page()
        page.set_default_timeout(15_000)
        page.goto(f"{served.base_url}/console/login")
        page.get_by_label("API key").fill(served.keys["reviewer2"])
        with page.expect_navigation():
            page.get_by_role("button", name="Sign in").click()
        page.goto(f"{served.base_url}/console/cases/{case_id}")
        block = page.locator("#appeal-statement")
        assert statement in block.inner_text()
        assert page.locator("#appeal-files a").inner_text() == "invoice.png"
        assert page.locator("section.decide form").count() >= 1
        block.scroll_into_view_if_needed()
        shot(page, "console-appeal-1440")
    finally:
        ctx.close()
