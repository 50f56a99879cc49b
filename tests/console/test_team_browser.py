"""Issue 21 in a real browser (Debian's Chromium through Playwright) on a real server, at 1440×900 and
390×844: a team works the queue (claim, next case, never the same case), notes and attachments reach
the timeline and the audit chain, search, bulk dismiss, keyboard-only decisions, layout, axe-core.

Each test checks what a person sees AND what the database then holds. Screenshots go to
test-output/console/team-*.png.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
import sqlalchemy as sa

from tests.console.conftest import Console, screenshot, sign_in
from tests.console.test_browser import audit_entries, case_of, events_of

pytestmark = pytest.mark.browser

DESKTOP = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}
AXE = Path(__file__).resolve().parent / "js" / "node_modules" / "axe-core" / "axe.min.js"
#: the extra cases this module routes (lower scores than the fixture's 40, so they queue after them)
N_EXTRA = 120


@pytest.fixture(scope="module")
def extra_cases(console: Console) -> list[int]:
    """Route more of the marketplace's shops into cases (the bulk test needs 50 of its own)."""
    from core.db import session_factory
    from sanctions.routing import route_scored
    from sanctions.scored import ScoredShop

    taken = {s.shop_id for s in console.scored}
    free = [str(s) for s in sorted(console.mp.shops["shop_id"]) if str(s) not in taken][:N_EXTRA]
    scored = [
        ScoredShop(sid, round(0.45 - i * 0.001, 4), "suspected", "dajia-shop-risk", "3", [f"reason {i}"], 0.3)
        for i, sid in enumerate(free)
    ]
    engine = console.engine()
    with session_factory(engine)() as s:
        route_scored(s, scored, now=pd.Timestamp(console.mp.snapshot_at).to_pydatetime() + timedelta(days=1))
    ids = [case_of(console, sid)[0] for sid in free]
    engine.dispose()
    return ids


@pytest.fixture
def person(browser: Any, console: Console) -> Iterator[Any]:
    """``person(role, viewport)``: a fresh signed-in browser context at that size."""
    contexts: list[Any] = []

    def make(role: str, viewport: dict[str, int] = DESKTOP, bypass_csp: bool = False) -> Any:
        ctx = browser.new_context(viewport=viewport, bypass_csp=bypass_csp)
        ctx.set_default_timeout(15_000)
        contexts.append(ctx)
        page = ctx.new_page()
        sign_in(page, console, console.keys[role])
        return page

    yield make
    for ctx in contexts:
        ctx.close()


def holder_of(console: Console, case_id: int) -> str | None:
    engine = console.engine()
    with engine.connect() as conn:
        row = conn.execute(sa.text("select actor_id from console_claims where case_id = :c"), {"c": case_id}).first()
    engine.dispose()
    return None if row is None else str(row[0])


def fits(page: Any, width: int) -> None:
    """Nothing wider than the window, and Sign out on screen."""
    assert page.evaluate("document.documentElement.scrollWidth") <= width, page.url
    box = page.get_by_role("button", name="Sign out").bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width, page.url


def case_id_of(page: Any) -> int:
    return int(page.url.rstrip("/").rsplit("/", 1)[1].split("?")[0])


