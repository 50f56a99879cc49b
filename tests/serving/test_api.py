"""The scoring API over real HTTP: auth, scoring by id and inline, limits, prediction log, shadow,
routing into cases, alias moves and a registry outage (see conftest for the real parts)."""

from __future__ import annotations

import concurrent.futures as cf
import json
import time
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.serving.conftest import MAX_BATCH, MAX_BODY_MB, N_SHOPS, Api, Registry


@pytest.fixture(scope="session")
def market(registry: Registry) -> Any:
    from marketplace.loader import load_marketplace

    return load_marketplace(registry.data)


@pytest.fixture(scope="session")
def shop_ids(market: Any) -> list[str]:
    return [str(s) for s in market.shops["shop_id"]]


@pytest.fixture(scope="session")
def all_scores(api: Api, shop_ids: list[str]) -> dict[str, dict[str, Any]]:
    r = api.client("scorer").post("/v1/scores", json={"shop_ids": shop_ids[:MAX_BATCH]})
    assert r.status_code == 200, r.text
    return {x["shop_id"]: x for x in r.json()["results"]}


def test_health_ready_openapi_metrics(api: Api) -> None:
    c = api.client()
    assert c.get("/healthz").json() == {"status": "ok"}
    ready = c.get("/readyz")
    assert ready.status_code == 200
    body = ready.json()
    assert body["ready"] is True
    assert body["model"]["version"] == "1" and body["model"]["source"] == "registry"
    assert body["model"]["cached_fallback"] is False
    assert body["shadow"]["version"] == "2"
    assert body["marketplace_shops"] == N_SHOPS
    spec = c.get("/openapi.json").json()
    assert "/v1/scores" in spec["paths"] and "/v1/predictions" in spec["paths"]
    text = c.get("/metrics").text
    assert 'dajia_model_info{name="dajia-shop-risk",shadow_version="2",source="registry",version="1"} 1.0' in text
    assert 'dajia_http_request_seconds_count{method="GET",route="/healthz"}' in text


def test_the_sqlite_log_is_checkpointed_in_the_background(api: Api, shop_ids: list[str]) -> None:
    r = api.client("scorer").post("/v1/scores", json={"shop_ids": shop_ids[:5]})  # something in the log
    assert r.status_code == 200, r.text

    def done() -> float:
        text = api.client().get("/metrics").text
        series = 'dajia_sqlite_wal_checkpoints_total{mode="passive",result="done"}'
        line = next((ln for ln in text.splitlines() if ln.startswith(series)), "")
        return float(line.split()[-1]) if line else 0.0

    deadline = time.monotonic() + 10
    while done() < 2 and time.monotonic() < deadline:  # every 0.2 s in these tests
        time.sleep(0.1)
    assert done() >= 2
    text = api.client().get("/metrics").text
    assert "dajia_sqlite_wal_frames " in text and 'result="error"' not in text


def test_auth_cases(api: Api, shop_ids: list[str]) -> None:
    body = {"shop_ids": shop_ids[:1]}
    anon = api.client().post("/v1/scores", json=body)
    assert anon.status_code == 401 and anon.headers["www-authenticate"] == "ApiKey"
    assert api.client().post("/v1/scores", json=body, headers={"X-API-Key": "dajia_nope_nope"}).status_code == 401
    assert api.client("revoked").post("/v1/scores", json=body).status_code == 401
    assert api.client("reviewer").post("/v1/scores", json=body).status_code == 403
    assert api.client("scorer").get("/v1/predictions").status_code == 403
    assert api.client().get("/v1/predictions").status_code == 401
    assert api.client("scorer").post("/v1/scores", json=body).status_code == 200
    assert api.client("admin").post("/v1/scores", json=body).status_code == 200
    assert api.client("reviewer").get("/v1/predictions").status_code == 200
    assert api.client("admin").get("/v1/predictions").status_code == 200


