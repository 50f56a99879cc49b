"""Helpers of the issue 17 API tests: the app served over the test's store (SQLite or PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from core.settings import Settings
from sanctions.storefront import import_marketplace
from sanctions.workflow import Actor, Role
from tests.sanctions.conftest import SNAPSHOT, build_marketplace, shop_row
from tests.serving.conftest import ThreadedServer, free_port, serve_in_thread

PROOF = [{"kind": "test_buy", "ref": "TB-17", "detail": "lab: fake"}]


def seller(shop_id: str) -> Actor:
    return Actor(f"keeper-{shop_id}", Role.SELLER)


@dataclass
class Served(ThreadedServer):
    """The app over the test's store (no model: the registry address refuses), and that store's engine."""

    engine: Engine = field(kw_only=True)
    #: where the service's outbox dispatcher files what it delivers
    outbox: Path = field(kw_only=True)

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)


def _orders() -> list[tuple[str, str, str, float, Any]]:
    at = SNAPSHOT - timedelta(days=10)
    return [
        ("S2", "S2-L0", "B1", 100.0, at),
        ("S4", "S4-L0", "B1", 50.0, at),
        ("S4", "S4-L1", "B2", 80.0, at),
        ("E2", "E2-L0", "B3", 60.0, at),
        ("E3", "E3-L0", "B4", 70.0, at),
        ("S3", "S3-L0", "B5", 40.0, at),
        ("S3", "S3-L1", "B5", 45.0, at),
    ]


def _shops() -> list[dict[str, object]]:
    """S1..S6 unrelated; E1..E3 each linked to one shop (E1x, E2x, E3x) by an identifier."""
    shops = [shop_row(f"S{i}") for i in range(1, 7)]
    shops += [shop_row("E1"), shop_row("E2"), shop_row("E3"), shop_row("E4")]
    shops += [
        shop_row("E1x", owner_phone="138-E1"),  # E1's phone
        shop_row("E2x", device_id="dev-E2"),  # E2's device
        shop_row("E3x", bank_account_hash="bank-E3"),  # E3's bank account
        shop_row("E1y", owner_email="owner-E1x@mail.example"),  # linked to E1x (ban evasion of ban evasion)
    ]
    return shops


@pytest.fixture
def served(db_url: str, engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:
    from serving.app import create_app
    from serving.auth import ApiKeyStore
    from serving.config import ServeOptions

    import_marketplace(engine, build_marketplace(_shops(), orders=_orders()), detect_evasion=False)
    store = ApiKeyStore(engine)
    keys = {role: store.create(role, f"test {role}")[1] for role in ("scorer", "reviewer", "admin")}
    # four eyes: approvals need another admin, and an appeal another reviewer than the one who decided
    keys["admin2"] = store.create("admin", "test second admin")[1]
    keys["reviewer2"] = store.create("reviewer", "test second reviewer")[1]
    settings = Settings(home=tmp_path, DATABASE_URL=db_url, MLFLOW_TRACKING_URI=f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    options = ServeOptions(
        poll_seconds=3600,
        registry_timeout_seconds=2,
        auth_cache_seconds=0.5,
        cache_dir=tmp_path,
        outbox_seconds=0.2,
        outbox_dir=tmp_path / "outbox",
    )
    app = create_app(settings, options)
    base_url, server, thread = serve_in_thread(app, "effects-api", log_level="warning")
    s = Served(base_url, keys, app, server, thread, engine=engine, outbox=tmp_path / "outbox")
    try:
        yield s
    finally:
        s.stop()


def scores(shops: dict[str, float], version: str = "7") -> dict[str, Any]:
    return {
        "scores": [
            {
                "shop_id": sid,
                "score": score,
                "tier": "suspected" if score >= 0.8 else "low",
                "model_name": "dajia-shop-risk",
                "model_version": version,
                "suspected_threshold": 0.8,
                "reasons": ["12 counterfeit complaints in 30 days"],
            }
            for sid, score in shops.items()
        ]
    }


def case_of(api: httpx.Client, shop_id: str) -> dict[str, Any]:
    """The shop's latest case, with events (reviewer's view)."""
    listed = api.get("/v1/cases", params={"shop_id": shop_id}).json()
    assert listed, f"no case for {shop_id}"
    latest = max(c["case_id"] for c in listed)
    body: dict[str, Any] = api.get(f"/v1/cases/{latest}").json()
    return body


def decide(api: httpx.Client, shop_id: str, action: str, **extra: Any) -> dict[str, Any]:
    case = case_of(api, shop_id)
    body = {"action": action, "reason": f"{action} {shop_id}", **extra}
    r = api.post(f"/v1/cases/{case['case_id']}/decisions", json=body)
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out