def test_two_reviewers_claim_next_and_never_touch_the_same_case(
    console: Console, person: Any, extra_cases: list[int]
) -> None:
    a, b = person("reviewer", DESKTOP), person("reviewer2", PHONE)
    actor = {a: console.actor_ids["reviewer"], b: f"api-key:{console.key_ids['reviewer2']}"}
    seen: dict[Any, list[int]] = {a: [], b: []}
    for p in (a, b):
        fits(p, p.viewport_size["width"])
        p.get_by_role("button", name="Claim next case").click()
        p.wait_for_url("**/console/cases/*")
    for rnd in range(3):
        for p in (a, b):
            cid = case_id_of(p)
            seen[p].append(cid)
            assert "Claimed by you" in p.locator("#claim-state").inner_text()
            assert holder_of(console, cid) == actor[p]
            fits(p, p.viewport_size["width"])
            if rnd == 0:
                screenshot(p, f"team-case-{p.viewport_size['width']}")
            p.locator("#r-dismiss").fill(f"round {rnd}: honest discounter")
            p.get_by_role("button", name="Dismiss").click()
            p.wait_for_selector("#done")
            p.get_by_role("button", name="Next case →").click()
            p.wait_for_url(lambda url, cid=cid: "done=" not in url and not url.endswith(f"/cases/{cid}"))
    assert not set(seen[a]) & set(seen[b]), "two reviewers got the same case"
    for p, cases in seen.items():
        for cid in cases:
            dismissals = [e for e in events_of(console, cid) if e.action == "dismiss"]
            assert [e.actor_id for e in dismissals] == [actor[p]]
            assert holder_of(console, cid) is None  # released by the decision
    # each now holds the next case; the other one tries to decide it and loses, keeping the typed reason
    held_by_a = case_id_of(a)
    assert holder_of(console, held_by_a) == actor[a]
    b.goto(console.url(f"/console/cases/{held_by_a}"))
    assert "Claimed by Rita Liu 刘丽" in b.locator("#claim-state").inner_text()
    b.locator("#r-ban").fill("I typed a long reason that must not be lost")
    with b.expect_response(lambda r: r.request.method == "POST") as info:
        b.get_by_role("button", name="Ban").click()
    assert info.value.status == 409
    assert "has claimed case" in b.locator("#conflict").inner_text()
    assert b.locator("#kept-reason").input_value() == "I typed a long reason that must not be lost"
    screenshot(b, "team-conflict-390", full_page=False)
    assert [e.action for e in events_of(console, held_by_a)] == ["open"]
    # "my cases" lists exactly the one each holds
    a.goto(console.url("/console/queue?mine=1"))
    assert a.locator("table.queue tbody tr").count() == 1
    assert a.locator("table.queue a.row-link").inner_text().startswith(f"#{held_by_a}")
    screenshot(a, "team-my-cases-1440")


def test_admin_assigns_and_reviewer_releases(console: Console, person: Any, extra_cases: list[int]) -> None:
    admin = person("admin", DESKTOP)
    cid = extra_cases[-1]
    admin.goto(console.url(f"/console/cases/{cid}"))
    admin.get_by_label("Assign to").select_option(label="second reviewer")
    admin.get_by_role("button", name="Assign").click()
    admin.wait_for_selector("#team-notice")
    assert "second reviewer" in admin.locator("#claim-state").inner_text()
    assert holder_of(console, cid) == f"api-key:{console.key_ids['reviewer2']}"
    assert len(audit_entries(console, str(cid), "case.assign")) == 1
    rev = person("reviewer2", PHONE)
    rev.goto(console.url(f"/console/cases/{cid}"))
    rev.get_by_role("button", name="Release").click()
    rev.wait_for_selector("#team-notice")
    assert "Nobody has claimed" in rev.locator("#claim-state").inner_text()
    assert holder_of(console, cid) is None


def test_note_and_attachment_in_timeline_and_audit_chain(
    console: Console, person: Any, extra_cases: list[int], tmp_path: Path
) -> None:
    from core.db import session_factory
    from sanctions.audit import verify_chain

    cid = extra_cases[-2]
    for viewport in (DESKTOP, PHONE):
        page = person("reviewer", viewport)
        page.goto(console.url(f"/console/cases/{cid}"))
        w = viewport["width"]
        page.get_by_label("Add a note").fill(f"brand owner confirmed by phone ({w})")
        page.get_by_role("button", name="Add note").click()
        page.wait_for_selector("#team-notice")
        photo = tmp_path / f"test buy {w}.png"
        photo.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4 + str(w).encode())
        page.get_by_label("Attach a file").set_input_files(str(photo))
        page.get_by_role("button", name="Attach", exact=True).click()
        page.wait_for_selector("#team-notice")
        note_rows = page.locator("#audit-trail tr.tl-note")
        assert f"brand owner confirmed by phone ({w})" in note_rows.last.inner_text()
        file_row = page.locator("#audit-trail tr.tl-attachment").last
        digest = hashlib.sha256(photo.read_bytes()).hexdigest()
        assert f"test_buy_{w}.png" in file_row.inner_text() and digest[:16] in file_row.inner_text()
        fits(page, w)
        screenshot(page, f"team-timeline-{w}", full_page=True)
        # served only as a download, byte for byte
        href = file_row.get_by_role("link").get_attribute("href")
        cookies = {c["name"]: c["value"] for c in page.context.cookies()}
        r = httpx.get(console.url(href or ""), cookies=cookies)
        assert r.status_code == 200 and r.content == photo.read_bytes()
        assert r.headers["content-disposition"] == f'attachment; filename="test_buy_{w}.png"'
        assert r.headers["content-type"] == "application/octet-stream"
        assert r.headers["x-content-type-options"] == "nosniff" and "sandbox" in r.headers["content-security-policy"]
        # a file of the wrong type is refused with a clear message, nothing stored
        bad = tmp_path / "page.html"
        bad.write_text("<script>alert(1)</script>")
        page.get_by_label("Attach a file").set_input_files(str(bad))
        with page.expect_response(lambda r: r.request.method == "POST") as info:
            page.get_by_role("button", name="Attach", exact=True).click()
        assert info.value.status == 415  # Unsupported Media Type (sanctions.attachments)
        assert "is not accepted" in page.locator("#error").inner_text()
    notes = audit_entries(console, str(cid), "case.note")
    files = audit_entries(console, str(cid), "case.attachment")
    assert len(notes) == 2 and len(files) == 2
    assert "brand owner confirmed by phone (390)" in notes[1].payload
    engine = console.engine()
    with engine.connect() as conn:
        stored = conn.execute(sa.text("select sha256 from console_attachments where case_id = :c"), {"c": cid}).all()
    assert all(row[0] in files[i].payload for i, row in enumerate(stored))
    with session_factory(engine)() as s:
        assert verify_chain(s).ok
    engine.dispose()


