"""The reviewer console in a real browser (Debian's Chromium through Playwright) on a real server.

Each test checks what a person sees AND what the database then holds.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from tests.console.conftest import Console, screenshot, sign_in

pytestmark = pytest.mark.browser


def case_of(console: Console, shop_id: str) -> tuple[int, str, int]:
    engine = console.engine()
    with engine.connect() as conn:
        row = conn.execute(
            sa.text("select case_id, status, version from cases where shop_id = :s order by case_id desc"),
            {"s": shop_id},
        ).first()
    engine.dispose()
    assert row is not None
    return int(row[0]), str(row[1]), int(row[2])


def events_of(console: Console, case_id: int) -> list[Any]:
    engine = console.engine()
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "select action, actor_id, role, reason, new_status from case_events "
                "where case_id = :c order by event_id"
            ),
            {"c": case_id},
        ).all()
    engine.dispose()
    return list(rows)


def audit_entries(console: Console, entity_id: str, action: str) -> list[Any]:
    engine = console.engine()
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("select seq, actor_id, payload from audit_log where entity_id = :e and action = :a"),
            {"e": entity_id, "a": action},
        ).all()
    engine.dispose()
    return list(rows)


def test_reviewer_opens_top_case_reads_reasons_and_decides(console: Console, page_for: Any) -> None:
    from core.db import session_factory
    from sanctions.audit import verify_chain

    page = page_for("reviewer")
    assert page.url.endswith("/console/queue"), page.content()
    assert page.get_by_role("heading", name="Review queue").is_visible()
    top = console.scored[0]
    case_id, status, version = case_of(console, top.shop_id)
    assert (status, version) == ("open", 1)
    first = page.locator("table.queue tbody tr").first
    assert first.locator("td").first.inner_text().startswith(f"#{case_id}")
    assert f"{top.score:.3f}" in first.inner_text()
    screenshot(page, "queue")

    first.get_by_role("link", name=f"#{case_id}").click()
    page.wait_for_url(f"**/console/cases/{case_id}")
    assert page.locator("#reasons li").all_inner_texts() == top.reasons
    assert "dajia-shop-risk version" in page.locator("section.card").first.inner_text()
    assert page.locator("svg.chart polyline").count() >= 2  # the timeline plot, drawn on the server
    offered = sorted(page.locator("form.decision input[name=action]").evaluate_all("els => els.map(e => e.value)"))
    assert offered == ["ban", "close", "dismiss"]
    screenshot(page, "case")
    screenshot(page, "case-full", full_page=True)

    # decide with the keyboard only: proof kind, what was examined, reason, then the button
    page.locator("#ek-close").focus()
    page.keyboard.press("Tab")
    page.keyboard.type("test buy TB-77: counterfeit serial number")
    page.keyboard.press("Tab")
    page.keyboard.type("test buy proved a counterfeit; prices far below the brand reference")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    page.wait_for_selector("#done")
    assert page.locator("#case-status").inner_text() == "closed"
    assert page.locator("form.decision").count() == 0  # nothing a reviewer may do on a closed case
    screenshot(page, "case-decided")

    assert case_of(console, top.shop_id)[1:] == ("closed", 2)
    last = events_of(console, case_id)[-1]
    assert last.action == "close" and last.new_status == "closed"
    assert last.actor_id == console.actor_ids["reviewer"] and last.role == "reviewer"
    assert last.reason.startswith("test buy proved a counterfeit")
    audit = audit_entries(console, str(case_id), "case.close")
    assert len(audit) == 1 and audit[0].actor_id == last.actor_id
    assert "TB-77" in audit[0].payload
    engine = console.engine()
    with session_factory(engine)() as s:
        assert verify_chain(s).ok
    engine.dispose()


def test_ban_asks_which_listings_are_suspect(console: Console, page_for: Any) -> None:
    engine = console.engine()
    with engine.connect() as conn:
        counts = dict(conn.execute(sa.text("select shop_id, count(*) from listings group by shop_id")).tuples().all())
    # a shop with several listings among those no other test decides
    shop_id = next(s.shop_id for s in console.scored[10:30] if counts.get(s.shop_id, 0) > 1)
    engine.dispose()
    case_id = case_of(console, shop_id)[0]
    page = page_for("reviewer")
    page.goto(console.url(f"/console/cases/{case_id}"))
    boxes = page.locator("form.decision-ban input[name=suspect_listing]")
    assert boxes.count() > 1 and all(boxes.nth(i).is_checked() for i in range(boxes.count()))
    for i in range(boxes.count()):
        boxes.nth(i).uncheck()
    page.locator("#r-ban").fill("suspected: prices far below reference")
    with page.expect_response(lambda r: r.request.method == "POST") as info:
        page.get_by_role("button", name="Ban").click()
    assert info.value.status == 400
    assert "Tick at least one suspect listing" in page.locator("#error").inner_text()
    assert case_of(console, shop_id)[1] == "open"
    page.locator("form.decision-ban input[name=suspect_listing]").first.check()
    page.locator("#r-ban").fill("suspected: prices far below reference")
    page.get_by_role("button", name="Ban").click()
    page.wait_for_selector("#done")
    # banned, or settled at once when no affected consumer bought the suspect listing in the window
    assert case_of(console, shop_id)[1] in ("banned", "settled")
    assert [e.action for e in events_of(console, case_id)][:2] == ["open", "ban"]


def test_reviewer_cannot_reach_admin_pages(console: Console, page_for: Any) -> None:
    page = page_for("reviewer")
    assert page.get_by_role("link", name="Campaigns").count() == 0
    for path in ("/console/admin/campaigns", "/console/admin/disclosures", "/console/admin/campaigns/1"):
        resp = page.goto(console.url(path))
        assert resp is not None and resp.status == 403, path
        assert page.get_by_role("heading", name="Admins only").is_visible()
    # nor post to them
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    r = httpx.post(console.url("/console/admin/campaigns"), data={"title": "x"}, cookies=cookies)
    assert r.status_code == 403


def test_stale_form_shows_conflict(console: Console, page_for: Any) -> None:
    shop = console.scored[1]
    case_id, status, _ = case_of(console, shop.shop_id)
    assert status == "open"
    first, second = page_for("reviewer"), page_for("reviewer2")
    for p in (first, second):
        p.goto(console.url(f"/console/cases/{case_id}"))
    first.locator("#r-dismiss").fill("looks like an honest discounter")
    first.get_by_role("button", name="Dismiss").click()
    first.wait_for_selector("#done")

    second.locator("#r-ban").fill("I think they should be banned")
    with second.expect_response(lambda r: r.request.method == "POST") as info:
        second.get_by_role("button", name="Ban").click()
    assert info.value.status == 409
    conflict = second.locator("#conflict")
    assert conflict.is_visible()
    assert "changed while you were looking at it" in conflict.inner_text()
    assert "version 2" in conflict.inner_text()
    # the page now shows the current state, and the reason typed is kept for the reviewer
    assert second.locator("#case-status").inner_text() == "dismissed"
    assert second.locator("#kept-reason").input_value() == "I think they should be banned"
    screenshot(second, "conflict")
    assert case_of(console, shop.shop_id)[1:] == ("dismissed", 2)
    assert [e.action for e in events_of(console, case_id)] == ["open", "dismiss"]


def test_csrf_missing_or_wrong_is_rejected(console: Console, page_for: Any) -> None:
    shop = console.scored[2]
    case_id, _, version = case_of(console, shop.shop_id)
    page = page_for("reviewer")
    page.goto(console.url(f"/console/cases/{case_id}"))
    token = page.locator("form.decision-ban input[name=csrf_token]").input_value()
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    form = {"action": "ban", "reason": "forged", "expected_version": str(version)}
    url = console.url(f"/console/cases/{case_id}/decision")
    with httpx.Client(cookies=cookies) as client:
        assert client.post(url, data=form).status_code == 403
        assert client.post(url, data={**form, "csrf_token": "not-the-token"}).status_code == 403
        other_origin = client.post(url, data={**form, "csrf_token": token}, headers={"Origin": "http://evil.example"})
        assert other_origin.status_code == 403
        assert "security token" in client.post(url, data=form).text
    assert case_of(console, shop.shop_id)[1:] == ("open", version)
    # the sign-in form has its own token
    r = httpx.post(console.url("/console/login"), data={"api_key": console.keys["reviewer"]})
    assert r.status_code == 403 and "dajia_console=" not in r.headers.get("set-cookie", "")


def test_sign_in_rules_and_security_headers(console: Console, page_for: Any) -> None:
    r = httpx.get(console.url("/console/queue"))
    assert r.status_code == 303 and r.headers["location"].startswith("/console/login")
    missing = httpx.get(console.url("/console/nothing/here"))
    assert missing.status_code == 404 and missing.headers["x-frame-options"] == "DENY"
    assert "text/html" in missing.headers["content-type"]
    r = httpx.get(console.url("/console/login"))
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "same-origin"
    assert "default-src 'none'" in r.headers["content-security-policy"]
    assert "http" not in r.headers["content-security-policy"]  # no external source at all
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie

    page = page_for(None)
    sign_in(page, console, console.keys["scorer"])
    assert "cannot sign in to the console" in page.locator(".alert-error").inner_text()
    sign_in(page, console, "dajia_nope_nope")
    assert "Unknown or revoked API key" in page.locator(".alert-error").inner_text()
    sign_in(page, console, console.keys["reviewer"])
    assert page.url.endswith("/console/queue")
    session = next(c for c in page.context.cookies() if c["name"] == "dajia_console")
    assert session["httpOnly"] and session["sameSite"] == "Strict"
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/console/login")
    page.goto(console.url("/console/queue"))
    assert "/console/login" in page.url


def test_admin_prepares_approves_publishes_campaign_and_discloses(console: Console, page_for: Any) -> None:
    page = page_for("admin")
    page.get_by_role("link", name="Campaigns").click()
    page.get_by_role("button", name="Prepare draft").click()
    page.wait_for_url("**/console/admin/campaigns/*")
    assert page.locator("#campaign-status").inner_text() == "draft"
    campaign_url = page.url
    admin, admin2 = (f"api-key:{console.key_ids[r]}" for r in ("admin", "admin2"))
    assert admin in page.locator("#four-eyes").inner_text()
    # four eyes: the admin who drafted it cannot approve it
    page.get_by_role("button", name="Approve for publication").click()
    page.wait_for_load_state()
    assert "four eyes" in page.content() and "may not also approve campaign" in page.content()
    screenshot(page, "four-eyes-refused")
    second = page_for("admin2")
    second.goto(campaign_url)
    assert second.locator("#campaign-status").inner_text() == "draft"  # the refusal wrote nothing
    second.get_by_role("button", name="Approve for publication").click()
    second.wait_for_load_state()
    assert second.locator("#campaign-status").inner_text() == "approved"
    page.goto(campaign_url)
    page.get_by_role("button", name="Publish announcement and warn every seller").click()
    page.wait_for_load_state()
    assert page.locator("#campaign-status").inner_text() == "published"
    campaign_id = int(page.url.rsplit("/", 1)[1])
    engine = console.engine()
    with engine.connect() as conn:
        row = conn.execute(
            sa.text("select status, created_by, approved_by, published_by from campaigns where campaign_id = :c"),
            {"c": campaign_id},
        ).one()
    assert tuple(row) == ("published", admin, admin2, admin)

    with engine.connect() as conn:
        pending = conn.execute(
            sa.text(
                "select count(*) from cases where status = 'closed' "
                "and case_id not in (select case_id from disclosures)"
            )
        ).scalar_one()
    assert pending >= 1
    page.get_by_role("link", name="Disclosure").click()
    page.get_by_label("Basis of this publication (recorded)").fill("closure proven by test buy TB-1")
    page.get_by_role("button", name="Propose closed shops for publication").click()
    page.wait_for_load_state()
    assert f"Proposed {pending} entr" in page.locator(".alert-ok").inner_text()
    assert "(you: another admin must approve)" in page.locator("#proposed-by").inner_text()
    page.get_by_role("button", name="Approve and publish proposed entries").click()
    page.wait_for_load_state()
    assert "four eyes" in page.content()
    second.goto(console.url("/console/admin/disclosures"))
    second.get_by_role("button", name="Approve and publish proposed entries").click()
    second.wait_for_load_state()
    assert f"Published {pending} entr" in second.locator(".alert-ok").inner_text()
    screenshot(second, "disclosures-approved", full_page=True)
    with engine.connect() as conn:
        basis = conn.execute(sa.text("select basis, status, drafted_by, approved_by from disclosures")).all()
    assert [tuple(b) for b in basis] == [("closure proven by test buy TB-1", "published", admin, admin2)] * pending

    # withdraw one entry again, with a recorded reason: off the public list, kept in the table
    page.goto(console.url("/console/admin/disclosures"))
    with engine.connect() as conn:
        first = conn.execute(sa.text("select min(disclosure_id) from disclosures")).scalar_one()
    page.locator(f"#reason-{first}").locator("xpath=ancestor::details/summary").click()  # folded per row
    page.locator(f"#reason-{first}").fill("court order 2026-17")
    page.get_by_role("button", name=f"Withdraw #{first}").click()
    page.wait_for_load_state()
    assert "withdrawn" in page.locator(".alert-ok").first.inner_text()
    with engine.connect() as conn:
        row = conn.execute(
            sa.text("select status, withdrawn_reason from disclosures where disclosure_id = :d"), {"d": first}
        ).one()
    engine.dispose()
    assert tuple(row) == ("withdrawn", "court order 2026-17")


def test_audit_sample_finding_is_stored_audited_and_exported(console: Console, page_for: Any) -> None:
    from serving.console.sample import export_verdicts

    page = page_for("reviewer")
    page.get_by_role("link", name="Audit sample").click()
    rows = page.locator("table.sample tbody tr")
    assert rows.count() == 20
    screenshot(page, "audit-sample")
    shop_id = rows.first.locator("input[name=shop_id]").input_value()
    assert shop_id not in {s.shop_id for s in console.scored}  # never flagged
    # open the shop to check it, and record the finding there
    rows.first.get_by_role("link").first.click()
    page.wait_for_url(f"**/console/shops/{shop_id}")
    assert "the model never flagged this shop" in page.locator("#h-cases + p").inner_text()
    assert page.locator("svg.chart").count() == 1
    screenshot(page, "shop", full_page=True)
    page.get_by_label("counterfeit").check()
    page.get_by_label("Note").fill("replica watch in photos, test buy ordered")
    with page.expect_navigation():
        page.get_by_role("button", name="Save finding").click()
    assert f"Finding saved for shop {shop_id}" in page.locator(".alert-ok").inner_text()
    assert "1 counterfeit" in page.locator(".estimate").inner_text()
    # the checked shop is not offered again
    assert shop_id not in page.locator("table.sample").inner_text()

    engine = console.engine()
    verdicts = export_verdicts(engine)
    engine.dispose()
    assert list(verdicts.columns) == ["verdict_id", "shop_id", "decided_at", "outcome", "evidence_kind"]
    assert verdicts.loc[verdicts["shop_id"] == shop_id, "outcome"].tolist() == ["counterfeit"]
    assert str(verdicts["decided_at"].dtype) == "datetime64[us]"
    assert len(audit_entries(console, shop_id, "audit_sample.finding")) == 1
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    csv = httpx.get(console.url("/console/audit-sample/verdicts.csv"), cookies=cookies)
    assert csv.status_code == 200 and shop_id in csv.text and "counterfeit,reviewer" in csv.text


def test_monitor_without_model_still_reports_reviewers(console: Console, page_for: Any) -> None:
    page = page_for("reviewer")
    page.get_by_role("link", name="Model monitor").click()
    assert "No model is loaded" in page.locator("main").inner_text()
    agreement = page.locator("section[aria-labelledby=h-agree] tbody").inner_text()
    assert "v2" in agreement and "v3" in agreement
    screenshot(page, "monitor", full_page=True)


def test_every_form_field_has_a_label(console: Console, page_for: Any) -> None:
    page = page_for("admin")
    case_id = case_of(console, console.scored[5].shop_id)[0]
    unlabelled_js = """() => [...document.querySelectorAll('input, select, textarea')]
        .filter(e => e.type !== 'hidden' && e.type !== 'radio')
        .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))
        .map(e => e.name || e.id)"""
    for path in ("/console/queue", f"/console/cases/{case_id}", "/console/audit-sample", "/console/admin/disclosures"):
        page.goto(console.url(path))
        assert page.evaluate(unlabelled_js) == [], path
    # the skip link is the first thing the keyboard reaches
    page.goto(console.url("/console/queue"))
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"


def test_case_page_shows_the_evidence_as_at_opening_beside_now(console: Console, page_for: Any) -> None:
    """A closed case: its shop and listings were frozen at opening; the page marks what changed since."""
    engine = console.engine()
    with engine.connect() as conn:
        case_id, shop_id = conn.execute(
            sa.text("select case_id, shop_id from cases where status = 'closed' order by case_id")
        ).first()  # type: ignore[misc]
        title = conn.execute(sa.text("select min(title) from listings where shop_id = :s"), {"s": shop_id}).scalar_one()
    engine.dispose()
    page = page_for("reviewer")
    page.goto(console.url(f"/console/cases/{case_id}"))
    summary = page.locator("#frozen-summary").inner_text()
    assert "(matches)" in summary and "changes since opening" in summary
    changed = page.locator("#frozen tr.changed")
    texts = [changed.nth(i).inner_text() for i in range(changed.count())]
    assert any("status" in t and "active" in t and "closed" in t for t in texts), texts  # the shop, closed since
    assert any("withdrawn" in t and "False" in t and "True" in t for t in texts), texts  # its listings withdrawn
    unchanged = page.locator("#frozen tbody tr:not(.changed)")
    assert unchanged.count() > 0 and title and title in page.locator("#frozen").inner_text()
    # the score, its reasons and the feature values it was computed from, as at opening
    assert "1:1 / 高仿" in page.locator("#frozen-reasons").inner_text()
    page.locator("#frozen-features summary").click()
    features = page.locator("#frozen-features table").inner_text()
    assert "complaints_30d" in features and "replica_terms" in features and "price_to_reference" in features
    # people, not keys: the signed-in reviewer and whoever decided are named; no key id is shown as a person
    assert page.locator("header .who").inner_text().startswith("Rita Liu 刘丽")
    actors = page.locator("td.actor").all_inner_texts()
    assert any(t.startswith("Zhao Min 赵敏") for t in actors), actors
    assert "api-key:" not in page.locator("main").inner_text()
    page.locator("#h-frozen").scroll_into_view_if_needed()
    shot = screenshot(page, "case-evidence-at-opening")
    assert shot.stat().st_size > 10_000
    page.locator("td.actor").first.scroll_into_view_if_needed()
    assert screenshot(page, "case-people-named").stat().st_size > 10_000
