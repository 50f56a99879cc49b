"""Issue 17 through the real HTTP API (uvicorn on loopback), on SQLite and on PostgreSQL: re-running
routing is a no-op, every closure checks ban evasion, the storefront projection and its feed."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from core.settings import Settings
from dajia.crackdown import store_footprint
from sanctions import cases
from sanctions.models import Claim
from sanctions.routing import detect_ban_evasion
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
    settings = Settings(home=tmp_path, DATABASE_URL=db_url, MLFLOW_TRACKING_URI=f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    options = ServeOptions(poll_seconds=3600, registry_timeout_seconds=2, auth_cache_seconds=0.5, cache_dir=tmp_path)
    app = create_app(settings, options)
    base_url, server, thread = serve_in_thread(app, "effects-api", log_level="warning")
    s = Served(base_url, keys, app, server, thread, engine=engine)
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


def test_rerouting_the_same_scores_changes_nothing_and_decided_shops_reopen_only_on_new_evidence(
    served: Served,
) -> None:
    scorer, reviewer = served.client("scorer"), served.client("reviewer")
    sweep = {"S1": 0.85, "S2": 0.9, "S3": 0.95, "S4": 0.92, "S5": 0.88, "S6": 0.2}
    first = scorer.post("/v1/cases/routing", json=scores(sweep))
    assert first.status_code == 200, first.text
    assert (first.json()["opened"], first.json()["below_tier"]) == (5, 1)
    decide(reviewer, "S1", "dismiss")
    assert decide(reviewer, "S2", "ban")["new_status"] == "banned"  # B1 is owed
    decide(reviewer, "S3", "close", evidence=PROOF)
    decide(reviewer, "S4", "ban")
    decide(reviewer, "S5", "close", evidence=PROOF)
    with served.session() as s:  # S2's buyer is paid and confirms: settled; S5's seller appeals
        (claim,) = s.execute(select(Claim).where(Claim.shop_id == "S2")).scalars()
        cases.record_payment(s, claim.claim_id, seller("S2"), payment_ref="T-1")
        cases.confirm_claim(s, claim.claim_id, Actor("B1", Role.CONSUMER))
        cases.appeal(s, case_of(reviewer, "S5")["case_id"], seller("S5"), reason="genuine stock")
    r = reviewer.post(
        f"/v1/cases/{case_of(reviewer, 'S5')['case_id']}/appeal-decisions", json={"uphold": True, "reason": "mix-up"}
    )
    assert r.json()["new_status"] == "reversed"
    assert [case_of(reviewer, s)["status"] for s in ("S1", "S2", "S3", "S4", "S5")] == [
        "dismissed",
        "settled",
        "closed",
        "banned",
        "reversed",
    ]

    with served.session() as s:
        before = store_footprint(s)
    for _ in range(2):  # the same scores, twice more: nothing opens, nothing freezes, nothing is written
        again = scorer.post("/v1/cases/routing", json=scores(sweep)).json()
        assert (again["opened"], again["rescored"], again["reopened"]) == (0, 0, 0), again
        assert (again["kept_decided"], again["skipped_closed"], again["unchanged"]) == (3, 1, 1), again
        with served.session() as s:
            assert store_footprint(s) == before

    # a little noise on the scores is no new evidence; a score that rose past the decided one by the margin is
    noisy = scorer.post("/v1/cases/routing", json=scores({"S1": 0.87, "S2": 0.91}, version="8")).json()
    assert (noisy["opened"], noisy["kept_decided"]) == (0, 2)
    rose = scorer.post("/v1/cases/routing", json=scores({"S1": 0.97, "S5": 0.95}, version="8")).json()
    assert (rose["opened"], rose["reopened"]) == (2, 2)
    s1 = case_of(reviewer, "S1")
    assert s1["status"] == "open"
    (new,) = [e for e in s1["evidence"] if e["kind"] == "new_evidence"]
    assert new["data"]["why"] == "score_rose" and new["data"]["prior_status"] == "dismissed"
    assert (new["data"]["prior_score"], new["data"]["score"]) == (0.85, 0.97)
    assert s1["events"][0]["reason"].startswith("reopened on new evidence: score rose from 0.8500 to 0.9700")
    assert case_of(reviewer, "S5")["evidence"][-1]["data"]["prior_status"] == "reversed"


def test_every_closure_checks_ban_evasion_in_its_own_transaction(served: Served) -> None:
    scorer, reviewer = served.client("scorer"), served.client("reviewer")
    routed = scorer.post("/v1/cases/routing", json=scores({"E1": 0.9, "E2": 0.9, "E3": 0.9, "E4": 0.9})).json()
    assert routed["opened"] == 4

    def evasion_case(shop_id: str) -> dict[str, Any] | None:
        listed = reviewer.get("/v1/cases", params={"shop_id": shop_id}).json()
        found = [c for c in listed if c["origin"] == "ban_evasion"]
        return found[0] if found else None

    # closure on proof (through the API)
    decide(reviewer, "E1", "close", evidence=PROOF)
    e1x = evasion_case("E1x")
    assert e1x is not None and e1x["status"] == "open"
    assert [e["ref"] for e in e1x["evidence"]] == ["E1"] and e1x["evidence"][0]["data"]["fields"] == ["owner_phone"]
    # refusal to compensate (the seller)
    decide(reviewer, "E2", "ban")
    with served.session() as s:
        cases.refuse_compensation(s, case_of(reviewer, "E2")["case_id"], seller("E2"))
    assert evasion_case("E2x") is not None
    # escalation past the deadline (the deadline job)
    decide(reviewer, "E3", "ban")
    with served.session() as s:
        (done,) = cases.escalate_overdue(s, now=SNAPSHOT + timedelta(days=400))
    assert done.new_status == "closed" and evasion_case("E3x") is not None
    # closing a ban-evasion case is a closure too: E1y, linked to E1x, is caught
    decide(reviewer, "E1x", "close", evidence=PROOF)
    e1y = evasion_case("E1y")
    assert e1y is not None and [e["ref"] for e in e1y["evidence"]] == ["E1x"]
    # opened by the system in the closing transaction, audited, the seller told
    events = reviewer.get(f"/v1/cases/{e1y['case_id']}").json()["events"]
    assert [(e["action"], e["actor_id"]) for e in events] == [("open", "system")]
    # so a later sweep has nothing left to find, and a dismissed link is not reopened
    with served.session() as s:
        assert detect_ban_evasion(s).opened == 0
    decide(reviewer, "E1y", "dismiss")
    with served.session() as s:
        assert detect_ban_evasion(s).opened == 0


def test_the_storefront_follows_every_measure_and_its_feed_is_ordered_and_resumable(served: Served) -> None:
    scorer, reviewer, public = served.client("scorer"), served.client("reviewer"), served.client()
    assert public.get("/v1/storefront/shops/S4").json()["state"] == "visible"
    scorer.post("/v1/cases/routing", json=scores({"S3": 0.9, "S4": 0.9, "S5": 0.9}))
    s4 = public.get("/v1/storefront/shops/S4").json()
    assert (s4["state"], s4["purchasable"], s4["listings_frozen"], len(s4["listings"])) == ("frozen", True, True, 2)
    decide(reviewer, "S4", "ban")
    s4 = public.get("/v1/storefront/shops/S4").json()
    assert (s4["state"], s4["purchasable"], s4["listings"]) == ("not_purchasable", False, [])
    decide(reviewer, "S3", "close", evidence=PROOF)
    assert public.get("/v1/storefront/shops/S3").status_code == 404
    decide(reviewer, "S5", "dismiss")
    assert public.get("/v1/storefront/shops/S5").json()["state"] == "visible"
    with served.session() as s:
        cid = case_of(reviewer, "S3")["case_id"]
        cases.appeal(s, cid, seller("S3"), reason="genuine")
    reviewer.post(f"/v1/cases/{cid}/appeal-decisions", json={"uphold": True, "reason": "lab error"})
    s3 = public.get("/v1/storefront/shops/S3").json()
    assert (s3["state"], s3["purchasable"], len(s3["listings"])) == ("visible", True, 2)

    whole = public.get("/v1/storefront/changes").json()
    got = [(c["shop_id"], c["state"], c["action"]) for c in whole["changes"]]
    assert got == [
        ("S3", "frozen", "opened"),
        ("S4", "frozen", "opened"),
        ("S5", "frozen", "opened"),
        ("S4", "not_purchasable", "banned"),
        ("S3", "removed", "closed"),
        ("S5", "visible", "dismissed"),
        ("S3", "visible", "reversed"),
    ]
    assert all(c["case_id"] is not None and c["at"] for c in whole["changes"])
    cursors = [int(c["cursor"]) for c in whole["changes"]]
    assert cursors == sorted(cursors)
    # resumable: pages of 3 from the start give the same changes, and the end says where to wait
    paged: list[dict[str, Any]] = []
    after = ""
    while True:
        page = public.get("/v1/storefront/changes", params={"after": after, "limit": 3}).json()
        paged += page["changes"]
        if not page["changes"]:
            break
        after = page["next"]
    assert paged == whole["changes"] and after == whole["next"]
    # re-routing the same scores publishes no change
    scorer.post("/v1/cases/routing", json=scores({"S3": 0.9, "S4": 0.9, "S5": 0.9}))
    assert public.get("/v1/storefront/changes", params={"after": whole["next"]}).json()["changes"] == []
    bad = public.get("/v1/storefront/changes", params={"after": "yesterday"})
    assert bad.status_code == 400 and "after" in bad.text