def test_search_finds_a_shop_by_id_and_by_name(console: Console, person: Any, extra_cases: list[int]) -> None:
    shop = console.scored[7]
    name = str(console.mp.shops.set_index("shop_id").loc[shop.shop_id, "name"])
    case_id = case_of(console, shop.shop_id)[0]
    for viewport in (DESKTOP, PHONE):
        page = person("reviewer", viewport)
        for query in (shop.shop_id, name[1:-1], f"#{case_id}"):
            page.get_by_label("Search by case id, shop id or shop name").fill(query)
            with page.expect_navigation():
                page.keyboard.press("Enter")
            rows = page.locator("table.queue tbody tr")
            texts = rows.all_inner_texts()
            assert any(shop.shop_id in t and f"#{case_id}" in t for t in texts), (query, texts)
            assert all(query.lstrip("#") in t or name[1:-1] in t for t in texts)
        fits(page, viewport["width"])
        screenshot(page, f"team-search-{viewport['width']}")
    # closed, settled, reversed ... are browsable
    page.goto(console.url("/console/queue?status=closed"))
    options = page.locator("#f-status option").evaluate_all("els => els.map(e => e.value)")
    assert {"closed", "settled", "reversed", "dismissed", "all"} <= set(options)
    assert all("closed" in t for t in page.locator("table.queue tbody tr").all_inner_texts())


def test_bulk_dismiss_of_50_reports_each_case(console: Console, person: Any, extra_cases: list[int]) -> None:
    from core.db import session_factory
    from sanctions.workflow import Actor, Role
    from serving.console.team import claim, set_tag

    batch = extra_cases[:50]
    engine = console.engine()
    tagger = Actor("fixture-tagger", Role.REVIEWER)
    with session_factory(engine)() as s:
        for cid in batch:
            set_tag(s, tagger, cid, "bulk-batch")
        # someone else holds one of them: it must be reported as a conflict, not dismissed
        claim(s, Actor(f"api-key:{console.key_ids['reviewer2']}", Role.REVIEWER), batch[7])
    engine.dispose()
    page = person("reviewer", DESKTOP)
    page.goto(console.url("/console/queue?tag=bulk-batch&select=1"))
    boxes = page.locator("table.queue input[name=case]")
    assert boxes.count() == 50
    for i in range(50):
        boxes.nth(i).check()
    page.get_by_label("Reason (for dismiss)").fill("batch of honest discounters")
    screenshot(page, "team-bulk-select-1440")
    page.get_by_role("button", name="Apply to ticked cases").click()
    page.wait_for_selector("#bulk-summary")
    assert page.locator("#bulk-summary").inner_text() == "49 of 50 cases done, 1 not done (see below)."
    conflict = page.locator("#bulk-results tr.outcome-conflict")
    assert conflict.count() == 1 and f"#{batch[7]}" in conflict.inner_text()
    assert "second reviewer has claimed" in conflict.inner_text()
    screenshot(page, "team-bulk-result-1440", full_page=True)
    for cid in batch:
        actions = [e.action for e in events_of(console, cid)]
        assert actions == (["open"] if cid == batch[7] else ["open", "dismiss"]), cid
        assert len(audit_entries(console, str(cid), "case.dismiss")) == (0 if cid == batch[7] else 1)


