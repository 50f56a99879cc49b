"""Every endpoint with every role against a declared table; keys stored hashed; the public rate limit;
security headers on HTML pages."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator

import httpx
import pytest

from tests.reliability.conftest import ROLES, Run, Server, start_server

ANYONE = frozenset({None, "scorer", "reviewer", "admin"})
REVIEW = frozenset({"reviewer", "admin"})
#: (method, path template) -> roles allowed; None is "no key"
ALLOWED: dict[tuple[str, str], frozenset[str | None]] = {
    ("GET", "/healthz"): ANYONE,
    ("GET", "/readyz"): ANYONE,
    ("GET", "/metrics"): ANYONE,
    ("POST", "/v1/scores"): frozenset({"scorer", "admin"}),
    ("GET", "/v1/predictions"): REVIEW,
    ("GET", "/v1/cases"): REVIEW,
    ("GET", "/v1/cases/{case_id}"): REVIEW,
    ("POST", "/v1/cases/{case_id}/decisions"): REVIEW,
    ("POST", "/v1/cases/{case_id}/appeal-decisions"): REVIEW,
    ("GET", "/v1/campaigns"): REVIEW,
    ("POST", "/v1/campaigns"): REVIEW,
    ("GET", "/v1/campaigns/{campaign_id}"): REVIEW,
    ("POST", "/v1/campaigns/{campaign_id}/approval"): frozenset({"admin"}),
    ("POST", "/v1/campaigns/{campaign_id}/publication"): frozenset({"admin"}),
    ("POST", "/v1/disclosures/proposals"): frozenset({"admin"}),
    ("POST", "/v1/disclosures/approval"): frozenset({"admin"}),
    ("GET", "/v1/public/announcements"): ANYONE,
    ("GET", "/v1/public/announcements/{campaign_id}"): ANYONE,
    ("GET", "/v1/public/closed-shops"): ANYONE,
    # issue 17
    ("POST", "/v1/cases/routing"): frozenset({"scorer", "admin"}),
    ("POST", "/v1/disclosure-policies"): frozenset({"admin"}),
    ("POST", "/v1/disclosure-policies/{name}/approval"): frozenset({"admin"}),
    ("GET", "/v1/public/corrections"): ANYONE,
    ("GET", "/v1/storefront/shops/{shop_id}"): ANYONE,
    ("GET", "/v1/storefront/changes"): ANYONE,
    # issue 25: a shop's new events refresh its online feature row
    ("POST", "/v1/shops/{shop_id}/events"): frozenset({"scorer", "admin"}),
    # the signed token in the path is the credential (a wrong one: 404/410/422, never a change)
    ("GET", "/v1/claim-links/{token}"): ANYONE,
    ("POST", "/v1/claim-links/{token}/confirmation"): ANYONE,
    ("POST", "/v1/claim-links/{token}/dispute"): ANYONE,
    ("GET", "/v1/seller-links/{token}"): ANYONE,
    ("POST", "/v1/seller-links/{token}/claims/{claim_id}/payment"): ANYONE,
    ("POST", "/v1/seller-links/{token}/cases/{case_id}/refusal"): ANYONE,
    ("POST", "/v1/seller-links/{token}/cases/{case_id}/appeal"): ANYONE,
    ("GET", "/v1/seller-links/{token}/cases/{case_id}/appeal-files/{file_id}"): ANYONE,
    ("GET", "/v1/cases/{case_id}/appeal-files/{file_id}"): REVIEW,
}
#: console pages: (path, roles that see the page); None never signs in (redirected to the sign-in form)
CONSOLE: dict[str, frozenset[str | None]] = {
    "/console/queue": REVIEW,
    "/console/cases/1": REVIEW,
    "/console/audit-sample": REVIEW,
    "/console/monitor": REVIEW,
    "/console/admin/campaigns": frozenset({"admin"}),
    "/console/admin/disclosures": frozenset({"admin"}),
}


def _call(api: Server, method: str, template: str, role: str | None) -> httpx.Response:
    # ids that exist nowhere and an empty body: an allowed caller gets a 4xx about the input, never a change
    path = re.sub(r"\{[a-z_]+\}", "999999999", template)
    headers = {"X-API-Key": api.keys[role]} if role else {}
    if method == "POST":
        return httpx.post(api.base_url + path, json={}, headers=headers, timeout=30)
    return httpx.get(api.base_url + path, headers=headers, timeout=30)


def test_every_endpoint_with_every_role_matches_the_declared_table(api: Server) -> None:
    spec = httpx.get(f"{api.base_url}/openapi.json").json()
    ops = {(m.upper(), p) for p, item in spec["paths"].items() for m in item}
    assert ops == set(ALLOWED), f"endpoints not in the declared table: {ops ^ set(ALLOWED)}"
    wrong = []
    for (method, template), allowed in sorted(ALLOWED.items()):
        for role in (None, *ROLES):
            status = _call(api, method, template, role).status_code
            if role in allowed:
                ok = status not in (401, 403) and status < 500
            else:
                ok = status == (401 if role is None else 403)
            if not ok:
                wrong.append(f"{method} {template} as {role}: {status}")
    assert not wrong, wrong


def _console_session(api: Server, role: str) -> httpx.Client:
    c = api.client()
    form = c.get("/console/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token, form.text[:300]
    r = c.post(
        "/console/login",
        data={"csrf_token": token.group(1), "next": "/console/queue", "api_key": api.keys[role]},
        headers={"Origin": api.base_url},
    )
    assert r.status_code in (303, 403), r.status_code
    return c


def test_console_pages_with_every_role(api: Server) -> None:
    wrong = []
    for role in (None, *ROLES):
        c = _console_session(api, role) if role else api.client()
        for path, allowed in CONSOLE.items():
            r = c.get(path)
            if role in allowed:
                ok = r.status_code in (200, 404) and r.headers["content-type"].startswith("text/html")
            elif role is None or role == "scorer":  # cannot sign in: sent to the sign-in form
                ok = r.status_code in (303, 307) and "/console/login" in r.headers["location"]
            else:
                ok = r.status_code == 403
            if not ok:
                wrong.append(f"{path} as {role}: {r.status_code}")
            if r.headers.get("content-type", "").startswith("text/html"):
                for h in ("content-security-policy", "x-frame-options", "x-content-type-options", "referrer-policy"):
                    if h not in r.headers:
                        wrong.append(f"{path} as {role}: no {h}")
    assert not wrong, wrong


def test_every_html_page_has_security_headers(api: Server) -> None:
    for path in ("/docs", "/redoc", "/console/login", "/console/no-such-page"):
        r = httpx.get(api.base_url + path)
        assert r.headers["content-type"].startswith("text/html"), path
        assert r.headers["x-frame-options"] == "DENY", path
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"], path
        assert r.headers["x-content-type-options"] == "nosniff", path
        assert "referrer-policy" in r.headers, path
    # JSON is never content-sniffed either
    assert httpx.get(api.base_url + "/healthz").headers["x-content-type-options"] == "nosniff"


def test_api_keys_are_stored_only_hashed(run: Run, api: Server) -> None:
    db = run.settings.resolved_database_url.removeprefix("sqlite:///")
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        rows = [dict(r) for r in conn.execute("select * from serving_api_keys")]
        dump = "\n".join(conn.iterdump())
    assert len(rows) >= len(ROLES)
    for secret in api.keys.values():
        assert secret not in dump
        random_part = secret.split("_", 2)[2]  # dajia_<key id>_<random>; the random part may hold "_" itself
        assert len(random_part) == 43
        assert random_part not in dump  # not even the random part
    assert all(re.fullmatch(r"[0-9a-f]{64}", r["secret_sha256"]) for r in rows)
    assert not any("secret" in c and c != "secret_sha256" for c in rows[0])


@pytest.fixture(scope="module")
def limited(run: Run, keys: dict[str, str]) -> Iterator[Server]:
    """A second server with a small public rate limit (the main one has it out of the way)."""
    settings = run.settings.model_copy(update={"public_rate_per_minute": 6.0, "public_rate_burst": 5})
    s = start_server(settings, None, keys, wait_model=False)
    yield s
    s.stop()


def test_public_endpoints_are_rate_limited_per_client(limited: Server) -> None:
    url = f"{limited.base_url}/v1/public/closed-shops"
    statuses = [httpx.get(url, timeout=30).status_code for _ in range(8)]
    assert statuses[:5] == [200] * 5 and statuses[5:] == [429] * 3, statuses
    r = httpx.get(url, timeout=30)
    assert r.status_code == 429
    assert 1 <= int(r.headers["retry-after"]) <= 10
    assert r.json()["error"] == "TooManyRequests" and r.json()["request_id"]
    # keyed and infrastructure endpoints are not limited
    for _ in range(10):
        assert httpx.get(f"{limited.base_url}/healthz").status_code == 200
        assert (
            httpx.get(f"{limited.base_url}/v1/cases", headers={"X-API-Key": limited.keys["reviewer"]}).status_code
            == 200
        )
    # another client address has its own bucket (127.0.0.2 is loopback too)
    with httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2")) as other:
        assert other.get(url.replace("127.0.0.1", "127.0.0.1"), timeout=30).status_code == 200