def test_score_by_id_batch(
    api: Api, shop_ids: list[str], all_scores: dict[str, dict[str, Any]], registry: Registry
) -> None:
    assert len(all_scores) == min(MAX_BATCH, N_SHOPS)
    tiers = {x["tier"] for x in all_scores.values()}
    assert tiers <= {"low", "watch", "suspected"} and "suspected" in tiers
    for x in all_scores.values():
        assert 0.0 <= x["score"] <= 1.0
        assert x["model_name"] == "dajia-shop-risk" and x["model_version"] == "1"
        if x["tier"] == "low":
            assert x["reasons"] == []
        else:  # the features that pushed the score up (a shop with none has no reason to give)
            assert len(x["reasons"]) <= 3 and all(isinstance(s, str) and s for s in x["reasons"])
    flagged = [x for x in all_scores.values() if x["tier"] != "low"]
    assert flagged and sum(bool(x["reasons"]) for x in flagged) >= 0.8 * len(flagged)
    # the model ranks: known counterfeiters score higher than honest shops on average
    truth = pd.read_parquet(registry.data / "ground_truth.parquet")
    fake = set(truth.loc[truth["is_counterfeiter"], "shop_id"].astype(str))
    s_fake = [v["score"] for k, v in all_scores.items() if k in fake]
    s_real = [v["score"] for k, v in all_scores.items() if k not in fake]
    assert np.mean(s_fake) > np.mean(s_real)
    # one shop, request id echoed in header and body
    r = api.client("scorer").post("/v1/scores", json={"shop_ids": [shop_ids[0]]})
    rid = r.headers["x-request-id"]
    assert r.json()["request_id"] == rid and r.json()["results"][0]["request_id"] == rid
    assert r.json()["results"][0]["score"] == pytest.approx(all_scores[shop_ids[0]]["score"], abs=1e-12)


def test_scores_come_with_a_rank_and_percentile_among_the_marketplace(
    api: Api, shop_ids: list[str], all_scores: dict[str, dict[str, Any]], market: Any
) -> None:
    r = api.client("scorer").post("/v1/scores", json={"shop_ids": shop_ids[MAX_BATCH:]})
    assert r.status_code == 200, r.text
    assert r.json()["reference"] == {"source": "marketplace", "shops": N_SHOPS}
    every = {**all_scores, **{x["shop_id"]: x for x in r.json()["results"]}}
    assert len(every) == N_SHOPS
    # one rank per shop, 1..N, riskiest first; equal scores ordered by shop id
    order = sorted(every, key=lambda k: (-every[k]["score"], k))
    assert [every[k]["rank"] for k in order] == list(range(1, N_SHOPS + 1))
    assert every[order[0]]["percentile"] == 100.0
    assert every[order[-1]]["percentile"] == pytest.approx(100.0 / N_SHOPS, abs=1e-3)
    # a small request answers the same rank as the whole batch (no per-request population)
    one = api.client("scorer").post("/v1/scores", json={"shop_ids": [order[7]]}).json()["results"][0]
    assert (one["rank"], one["percentile"]) == (8, every[order[7]]["percentile"])


def test_score_inline_records_match_by_id(api: Api, market: Any, all_scores: dict[str, dict[str, Any]]) -> None:
    from marketplace.records import records_from_frames

    flagged = [k for k, v in all_scores.items() if v["tier"] != "low"][:2]
    chosen = [*flagged, *[k for k, v in all_scores.items() if k not in flagged][:2]]
    frames = {name: market.table(name) for name in market.table_names()}
    records = records_from_frames(frames, chosen)
    as_of = (pd.Timestamp(market.snapshot_at) + pd.Timedelta(seconds=1)).isoformat()
    payload = {"records": [r.model_dump(mode="json") for r in records], "as_of": as_of}
    r = api.client("scorer").post("/v1/scores", json=payload)
    assert r.status_code == 200, r.text
    got = {x["shop_id"]: x for x in r.json()["results"]}
    assert list(got) == chosen
    for sid in chosen:
        assert got[sid]["score"] == pytest.approx(all_scores[sid]["score"], abs=1e-9)
        assert got[sid]["tier"] == all_scores[sid]["tier"]
        assert got[sid]["reasons"] == all_scores[sid]["reasons"]
        assert got[sid]["rank"] == all_scores[sid]["rank"]  # the same score ranks where the shop stands