def test_keyboard_only_decision_and_next(console: Console, person: Any, extra_cases: list[int]) -> None:
    page = person("reviewer2", DESKTOP)
    page.goto(console.url("/console/queue"))
    links = page.locator("table.queue a.row-link")
    page.keyboard.press("j")
    page.keyboard.press("j")
    second = links.nth(1).get_attribute("href")
    assert page.evaluate("document.activeElement.getAttribute('href')") == second
    page.keyboard.press("k")
    page.keyboard.press("j")
    page.keyboard.press("Enter")
    page.wait_for_url(f"**{second}")
    # help
    page.keyboard.press("?")
    assert page.locator("#help").is_visible()
    screenshot(page, "team-help-1440")
    page.keyboard.press("Escape")
    assert not page.locator("#help").is_visible()
    # n: claim the next case and open it; d: the dismiss form; Ctrl+Enter: submit
    page.keyboard.press("n")
    page.wait_for_url(lambda url: not url.endswith(second or ""))
    cid = case_id_of(page)
    assert holder_of(console, cid) == f"api-key:{console.key_ids['reviewer2']}"
    page.keyboard.press("d")
    assert page.evaluate("document.activeElement.id") == "r-dismiss"
    page.keyboard.type("keyboard only: a genuine reseller")
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("#done")
    assert case_of(console, console_shop(console, cid))[1] == "dismissed"
    page.keyboard.press("n")
    page.wait_for_url(lambda url: "done=" not in url and not url.endswith(f"/cases/{cid}"))
    assert case_id_of(page) != cid


def console_shop(console: Console, case_id: int) -> str:
    engine = console.engine()
    with engine.connect() as conn:
        shop = conn.execute(sa.text("select shop_id from cases where case_id = :c"), {"c": case_id}).scalar_one()
    engine.dispose()
    return str(shop)


def test_ban_form_and_claims_columns_readable(console: Console, person: Any) -> None:
    engine = console.engine()
    with engine.connect() as conn:
        counts = dict(conn.execute(sa.text("select shop_id, count(*) from listings group by shop_id")).tuples().all())
        open_ids = {str(r[0]) for r in conn.execute(sa.text("select shop_id from cases where status = 'open'"))}
    engine.dispose()
    fitting = [s.shop_id for s in console.scored if s.shop_id in open_ids and 3 <= counts.get(s.shop_id, 0) <= 30]
    shop_id = max(fitting, key=lambda s: counts[s])
    page = person("reviewer", DESKTOP)
    page.goto(console.url(f"/console/cases/{case_of(console, shop_id)[0]}"))
    box = page.locator("form.decision-ban input[name=suspect_listing]").first.bounding_box()
    assert box is not None and box["width"] < 30  # a checkbox, not a 300 px bar
    visible = page.locator("form.decision-ban .suspects label").evaluate_all(
        "els => els.filter(e => { const r = e.getBoundingClientRect(); "
        "const f = e.closest('fieldset').getBoundingClientRect(); "
        "return r.top >= f.top && r.bottom <= f.bottom + 1; }).length"
    )
    assert visible >= min(5, counts[shop_id])
    screenshot(page, "team-ban-form-1440")


