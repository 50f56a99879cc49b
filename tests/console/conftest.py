"""Fixtures for the console tests: a small real store served by a real uvicorn server, and Chromium.

The store is built with the real services, no model training: a generated 300-shop marketplace is
imported into the sanction store, 40 of its shops are routed as scored shops (cases opened with
scores, tiers, model version and reasons, as the scoring API would), two of them are decided so
the admin pages have something to publish, and API keys are made for each role. The app gets the
marketplace object (complaints, reviews, brand prices) and a registry address that refuses
connections, so it runs without a model, as a console may.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from core.settings import Settings
from tests.conftest import IN_CI
from tests.serving.conftest import free_port, serve_in_thread

N_SHOPS = 300
N_CASES = 40
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
OUTPUT = Path(__file__).resolve().parents[2] / "test-output" / "console"


@dataclass
class Console:
    base_url: str
    settings: Settings
    keys: dict[str, str]
    key_ids: dict[str, str]
    #: shop ids routed into cases, riskiest first, with their scores and reasons
    scored: list[Any]
    mp: Any
    app: Any = None
    extra: dict[str, Any] = field(default_factory=dict)
    #: the actor id each key acts under (its person's id for the key's role)
    actor_ids: dict[str, str] = field(default_factory=dict)

    def engine(self) -> Any:
        from core.db import make_engine

        return make_engine(self.settings.resolved_database_url)

    def url(self, path: str) -> str:
        return self.base_url + path


def _reasons(i: int) -> list[str]:
    return [
        f"{12 - i % 10} counterfeit complaints in 30 days, top 1% of shops",
        f"prices {60 + i % 30}% below the brand's reference price",
        "listing titles say 1:1 / 高仿",
    ]


@pytest.fixture(scope="session")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:

    from core.db import make_engine, session_factory
    from dajia.db import migrate, open_store
    from marketplace.generator import GeneratorConfig, generate
    from marketplace.loader import load_marketplace
    from sanctions.cases import decide
    from sanctions.people import register
    from sanctions.routing import route_scored
    from sanctions.schemas import Evidence
    from sanctions.scored import ScoredShop
    from sanctions.storefront import import_marketplace
    from sanctions.workflow import SYSTEM, Actor, Role
    from serving.app import create_app
    from serving.auth import ApiKeyStore
    from serving.config import ServeOptions

    root = tmp_path_factory.mktemp("console")
    data = root / "market"
    generate(GeneratorConfig(shops=N_SHOPS, seed=11), data)
    mp = load_marketplace(data)
    snapshot = pd.Timestamp(mp.snapshot_at).to_pydatetime().replace(tzinfo=None)
    home = root / "home"
    home.mkdir()
    dead = free_port()  # nothing listens here: "registry unreachable", fast
    settings = Settings(
        home=home, DATABASE_URL=f"sqlite:///{home / 'dajia.db'}", MLFLOW_TRACKING_URI=f"http://127.0.0.1:{dead}"
    )
    engine = open_store(settings.resolved_database_url)
    import_marketplace(engine, mp, detect_evasion=False)
    shop_ids = sorted(str(s) for s in mp.shops["shop_id"])[:N_CASES]
    scored = [
        ScoredShop(
            shop_id=sid,
            score=round(0.99 - i * 0.012, 4),
            tier="suspected",
            model_name="dajia-shop-risk",
            model_version="3" if i % 3 else "2",
            reasons=_reasons(i),
            features={
                "complaints_30d": float(12 - i % 10),
                "price_to_reference": 0.4 - (i % 30) / 100,
                "replica_terms": 1.0,
            },
            suspected_threshold=0.5,
        )
        for i, sid in enumerate(shop_ids)
    ]
    sessions = session_factory(engine)
    with sessions() as s:
        route_scored(s, list(reversed(scored)), now=snapshot + timedelta(days=1))
    # two decided cases (the lowest scored ones) for the admin pages
    boss = Actor("fixture-reviewer", Role.REVIEWER)
    with sessions() as s:  # people, not keys: the reviewer who decided and the console's reviewer are named
        register(s, SYSTEM, person_id="fixture-reviewer", name="Zhao Min 赵敏", role="reviewer")
        register(s, SYSTEM, person_id="rita", name="Rita Liu 刘丽", role="reviewer")
    with sessions() as s:
        from sanctions.models import Case

        lowest = [s.query(Case).filter(Case.shop_id == sc.shop_id).one().case_id for sc in scored[-2:]]
    with sessions() as s:
        decide(
            s,
            lowest[0],
            "close",
            boss,
            reason="test buy confirmed a counterfeit",
            evidence=[Evidence(kind="test_buy", ref="TB-1", detail="fake")],
        )
        decide(s, lowest[1], "ban", boss, reason="prices and complaints")
    engine.dispose()

    sengine = make_engine(settings.resolved_database_url)
    migrate(sengine)
    store = ApiKeyStore(sengine)
    keys: dict[str, str] = {}
    key_ids: dict[str, str] = {}
    actor_ids: dict[str, str] = {}
    for role in ("reviewer", "admin", "scorer"):
        k, secret = store.create(role, f"test {role}", "rita" if role == "reviewer" else None)
        keys[role], key_ids[role] = secret, k.key_id
    k, secret = store.create("reviewer", "second reviewer")
    keys["reviewer2"], key_ids["reviewer2"] = secret, k.key_id
    k, secret = store.create("admin", "second admin")  # four eyes: approves what the first drafts
    keys["admin2"], key_ids["admin2"] = secret, k.key_id
    actor_ids.update({r: str(k.actor_id) for k in store.list() for r, i in key_ids.items() if i == k.key_id})
    sengine.dispose()

    env = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "2"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    options = ServeOptions(
        poll_seconds=3600, registry_timeout_seconds=3, auth_cache_seconds=0.5, cache_dir=home / "cache"
    )
    app = create_app(settings, options, marketplace=mp)
    base_url, server, thread = serve_in_thread(app, "console-api", log_level="warning")
    c = Console(base_url, settings, keys, key_ids, scored, mp, app, actor_ids=actor_ids)
    yield c
    server.should_exit = True
    thread.join(timeout=30)
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def _chromium_missing() -> str | None:
    if not (Path(CHROMIUM).exists() or shutil.which("chromium")):
        return f"Debian's Chromium is not installed at {CHROMIUM} (apt-get install -y chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as exc:
        return f"playwright is not installed: {exc}"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Module-scoped: Playwright's sync API keeps an event loop running in this thread while it is
    open, which would break any later test that calls ``asyncio.run``."""
    reason = _chromium_missing()
    if reason is not None:
        if IN_CI:
            pytest.fail(f"CI=true requires the browser: {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page_for(browser: Any, console: Console) -> Iterator[Any]:
    """``page_for(role)``: a fresh browser context (1280×800) signed in with that role's key."""
    contexts: list[Any] = []

    def make(role: str | None) -> Any:
        ctx = browser.new_context(viewport={"width": 1280, "height": 800})
        ctx.set_default_timeout(15_000)
        contexts.append(ctx)
        page = ctx.new_page()
        if role is not None:
            sign_in(page, console, console.keys[role])
        return page

    yield make
    for ctx in contexts:
        ctx.close()


def sign_in(page: Any, console: Console, secret: str) -> None:
    page.goto(console.url("/console/login"))
    page.get_by_label("API key").fill(secret)
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in").click()


def screenshot(page: Any, name: str, full_page: bool = False) -> Path:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    path = OUTPUT / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path
