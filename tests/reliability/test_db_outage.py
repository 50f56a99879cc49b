"""The database goes away for real (a TCP proxy between the API and PostgreSQL is cut): the API answers
503 with Retry-After, never 500, recovers by itself when the database is back, and no request is
half-applied (the prediction rows are exactly those of the requests answered 200)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
import sqlalchemy as sa

from tests.reliability.conftest import Run, Server, TcpProxy, start_server


@pytest.fixture
def proxied(run: Run, postgres_url: str) -> Iterator[tuple[Server, TcpProxy, sa.Engine]]:
    from core.db import make_engine
    from dajia.db import migrate
    from serving.auth import ApiKeyStore

    proxy = TcpProxy("127.0.0.1", 5432)
    proxy.start()
    url = postgres_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}").replace(
        "localhost:5432", f"127.0.0.1:{proxy.port}"
    )
    assert str(proxy.port) in url, url
    direct = make_engine(postgres_url)
    migrate(direct)
    store = ApiKeyStore(direct)
    keys = {role: store.create(role, f"outage {role}")[1] for role in ("scorer", "reviewer", "admin")}
    settings = run.settings.model_copy(update={"database_url": url, "public_rate_per_minute": 0.0})
    server = start_server(settings, run.data, keys)
    yield server, proxy, direct
    server.stop()
    proxy.close()
    direct.dispose()


def _predictions(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text("select count(*) from serving_predictions")).scalar_one())


def test_database_outage_is_a_503_and_recovers_by_itself(run: Run, proxied: tuple[Server, TcpProxy, sa.Engine]) -> None:
    server, proxy, direct = proxied
    shop = str(run.shops()["shop_id"].iloc[0])
    score = {"json": {"shop_ids": [shop]}, "headers": {"X-API-Key": server.keys["scorer"]}, "timeout": 60}
    cases = {"headers": {"X-API-Key": server.keys["reviewer"]}, "timeout": 60}
    answered_ok = 0
    for _ in range(3):
        r = httpx.post(f"{server.base_url}/v1/scores", **score)  # type: ignore[arg-type]
        assert r.status_code == 200, r.text
        answered_ok += 1
    assert httpx.get(f"{server.base_url}/v1/cases", **cases).status_code == 200  # type: ignore[arg-type]
    assert _predictions(direct) == answered_ok

    proxy.cut()
    statuses = []
    for _ in range(4):
        r = httpx.post(f"{server.base_url}/v1/scores", **score)  # type: ignore[arg-type]
        statuses.append(r.status_code)
        if r.status_code == 200:
            answered_ok += 1  # served before the pool noticed: must then be logged too
        else:
            assert r.status_code == 503, r.text
            assert r.headers["retry-after"] == "2"
            assert r.json()["error"] == "DatabaseUnavailable"
        r = httpx.get(f"{server.base_url}/v1/cases", **cases)  # type: ignore[arg-type]
        statuses.append(r.status_code)
        assert r.status_code in (200, 503), r.text
    assert 503 in statuses and 500 not in statuses, statuses
    assert httpx.get(f"{server.base_url}/healthz").status_code == 200  # the process itself is fine

    proxy.start()  # the database is back: no restart, no operator
    deadline = time.monotonic() + 30
    while True:
        r = httpx.post(f"{server.base_url}/v1/scores", **score)  # type: ignore[arg-type]
        if r.status_code == 200:
            answered_ok += 1
            break
        assert r.status_code == 503 and time.monotonic() < deadline, r.text
        time.sleep(0.5)
    # the workflow's pool has no pre-ping (by design): each stale pooled connection may cost one 503
    stale = 0
    while (r := httpx.get(f"{server.base_url}/v1/cases", **cases)).status_code != 200:  # type: ignore[arg-type]
        assert r.status_code == 503 and time.monotonic() < deadline, r.text
        stale += 1
    assert stale <= 10, stale
    # nothing half-applied: one prediction row per 200 answer, none for a 503
    assert _predictions(direct) == answered_ok