def test_campaign_preview_before_approval_and_disclosure_search(
    console: Console, person: Any, extra_cases: list[int]
) -> None:
    from core.db import session_factory
    from sanctions.cases import decide
    from sanctions.schemas import Evidence
    from sanctions.workflow import Actor, Role

    closed = extra_cases[60]
    engine = console.engine()
    with session_factory(engine)() as s:
        decide(
            s, closed, "close", Actor("fixture-reviewer", Role.REVIEWER), reason="test buy: fake",
            evidence=[Evidence(kind="test_buy", ref="TB-9", detail="fake")],
        )  # fmt: skip
    warnings = "select count(*) from outbox where kind = 'warning'"
    with engine.connect() as conn:
        sellers = conn.execute(sa.text("select count(*) from shops where status <> 'closed'")).scalar_one()
        warned_before = conn.execute(sa.text(warnings)).scalar_one()
        shop = conn.execute(sa.text("select shop_id from cases where case_id = :c"), {"c": closed}).scalar_one()
    page = person("admin", DESKTOP)
    page.goto(console.url("/console/admin/campaigns"))
    page.get_by_role("button", name="Prepare draft").click()
    page.wait_for_url("**/console/admin/campaigns/*")
    assert page.locator("#campaign-status").inner_text() == "draft"
    preview = page.locator("#preview")
    assert "Shops closed:" in preview.inner_text() and f"({shop})" in preview.inner_text()
    assert f"as {sellers} sellers will get it" in preview.inner_text()
    assert "Selling counterfeit goods on this marketplace" in page.locator("#warning-preview").inner_text()
    screenshot(page, "team-campaign-preview-1440", full_page=True)
    with engine.connect() as conn:  # a preview sends nothing
        assert conn.execute(sa.text(warnings)).scalar_one() == warned_before
    engine.dispose()
    # the disclosure page: one admin proposes, a second approves (four eyes), then find the entry by shop id
    page.goto(console.url("/console/admin/disclosures"))
    page.get_by_label("Basis of this publication (recorded)").fill("closure proven by test buy TB-9")
    page.get_by_role("button", name="Propose closed shops for publication").click()
    page.wait_for_selector(".alert-ok")
    page = person("admin2", DESKTOP)
    page.goto(console.url("/console/admin/disclosures"))
    page.get_by_role("button", name="Approve and publish proposed entries").click()
    page.wait_for_selector(".alert-ok")
    page.get_by_label("Search entries by case id, shop id or shop name").fill(shop)
    with page.expect_navigation():
        page.keyboard.press("Enter")
    rows = page.locator("table tbody tr").all_inner_texts()
    assert len(rows) == 1 and shop in rows[0] and f"#{closed}" in rows[0]
    assert "Page 1 of 1" in page.locator("nav.pager").inner_text()


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1440", "390"])
def test_axe_finds_no_violation_on_any_console_page(
    console: Console, person: Any, extra_cases: list[int], viewport: dict[str, int]
) -> None:
    assert AXE.exists(), f"axe-core is missing: npm ci --prefix {AXE.parents[2]}"
    page = person("admin", viewport, bypass_csp=True)
    engine = console.engine()
    with engine.connect() as conn:
        some_case = int(conn.execute(sa.text("select min(case_id) from cases where status = 'open'")).scalar_one())
        decided = int(conn.execute(sa.text("select min(case_id) from cases where status <> 'open'")).scalar_one())
        shop = str(conn.execute(sa.text("select shop_id from cases where case_id = :c"), {"c": some_case}).scalar())
        campaign = conn.execute(sa.text("select max(campaign_id) from campaigns")).scalar()
    engine.dispose()
    paths = [
        "/console/queue",
        "/console/queue?select=1",
        "/console/queue?mine=1",
        "/console/queue?status=all&q=a",
        f"/console/cases/{some_case}",
        f"/console/cases/{decided}",
        f"/console/shops/{shop}",
        "/console/audit-sample",
        "/console/monitor",
        "/console/dashboard",
        "/console/admin/campaigns",
        "/console/admin/disclosures",
        "/console/no/such/page",
    ]
    if campaign is not None:
        paths.append(f"/console/admin/campaigns/{campaign}")
    width = viewport["width"]
    for path in paths:
        page.goto(console.url(path))
        page.add_script_tag(path=str(AXE))
        result = page.evaluate(
            "async () => (await axe.run(document)).violations"
            ".map(v => [v.id, v.nodes.map(n => n.target.join(' ') + ': ' + n.failureSummary)])"
        )
        assert result == [], (path, width, result)
        if path != "/console/no/such/page":
            fits(page, width)
    page.goto(console.url("/console/queue"))
    screenshot(page, f"team-queue-{width}")
    login = person("reviewer", viewport, bypass_csp=True)
    login.get_by_role("button", name="Sign out").click()
    login.wait_for_url("**/console/login")
    login.add_script_tag(path=str(AXE))
    assert login.evaluate("async () => (await axe.run(document)).violations.map(v => v.id)") == []