def test_inline_fast_path_and_model_path_agree(api: Api, market: Any, all_scores: dict[str, dict[str, Any]]) -> None:
    """Records the column check proves valid, and records in spellings only ShopRecord reads (a time with
    a space for its T, or without seconds), score identically: one validation, two routes to it. A price
    sent as a string is no spelling of a number (issue 23: strict types): 422 on either path."""
    import orjson

    from marketplace.records import records_from_frames
    from serving.routes.scores import inline_records

    chosen = [k for k, v in all_scores.items() if v["tier"] != "low"][:2] + [k for k in list(all_scores)[:2]]
    chosen = list(dict.fromkeys(chosen))
    frames = {name: market.table(name) for name in market.table_names()}
    records = [r.model_dump(mode="json") for r in records_from_frames(frames, chosen)]
    as_of = (pd.Timestamp(market.snapshot_at) + pd.Timedelta(seconds=1)).isoformat()
    plain = {"records": records, "as_of": as_of}
    lax = orjson.loads(orjson.dumps(plain))
    opened = lax["records"][0]["opened_at"]
    lax["records"][0]["opened_at"] = opened.replace("T", " ", 1)  # pydantic reads it; the column check leaves it
    if opened.endswith(":00"):
        lax["records"][0]["opened_at"] = opened[:-3]  # "YYYY-MM-DDTHH:MM": the model's path only
    priced = orjson.loads(orjson.dumps(plain))
    listing = next(r for r in priced["records"] if r["listings"])["listings"][0]
    listing["price"] = str(listing["price"])
    assert inline_records(orjson.dumps(plain), MAX_BATCH) is not None
    assert inline_records(orjson.dumps(lax), MAX_BATCH) is None
    c = api.client("scorer")
    fast, slow = c.post("/v1/scores", json=plain), c.post("/v1/scores", json=lax)
    assert fast.status_code == 200 and slow.status_code == 200, (fast.text, slow.text)
    refused = c.post("/v1/scores", json=priced)
    assert refused.status_code == 422 and "price" in refused.json()["errors"][0]["path"], refused.text
    strip = ("request_id",)
    assert [{k: v for k, v in x.items() if k not in strip} for x in fast.json()["results"]] == [
        {k: v for k, v in x.items() if k not in strip} for x in slow.json()["results"]
    ]
    for x in fast.json()["results"]:
        assert x["score"] == pytest.approx(all_scores[x["shop_id"]]["score"], abs=1e-9)


