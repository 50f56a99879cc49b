"""The holes of issue 23 at the service's edge, on SQLite and PostgreSQL: ids beyond what a database's
``integer`` holds and text it cannot store are a 422 (never a 500), on the API and the console; a
console session ends at sign-out, key revocation and role change (a copied cookie dies with it); request
bodies take JSON's own types only and no repeated key; ``OPTIONS`` names every method; ``/readyz``
follows the database and the console answers a lost database with an HTML page.

A small real store (generated marketplace, routed and decided cases, a disclosure) served by a real
uvicorn server with no model (the registry refuses connections): these are workflow and console paths.
PostgreSQL is reached through a TCP proxy the outage test cuts for real.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
import sqlalchemy as sa

from core.db import MAX_ID
from core.settings import Settings
from tests.conftest import postgres_schema
from tests.reliability.conftest import TcpProxy
from tests.serving.conftest import free_port, serve_in_thread

BEYOND = MAX_ID + 1  # 2^31: PostgreSQL's integer ends one below


@dataclass
class Edge:
    base_url: str
    url: str
    keys: dict[str, str]
    key_ids: dict[str, str]
    case_id: int
    closed_case: int
    disclosure_id: int
    proxy: TcpProxy | None
    server: Any
    clients: list[httpx.Client] = field(default_factory=list)

    def client(self, role: str | None = None) -> httpx.Client:
        headers = {"X-API-Key": self.keys[role]} if role else {}
        c = httpx.Client(base_url=self.base_url, headers=headers, timeout=30, follow_redirects=False)
        self.clients.append(c)
        return c

    def stop(self) -> None:
        for c in self.clients:
            c.close()
        self.server.should_exit = True

    def count(self, table: str) -> int:
        from core.db import make_engine

        engine = make_engine(self.url)
        try:
            with engine.connect() as conn:
                return int(conn.execute(sa.text(f"select count(*) from {table}")).scalar_one())
        finally:
            engine.dispose()


def _build(url: str, root: Path, proxy: TcpProxy | None) -> Edge:
    from core.db import session_factory
    from dajia.db import open_store
    from marketplace.generator import GeneratorConfig, generate
    from marketplace.loader import load_marketplace
    from sanctions.cases import decide
    from sanctions.disclosure import approve_disclosures, propose_disclosures
    from sanctions.models import Case
    from sanctions.routing import route_scored
    from sanctions.schemas import Evidence
    from sanctions.scored import ScoredShop
    from sanctions.storefront import import_marketplace
    from sanctions.workflow import Actor, Role
    from serving.app import create_app
    from serving.auth import ApiKeyStore
    from serving.config import ServeOptions

    generate(GeneratorConfig(shops=80, seed=23), root / "market")
    mp = load_marketplace(root / "market")
    engine = open_store(url)
    import_marketplace(engine, mp, detect_evasion=False)
    ids = sorted(str(s) for s in mp.shops["shop_id"])[:6]
    when = pd.Timestamp(mp.snapshot_at).to_pydatetime().replace(tzinfo=None) + timedelta(days=1)
    scored = [ScoredShop(s, 0.9 - i / 100, "suspected", "dajia-shop-risk", "1", ["r"], 0.5) for i, s in enumerate(ids)]
    sessions = session_factory(engine)
    with sessions() as s:
        route_scored(s, scored, now=when)
    with sessions() as s:
        case_ids = [s.query(Case).filter(Case.shop_id == sid).one().case_id for sid in ids]
    boss = Actor("edge-reviewer", Role.REVIEWER)
    with sessions() as s:
        decide(s, case_ids[-1], "close", boss, reason="test buy", evidence=[Evidence(kind="test_buy", ref="TB")])
    with sessions() as s:
        propose_disclosures(s, Actor("edge-admin", Role.ADMIN), basis="issue 23 edge test")
    with sessions() as s:
        published = approve_disclosures(s, Actor("edge-admin-2", Role.ADMIN))
    store = ApiKeyStore(engine)
    keys, key_ids = {}, {}
    for role in ("scorer", "reviewer", "admin"):
        k, secret = store.create(role, f"edge {role}")
        keys[role], key_ids[role] = secret, k.key_id
    engine.dispose()
    home = root / "home"
    home.mkdir()
    settings = Settings(
        home=home,
        DATABASE_URL=url,
        MLFLOW_TRACKING_URI=f"http://127.0.0.1:{free_port()}",  # nothing listens: no model, fast
        public_rate_per_minute=0,
    )
    options = ServeOptions(poll_seconds=3600, registry_timeout_seconds=3, auth_cache_seconds=0.0)
    app = create_app(settings, options)
    base_url, server, _thread = serve_in_thread(app, "edge-api", log_level="warning")
    return Edge(base_url, url, keys, key_ids, case_ids[0], case_ids[-1], published.published[0], proxy, server)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def edge(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    root = tmp_path_factory.mktemp(f"edge-{request.param}")
    if request.param == "sqlite":
        e = _build(f"sqlite:///{root / 'dajia.db'}", root, None)
        yield e
        e.stop()
        return
    admin_url = request.getfixturevalue("postgres_admin_url")
    with postgres_schema(admin_url, prefix="edge_") as url:
        parsed = sa.engine.make_url(url)
        proxy = TcpProxy(parsed.host or "127.0.0.1", parsed.port or 5432)
        proxy.start()
        through = parsed.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        e = _build(through, root, proxy)
        yield e
        e.stop()
        time.sleep(0.5)
        proxy.close()


def _problems(r: httpx.Response) -> str:
    return f"{r.request.method} {r.request.url.path}: {r.status_code} {r.text[:300]}"


# --------------------------------------------------------------------------- ids and text at the edge


def test_ids_beyond_the_database_are_422_on_the_api(edge: Edge) -> None:
    rev, adm, anyone = edge.client("reviewer"), edge.client("admin"), edge.client()
    decision = {"action": "dismiss", "reason": "x"}
    calls = [
        (anyone, "GET", f"/v1/public/announcements/{BEYOND}", None),
        (rev, "GET", f"/v1/cases/{BEYOND}", None),
        (rev, "GET", f"/v1/campaigns/{BEYOND}", None),
        (rev, "POST", f"/v1/cases/{BEYOND}/decisions", decision),
        (rev, "POST", f"/v1/cases/{BEYOND}/appeal-decisions", {"uphold": True, "reason": "x"}),
        (adm, "POST", f"/v1/campaigns/{BEYOND}/approval", None),
        (adm, "POST", f"/v1/campaigns/{BEYOND}/publication", None),
        (rev, "POST", f"/v1/cases/{edge.case_id}/decisions", {**decision, "expected_version": BEYOND}),
        (rev, "POST", "/v1/campaigns", {"title": "t", "case_ids": [BEYOND]}),
    ]
    wrong = []
    for client, method, path, body in calls:
        r = client.request(method, path, json=body)
        if r.status_code != 422 or r.json()["error"] != "ValidationError":
            wrong.append(_problems(r))
    assert not wrong, wrong
    # the largest id the databases hold is still an id: an unknown one is a 404, not a 422
    for path in (f"/v1/cases/{MAX_ID}", f"/v1/campaigns/{MAX_ID}"):
        assert rev.get(path).status_code == 404, path
    assert anyone.get(f"/v1/public/announcements/{MAX_ID}").status_code == 404


def test_text_a_database_cannot_store_is_422_on_the_api(edge: Edge) -> None:
    events = edge.count("case_events")
    rev = edge.client("reviewer")
    dec = f"/v1/cases/{edge.case_id}/decisions"
    calls: list[tuple[str, str, Any, str]] = [
        ("POST", dec, {"action": "dismiss", "reason": "a\u0000b"}, "body.reason"),
        # a lone surrogate escaped in JSON text, as a client may send it (it has no UTF-8 spelling)
        ("POST", dec, b'{"action": "dismiss", "reason": "a\\ud800b"}', "body"),
        ("POST", dec, {"action": "ban", "reason": "x", "suspect_listing_ids": ["L\u0000"]},
         "body.suspect_listing_ids[0]"),
        ("POST", dec, {"action": "close", "reason": "x", "evidence": [{"kind": "test_buy", "ref": "\u0000"}]},
         "body.evidence[0].ref"),
        ("POST", "/v1/campaigns", {"title": "\u0000"}, "body.title"),
        ("GET", "/v1/cases?shop_id=a%00b", None, "query.shop_id"),
        ("GET", "/v1/cases?status=open%00", None, "query.status"),
        ("GET", "/v1/predictions?shop_id=a%00b", None, "query.shop_id"),
    ]  # fmt: skip
    wrong = []
    for method, path, body, where in calls:
        if isinstance(body, bytes):
            r = rev.request(method, path, content=body, headers={"content-type": "application/json"})
        else:
            r = rev.request(method, path, json=body)
        paths = [e["path"] for e in r.json().get("errors") or []] if r.status_code == 422 else []
        if r.status_code != 422 or not any(p.startswith(where) for p in paths):
            wrong.append(_problems(r))
    assert not wrong, wrong
    nul = [e for e in rev.post(dec, json={"action": "dismiss", "reason": "\u0000"}).json()["errors"]]
    assert "NUL" in nul[0]["message"], nul
    assert edge.count("case_events") == events  # nothing reached the database


def _signed_in(edge: Edge, secret: str) -> httpx.Client:
    c = edge.client()
    form = c.get("/console/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token, form.text[:300]
    r = c.post(
        "/console/login",
        data={"csrf_token": token.group(1), "next": "/console/queue", "api_key": secret},
        headers={"Origin": edge.base_url},
    )
    assert r.status_code == 303 and r.headers["location"] == "/console/queue", _problems(r)
    assert c.get("/console/queue").status_code == 200
    return c


def _csrf(page: httpx.Response) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert m, page.text[:300]
    return m.group(1)


def test_console_refuses_huge_ids_and_nul_with_html_pages(edge: Edge) -> None:
    c = _signed_in(edge, edge.keys["admin"])
    origin = {"Origin": edge.base_url}
    token = _csrf(c.get(f"/console/cases/{edge.case_id}"))
    huge = "99999999999999999999999"
    for path in (f"/console/cases/{BEYOND}", f"/console/admin/campaigns/{BEYOND}", f"/console/cases/{huge}"):
        r = c.get(path)
        assert r.status_code == 404 and r.headers["content-type"].startswith("text/html"), _problems(r)
    for path in (f"/console/admin/disclosures/{huge}/withdraw", f"/console/admin/disclosures/{BEYOND}/withdraw"):
        r = c.post(path, data={"csrf_token": token, "reason": "x"}, headers=origin)
        assert r.status_code == 404 and r.headers["content-type"].startswith("text/html"), _problems(r)
    events = edge.count("case_events")
    page = c.get(f"/console/cases/{edge.case_id}")
    version = re.search(r'name="expected_version" value="(\d+)"', page.text)
    assert version, page.text[:300]
    r = c.post(
        f"/console/cases/{edge.case_id}/decision",
        data={"csrf_token": token, "action": "dismiss", "reason": "a\x00b", "expected_version": version.group(1)},
        headers=origin,
    )
    assert r.status_code == 422 and "reason" in r.text and "NUL" in r.text, _problems(r)
    assert r.headers["content-type"].startswith("text/html")
    r = c.get("/console/shops/a%00b")
    assert r.status_code == 422 and r.headers["content-type"].startswith("text/html"), _problems(r)
    r = c.post("/console/admin/campaigns", data={"csrf_token": token, "title": "\x00"}, headers=origin)
    assert r.status_code == 422, _problems(r)
    assert c.get("/console/queue?tier=a%00b&model_version=%00").status_code == 200  # a filter no row has
    assert edge.count("case_events") == events


# --------------------------------------------------------------------------- sessions


def test_sign_out_revocation_and_role_change_end_console_sessions_at_once(edge: Edge) -> None:
    from core.db import make_engine
    from serving.auth import ApiKeyStore

    engine = make_engine(edge.url)
    store = ApiKeyStore(engine)
    try:
        # sign out: the copied cookie is dead too
        c = _signed_in(edge, edge.keys["reviewer"])
        copied = edge.client()
        copied.cookies.update(c.cookies)
        assert copied.get("/console/queue").status_code == 200
        r = c.post(
            "/console/logout", data={"csrf_token": _csrf(c.get("/console/queue"))}, headers={"Origin": edge.base_url}
        )
        assert r.status_code == 303, _problems(r)
        r = copied.get("/console/queue")
        assert r.status_code == 303 and r.headers["location"].startswith("/console/login"), _problems(r)
        # revocation: at once, not within a cache time
        key, secret = store.create("reviewer", "edge revoked")
        c = _signed_in(edge, secret)
        store.revoke(key.key_id)
        assert c.get("/console/queue").status_code == 303
        # a role change: the admin's session ends (its cookie carried the admin role)
        key, secret = store.create("admin", "edge demoted")
        c = _signed_in(edge, secret)
        assert c.get("/console/admin/campaigns").status_code == 200
        store.set_role(key.key_id, "reviewer")
        assert c.get("/console/admin/campaigns").status_code == 303
        assert c.get("/console/queue").status_code == 303
        # signing in again gives the new role
        c = _signed_in(edge, secret)
        assert c.get("/console/admin/campaigns").status_code == 403
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- strict request types


def test_request_bodies_take_json_types_only_and_no_repeated_key(edge: Edge) -> None:
    rev, adm = edge.client("reviewer"), edge.client("admin")
    dec = f"/v1/cases/{edge.case_id}/decisions"
    appeal = f"/v1/cases/{edge.case_id}/appeal-decisions"
    events = edge.count("case_events")
    bad: list[tuple[httpx.Client, str, Any]] = [
        (rev, appeal, {"uphold": "yes", "reason": "x"}),
        (rev, appeal, {"uphold": 1, "reason": "x"}),
        (rev, dec, {"action": "dismiss", "reason": "x", "expected_version": "1"}),
        (rev, dec, {"action": "dismiss", "reason": "x", "expected_version": 1.0}),
        (adm, "/v1/campaigns", {"title": "t", "case_ids": [str(edge.closed_case)]}),
        (rev, dec, b'{"action": "close", "action": "dismiss", "reason": "x"}'),
        (rev, dec, b'{"action": "dismiss", "reason": "x", "evidence": [{"kind": "test_buy", "kind": "other"}]}'),
    ]
    wrong = []
    for client, path, body in bad:
        if isinstance(body, bytes):
            r = client.post(path, content=body, headers={"content-type": "application/json"})
            ok = r.status_code == 422 and "duplicate key" in r.text
        else:
            r = client.post(path, json=body)
            ok = r.status_code == 422
        if not ok:
            wrong.append(_problems(r))
    assert not wrong, wrong
    assert edge.count("case_events") == events


def test_options_names_every_method_of_the_address(edge: Edge) -> None:
    c = edge.client("reviewer")
    r = c.options("/v1/campaigns")
    assert r.status_code == 405
    assert {m.strip() for m in r.headers["allow"].split(",")} == {"GET", "POST"}
    r = c.options(f"/v1/cases/{edge.case_id}")
    assert {m.strip() for m in r.headers["allow"].split(",")} == {"GET"}


# --------------------------------------------------------------------------- the database goes away


def test_readyz_follows_the_database_and_console_errors_are_pages(edge: Edge) -> None:
    if edge.proxy is None:
        pytest.skip("the outage is cut at the TCP proxy in front of PostgreSQL")
    c = _signed_in(edge, edge.keys["reviewer"])
    before = httpx.get(f"{edge.base_url}/readyz", timeout=10).json()
    assert before["database_error"] is None  # (503 here only because no model is loaded)
    edge.proxy.cut()
    try:
        r = httpx.get(f"{edge.base_url}/readyz", timeout=10)
        assert r.status_code == 503 and r.json()["database_error"], r.text
        page = c.get(f"/console/cases/{edge.case_id}")
        assert page.status_code == 503, _problems(page)
        assert page.headers["content-type"].startswith("text/html") and "database" in page.text
        assert page.headers.get("retry-after")
        api = edge.client("reviewer").get(f"/v1/cases/{edge.case_id}")
        assert api.status_code == 503 and api.json()["error"] == "DatabaseUnavailable"
    finally:
        edge.proxy.start()
    deadline = time.monotonic() + 20
    while httpx.get(f"{edge.base_url}/readyz", timeout=10).json()["database_error"] is not None:
        assert time.monotonic() < deadline, "readyz did not recover"
        time.sleep(0.2)
    assert c.get(f"/console/cases/{edge.case_id}").status_code == 200