def test_audit_sample_shows_the_latest_sweep_scores(console: Console, person: Any) -> None:
    shops = [str(s) for s in console.mp.shops["shop_id"]]
    as_of = pd.Timestamp("2026-06-30")
    frame = pd.DataFrame(
        {
            "shop_id": shops * 2,
            "score": [0.01 * (i % 50) for i in range(len(shops))] + [0.002] * len(shops),
            "tier": ["low"] * (2 * len(shops)),
            "reasons": [["x"]] * (2 * len(shops)),
            "model_name": "dajia-shop-risk",
            "model_version": ["3"] * len(shops) + ["4"] * len(shops),
            "suspected_threshold": 0.5,
            "as_of": [as_of - pd.Timedelta(days=30)] * len(shops) + [as_of] * len(shops),  # the later sweep wins
        }
    )
    path = console.settings.home / "scores.parquet"
    frame.to_parquet(path, index=False)
    try:
        page = person("reviewer", PHONE)
        page.goto(console.url("/console/audit-sample"))
        rows = page.locator("table.sample tbody tr").all_inner_texts()
        assert len(rows) == 20
        assert all("0.002" in r and "sweep 2026-06-30" in r for r in rows), rows[:3]
        fits(page, PHONE["width"])
        screenshot(page, "team-audit-sample-390")
    finally:
        path.unlink()


def test_dashboard_counts_what_the_team_did(console: Console, person: Any, extra_cases: list[int]) -> None:
    from core.db import session_factory
    from sanctions.cases import decide
    from sanctions.workflow import Actor, Role

    engine = console.engine()
    me = console.actor_ids["reviewer"]
    with session_factory(engine)() as s:
        decide(s, extra_cases[70], "dismiss", Actor(me, Role.REVIEWER), reason="for the dashboard")
    with engine.connect() as conn:
        waiting = conn.execute(
            sa.text("select count(*) from cases where status in ('open', 'appealed_close', 'appealed_ban')")
        ).scalar_one()
        mine = conn.execute(
            sa.text(
                "select count(*) from case_events where actor_id = :a and action in "
                "('close', 'ban', 'dismiss', 'reject_appeal', 'reverse')"
            ),
            {"a": me},
        ).scalar_one()
    engine.dispose()
    assert mine > 0
    for viewport in (DESKTOP, PHONE):
        page = person("reviewer", viewport)
        page.get_by_role("link", name="Dashboard").click()
        assert page.locator("#waiting").inner_text() == f"{waiting} waiting"
        row = page.locator("#per-reviewer tr", has_text="Rita Liu 刘丽").first
        assert row.locator("td").nth(1).inner_text() == str(mine)
        assert page.locator("svg.chart rect").count() > 3
        fits(page, viewport["width"])
        screenshot(page, f"team-dashboard-{viewport['width']}", full_page=True)


def test_appeal_statement_next_to_the_appeal_forms(console: Console, person: Any, extra_cases: list[int]) -> None:
    from core.db import session_factory
    from sanctions.cases import appeal, decide
    from sanctions.schemas import Evidence
    from sanctions.workflow import Actor, Role

    cid = extra_cases[80]
    engine = console.engine()
    with engine.connect() as conn:
        keeper = conn.execute(
            sa.text("select s.shopkeeper_id from shops s join cases c on c.shop_id = s.shop_id where c.case_id = :c"),
            {"c": cid},
        ).scalar_one()
    statement = "The test buy was of another shop's item; our invoices are attached."
    with session_factory(engine)() as s:
        decide(
            s, cid, "close", Actor("fixture-reviewer", Role.REVIEWER), reason="test buy: fake",
            evidence=[Evidence(kind="test_buy", ref="TB-80", detail="fake")],
        )  # fmt: skip
        appeal(s, cid, Actor(str(keeper), Role.SELLER), reason=statement)
    engine.dispose()
    page = person("reviewer", PHONE)
    page.goto(console.url(f"/console/cases/{cid}"))
    assert statement in page.locator("#appeal-statement").inner_text()
    # the statement sits in the decide section, right above the appeal forms
    assert page.locator("section.decide #appeal-statement + p + .decisions form.decision-reverse").count() == 1
    fits(page, PHONE["width"])
    screenshot(page, "team-appeal-390")