def test_inline_records_fall_back_to_shoprecord_for_older_feature_code(
    registry: Registry, market: Any, shop_ids: list[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    """A model whose shipped feature code has no column path (no ``features.online``) scores records
    checked column by column through ``ShopRecord`` objects made from the body: same rows either way."""
    import sys
    from pathlib import Path

    import mlflow
    import orjson

    from marketplace.records import records_from_frames
    from serving.routes.scores import inline_records
    from serving.runtime import ModelRuntime
    from serving.scoring import _features
    from tests.serving.conftest import home_settings

    name = home_settings(registry.home).model_name
    source = registry.client().get_model_version_download_uri(name, "1")
    local = mlflow.artifacts.download_artifacts(
        artifact_uri=source, dst_path=str(tmp_path), tracking_uri=registry.store_uri
    )
    rt = ModelRuntime.from_dir(Path(local), name, "1")
    frames = {n: market.table(n) for n in market.table_names()}
    records = [r.model_dump(mode="json") for r in records_from_frames(frames, shop_ids[:3])]
    as_of = (pd.Timestamp(market.snapshot_at) + pd.Timedelta(seconds=1)).isoformat()
    req = inline_records(orjson.dumps({"records": records, "as_of": as_of}), MAX_BATCH)
    assert req is not None
    ids, X, _ = _features(rt, req)
    calls: list[int] = []
    by_records = rt.features_for_records
    monkeypatch.setattr(rt, "features_for_records", lambda recs, at: calls.append(len(recs)) or by_records(recs, at))
    # older model code: its features.online has no tables_from_columns, so importing it fails
    monkeypatch.delattr(sys.modules["features.online"], "tables_from_columns")
    ids_old, X_old, _ = _features(rt, req)
    assert calls == [3]
    assert ids_old == ids == shop_ids[:3]
    np.testing.assert_array_equal(X_old, X)


def test_scoring_fast_path_keeps_headers_metrics_and_routing(api: Api, shop_ids: list[str]) -> None:
    """POST /v1/scores skips the router (serving.routes.scores.ScoresFastPath): the answer still carries
    the request id and security headers, is counted under its route, and other methods still route."""
    c = api.client("scorer")
    r = c.post("/v1/scores", json={"shop_ids": shop_ids[:1]}, headers={"X-Request-ID": "fast-path-1"})
    assert r.status_code == 200
    assert r.headers["x-request-id"] == "fast-path-1" and r.headers["x-content-type-options"] == "nosniff"
    assert r.json()["request_id"] == "fast-path-1"
    bad = c.post("/v1/scores", json={"shop_ids": ["no-such-shop"]})
    assert bad.status_code == 404 and bad.json()["error"] == "NotFound" and bad.json()["request_id"]
    assert bad.headers["x-content-type-options"] == "nosniff"
    wrong_method = c.get("/v1/scores")
    assert wrong_method.status_code == 405 and wrong_method.json()["error"] == "HTTPError"
    metrics = api.client().get("/metrics").text
    assert 'dajia_http_responses_total{route="/v1/scores",status="200"}' in metrics
    assert 'dajia_http_errors_total{route="/v1/scores",status="404"}' in metrics


def _paths(r: Any) -> list[str]:
    assert r.status_code == 422, r.text
    return [e["path"] for e in r.json()["errors"]]


def test_limits_and_validation_paths(api: Api, market: Any, shop_ids: list[str]) -> None:
    from marketplace.records import records_from_frames

    c = api.client("scorer")
    assert _paths(c.post("/v1/scores", json={"shop_ids": ["s"] * (MAX_BATCH + 1)})) == ["body.shop_ids"]
    assert _paths(c.post("/v1/scores", json={"shop_ids": ["x" * 65]})) == ["body.shop_ids[0]"]
    assert _paths(c.post("/v1/scores", json={"shop_ids": shop_ids[:1], "top": 0})) == ["body.top"]
    assert _paths(c.post("/v1/scores", json={})) == ["body"]
    frames = {name: market.table(name) for name in market.table_names()}
    rec = records_from_frames(frames, shop_ids[:1])[0].model_dump(mode="json")
    assert rec["listings"], "the test shop needs a listing"
    rec["listings"][0]["price"] = -5
    rec["name"] = "n" * 201
    paths = _paths(c.post("/v1/scores", json={"records": [rec]}))
    assert "body.records[0].listings[0].price" in paths and "body.records[0].name" in paths
    big = c.post(
        "/v1/scores",
        content=b"[" + b" " * int(MAX_BODY_MB * 1024 * 1024) + b"]",
        headers={"content-type": "application/json"},
    )
    assert big.status_code == 413 and big.json()["error"] == "ContentTooLarge"
    unknown = c.post("/v1/scores", json={"shop_ids": ["no-such-shop"]})
    assert unknown.status_code == 404 and "no-such-shop" in unknown.json()["message"]


def test_prediction_log_and_shadow(api: Api, shop_ids: list[str]) -> None:
    sid = shop_ids[3]
    r = api.client("scorer").post("/v1/scores", json={"shop_ids": [sid]})
    assert r.status_code == 200
    assert all(x["model_version"] == "1" for x in r.json()["results"])  # the challenger is never returned
    rid = r.json()["request_id"]
    page = api.client("reviewer").get("/v1/predictions", params={"shop_id": sid}).json()["predictions"]
    mine = [p for p in page if p["request_id"] == rid]
    served = [p for p in mine if not p["shadow"]]
    shadow = [p for p in mine if p["shadow"]]
    assert len(served) == 1 and len(shadow) == 1
    assert served[0]["model_version"] == "1" and shadow[0]["model_version"] == "2"
    assert served[0]["score"] == r.json()["results"][0]["score"]
    assert served[0]["key_id"] and len(served[0]["feature_digest"]) == 32
    assert served[0]["tier"] == r.json()["results"][0]["tier"]
    only_shadow = api.client("reviewer").get("/v1/predictions", params={"shop_id": sid, "shadow": True}).json()
    assert only_shadow["predictions"] and all(p["shadow"] for p in only_shadow["predictions"])
    assert "dajia_shadow_score_count" in api.client().get("/metrics").text


def test_route_to_case_is_idempotent(api: Api, all_scores: dict[str, dict[str, Any]]) -> None:
    suspected = [k for k, v in all_scores.items() if v["tier"] == "suspected"][:3]
    low = [k for k, v in all_scores.items() if v["tier"] != "suspected"][:1]
    assert suspected, "the trained model flags no shop as suspected"
    c = api.client("scorer")
    first = c.post("/v1/scores", json={"shop_ids": suspected + low, "route": True})
    assert first.status_code == 200, first.text
    cases1 = {x["shop_id"]: x["case"] for x in first.json()["results"]}
    assert all(cases1[s] is not None and cases1[s]["status"] == "open" for s in suspected)
    assert all(cases1[s] is None for s in low)
    second = c.post("/v1/scores", json={"shop_ids": suspected, "route": True})
    cases2 = {x["shop_id"]: x["case"] for x in second.json()["results"]}
    for s in suspected:
        assert cases2[s]["case_id"] == cases1[s]["case_id"]
        assert cases2[s]["created"] is False
    assert len({cases1[s]["case_id"] for s in suspected}) == len(suspected)


def test_alias_move_reloads_without_failing_requests(api: Api, registry: Registry, shop_ids: list[str]) -> None:
    client = registry.client()
    stop = time.monotonic() + 60
    statuses: list[int] = []
    versions: set[str] = set()

    def hammer() -> None:
        c = api.client("scorer")
        while time.monotonic() < stop:
            r = c.post("/v1/scores", json={"shop_ids": shop_ids[:5]})
            statuses.append(r.status_code)
            if r.status_code == 200:
                versions.add(r.json()["model"]["version"])
                if r.json()["model"]["version"] == "2":
                    return

    with cf.ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(hammer) for _ in range(4)]
        time.sleep(0.5)
        client.set_registered_model_alias("dajia-shop-risk", "champion", "2")
        body = api.wait_version("2")
        for f in futures:
            f.result()
    assert set(statuses) == {200}, statuses
    assert versions == {"1", "2"}
    assert body["model"]["source"] == "registry"
    assert "dajia_model_reloads_total 1.0" in api.client().get("/metrics").text
    # back to version 1 for the tests after this one
    client.set_registered_model_alias("dajia-shop-risk", "champion", "1")
    api.wait_version("1")


def test_registry_down_keeps_last_good_model(api: Api, registry: Registry, shop_ids: list[str]) -> None:
    registry.stop()
    try:
        deadline = time.monotonic() + 30
        ready: dict[str, Any] = {}
        while time.monotonic() < deadline:
            ready = api.client().get("/readyz").json()
            if ready["last_error"] and "registry unreachable" in ready["last_error"]:
                break
            time.sleep(0.1)
        assert "registry unreachable" in (ready["last_error"] or ""), ready
        assert ready["ready"] is True and ready["model"]["version"] == "1"
        r = api.client("scorer").post("/v1/scores", json={"shop_ids": shop_ids[:3]})
        assert r.status_code == 200 and r.json()["model"]["version"] == "1"
        metrics = api.client().get("/metrics").text
        line = next(ln for ln in metrics.splitlines() if ln.startswith("dajia_registry_errors_total "))
        assert float(line.split()[1]) >= 1
    finally:
        registry.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and api.client().get("/readyz").json()["last_error"]:
        time.sleep(0.1)
    assert api.client().get("/readyz").json()["last_error"] is None


def test_case_endpoints_and_public_reads(api: Api, all_scores: dict[str, dict[str, Any]]) -> None:
    suspected = [k for k, v in all_scores.items() if v["tier"] == "suspected"]
    sid = suspected[-1]
    routed = api.client("scorer").post("/v1/scores", json={"shop_ids": [sid], "route": True}).json()
    case_id = routed["results"][0]["case"]["case_id"]
    reviewer = api.client("reviewer")
    case = reviewer.get(f"/v1/cases/{case_id}")
    assert case.status_code == 200, case.text
    body = case.json()
    assert body["shop_id"] == sid and body["status"] == "open"
    assert body["model_version"] == "1" and body["score"] == pytest.approx(routed["results"][0]["score"])
    listed = reviewer.get("/v1/cases", params={"shop_id": sid}).json()
    assert [c["case_id"] for c in listed] == [int(case_id)]
    decided = reviewer.post(
        f"/v1/cases/{case_id}/decisions",
        json={"action": "dismiss", "reason": "reviewed: listings match the brand's authorised catalogue"},
        headers={"Idempotency-Key": f"dismiss-{case_id}"},
    )
    assert decided.status_code == 200, decided.text
    assert decided.json()["new_status"] == "dismissed"
    # people, not keys: each event names the actor (the key's person) and the key used (issue 18)
    events = reviewer.get(f"/v1/cases/{case_id}").json()["events"]
    scorer_key, reviewer_key = (api.keys[r].split("_")[1] for r in ("scorer", "reviewer"))
    assert (events[0]["actor_id"], events[0]["via"]) == (f"api-key:{scorer_key}:scorer", f"key:{scorer_key}")
    assert (events[-1]["actor_id"], events[-1]["via"]) == (f"api-key:{reviewer_key}", f"key:{reviewer_key}")
    # the evidence snapshot keeps the feature row the score was computed from
    from sqlalchemy import create_engine, text

    engine = create_engine(f"sqlite:///{api.registry.home / 'dajia.db'}")
    try:
        with engine.connect() as conn:
            raw = conn.execute(text("SELECT content FROM evidence_snapshots WHERE case_id = :c"), {"c": case_id})
            snap = raw.scalar_one()
    finally:
        engine.dispose()
    features = (json.loads(snap) if isinstance(snap, str) else snap)["score"]["features"]
    assert features and len(features) >= 10 and all(isinstance(k, str) for k in features)
    again = reviewer.post(f"/v1/cases/{case_id}/decisions", json={"action": "dismiss", "reason": "twice"})
    assert again.status_code == 409, again.text
    assert reviewer.get("/v1/cases/999999999").status_code == 404
    assert api.client("scorer").get("/v1/cases").status_code == 403
    assert api.client("reviewer").post("/v1/campaigns/1/approval").status_code == 403
    anon = api.client()
    assert anon.get("/v1/cases").status_code == 401
    assert anon.get("/v1/public/closed-shops").status_code == 200
    assert isinstance(anon.get("/v1/public/announcements").json(), list)


def test_four_eyes_over_http_an_admin_cannot_approve_what_they_drafted(
    api: Api, all_scores: dict[str, dict[str, Any]]
) -> None:
    """The drafter's approval is 403 naming the rule; a second admin's key approves (and is recorded)."""
    suspected = [k for k, v in all_scores.items() if v["tier"] == "suspected"]
    sid = suspected[-2]
    routed = api.client("scorer").post("/v1/scores", json={"shop_ids": [sid], "route": True}).json()
    case_id = int(routed["results"][0]["case"]["case_id"])
    admin, second = api.client("admin"), api.client("admin2")
    banned = admin.post(f"/v1/cases/{case_id}/decisions", json={"action": "ban", "reason": "suspected"})
    assert banned.status_code == 200, banned.text
    draft = admin.post("/v1/campaigns", json={"title": "four eyes", "case_ids": [case_id]})
    assert draft.status_code == 200, draft.text
    cid = draft.json()["campaign_id"]
    refused = admin.post(f"/v1/campaigns/{cid}/approval")
    assert refused.status_code == 403 and "four eyes" in refused.text, refused.text
    assert admin.get(f"/v1/campaigns/{cid}").json()["status"] == "draft"  # nothing written
    ok = second.post(f"/v1/campaigns/{cid}/approval")
    assert ok.status_code == 200, ok.text
    body = ok.json()
    assert body["status"] == "approved" and body["approved_by"] != body["created_by"]
    empty = second.post("/v1/disclosures/approval", json={})
    assert empty.status_code == 409 and "no proposed disclosure" in empty.text, empty.text
