"""Reasons that cite evidence, over HTTP: ``evidence: true`` returns each flagged shop's reasons structured
(code, text, the items cited), and every suspected shop's top reason cites a concrete item."""

from __future__ import annotations

import time
from typing import Any

import pytest

from marketplace.loader import load_marketplace
from models.evidence import CONCRETE, EvidenceFinder, explain_with_evidence
from tests.serving.conftest import Api


def _champion(api: Api) -> Any:
    import mlflow

    from models.pyfunc import risk_model_of

    saved = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    mlflow.set_tracking_uri(api.registry.store_uri)
    mlflow.set_registry_uri(api.registry.store_uri)
    try:
        return risk_model_of(mlflow.pyfunc.load_model("models:/dajia-shop-risk@champion"))
    finally:  # the process-wide URIs belong to the other tests' services
        mlflow.set_tracking_uri(saved[0])
        mlflow.set_registry_uri(saved[1])


def test_every_suspected_shops_top_reason_cites_a_concrete_item(api: Api) -> None:
    mp = load_marketplace(api.registry.data)
    model = _champion(api)
    as_of = mp.scoring_time()
    X = model.pipeline.transform(mp, as_of)[model.feature_names]
    tiers = model.score_features(X)["tier"]
    suspected = X.index[tiers.to_numpy() == "suspected"]
    assert len(suspected) >= 10
    finder = EvidenceFinder(model, mp)
    t0 = time.perf_counter()
    reasons = explain_with_evidence(model, finder, X.loc[suspected], as_of)
    per_shop_ms = 1000 * (time.perf_counter() - t0) / len(suspected)
    print(f"{len(suspected)} suspected shops, {per_shop_ms:.1f} ms a shop for three reasons with evidence")
    listings = set(mp.listings["listing_id"].astype(str))
    for shop_id, rs in zip(suspected, reasons, strict=True):
        assert rs, shop_id
        top = rs[0]
        cited = [e for e in top.evidence if e["kind"] in CONCRETE]
        assert cited, (shop_id, top)
        for e in cited:
            if e["kind"] == "listing":
                assert e["id"] in listings  # a real listing of the marketplace
                owner = mp.listings.loc[mp.listings["listing_id"].astype(str) == e["id"], "shop_id"]
                assert str(owner.iloc[0]) == str(shop_id)  # ... of this shop
        if top.code.startswith("listing_text"):
            assert top.evidence[0]["marked"] and "«" in top.evidence[0]["text"]


def test_scores_with_evidence_over_http(api: Api) -> None:
    c = api.client("scorer")
    ids = load_marketplace(api.registry.data).shops["shop_id"].astype(str).tolist()[:500]
    everything = c.post("/v1/scores", json={"shop_ids": ids})
    assert everything.status_code == 200
    flagged = [x["shop_id"] for x in everything.json()["results"] if x["tier"] != "low"][:20]
    low = [x["shop_id"] for x in everything.json()["results"] if x["tier"] == "low"][:3]
    assert flagged and low
    r = c.post("/v1/scores", json={"shop_ids": flagged + low, "evidence": True})
    assert r.status_code == 200, r.text
    results = {x["shop_id"]: x for x in r.json()["results"]}
    for sid in flagged:
        details = results[sid]["reason_details"]
        assert [d["text"] for d in details] == results[sid]["reasons"]
        assert all(d["code"] and isinstance(d["evidence"], list) for d in details)
        assert any(e["kind"] in CONCRETE for d in details for e in d["evidence"])
    for sid in low:  # off the hot path for low tiers: no reasons, nothing looked up
        assert results[sid]["reasons"] == [] and "reason_details" not in results[sid]
    # without the option the response has no details
    plain = c.post("/v1/scores", json={"shop_ids": flagged[:2]})
    assert all("reason_details" not in x for x in plain.json()["results"])


@pytest.mark.parametrize("body", [{"records": [], "evidence": True}])
def test_evidence_option_is_validated(api: Api, body: dict[str, object]) -> None:
    r = api.client("scorer").post("/v1/scores", json=body)
    assert r.status_code == 422
