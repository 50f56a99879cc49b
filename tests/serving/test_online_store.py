"""The online feature store in the loop: scoring by id reads materialised rows, shop events refresh a
row without a restart, stale and missing rows are reported (response and metrics), never scored from
nothing; the pipeline digest is the same in every process."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest

from tests.serving.conftest import Api, Registry, start_api


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("online") / "online.db"


@pytest.fixture(scope="module")
def online(registry: Registry, keys: dict[str, str], store_path: Path) -> Iterator[Api]:
    """A service of its own online store (events posted here must not move the shared service's scores)."""
    a = start_api(registry, keys, online_store=f"sqlite:///{store_path}")
    yield a
    a.stop()


def _shops(data: Path) -> pd.DataFrame:
    return pd.read_parquet(data / "shops.parquet", columns=["shop_id", "opened_at"])


def _snapshot(api: Api) -> pd.Timestamp:
    body = httpx.get(f"{api.base_url}/readyz", timeout=10).json()
    return pd.Timestamp(body["snapshot_at"]).tz_convert("UTC").tz_localize(None)


def _score(client: httpx.Client, shop: str) -> dict[str, object]:
    r = client.post("/v1/scores", json={"shop_ids": [shop]})
    assert r.status_code == 200, r.text
    result: dict[str, object] = r.json()["results"][0]
    return result


def _metric(api: Api, status: str) -> float:
    text = httpx.get(f"{api.base_url}/metrics", timeout=10).text
    for line in text.splitlines():
        if line.startswith(f'dajia_online_rows_total{{status="{status}"}}'):
            return float(line.split()[-1])
    return 0.0


def test_by_id_reads_the_online_row(online: Api) -> None:
    c = online.client("scorer")
    body = httpx.get(f"{online.base_url}/readyz", timeout=10).json()
    assert body["marketplace_shops"] == len(_shops(online.registry.data))
    shop = str(_shops(online.registry.data)["shop_id"].iloc[0])
    before = _metric(online, "fresh")
    res = _score(c, shop)
    feats = res["features"]
    assert isinstance(feats, dict)
    assert feats["source"] == "online" and feats["status"] == "fresh"
    assert str(feats["as_of"]).endswith("Z")  # RFC 3339 with its zone (schemathesis checks the format)
    assert pd.Timestamp(str(feats["as_of"])).tz_localize(None) == _snapshot(online) + pd.Timedelta(seconds=1)
    assert _metric(online, "fresh") == before + 1


def test_missing_row_is_404_and_counted(online: Api) -> None:
    c = online.client("scorer")
    before = _metric(online, "missing")
    r = c.post("/v1/scores", json={"shop_ids": ["no-such-shop"]})
    assert r.status_code == 404
    assert "online feature store" in r.json()["message"]
    assert _metric(online, "missing") == before + 1


def test_counterfeit_complaint_changes_score_without_restart(online: Api) -> None:
    """Complaints posted for a low-risk shop refresh its row; its score by id rises at once."""
    c = online.client("scorer")
    shops = _shops(online.registry.data)
    scores = c.post("/v1/scores", json={"shop_ids": shops["shop_id"].astype(str).tolist()[:200]}).json()["results"]
    shop = min(scores, key=lambda r: float(str(r["score"])))["shop_id"]
    before = _score(c, str(shop))
    when = _snapshot(online) + pd.Timedelta(hours=1)
    events = {
        "complaints": [
            {
                "complaint_id": f"online-test-{shop}-{i}",
                "order_id": None,
                "filed_at": (when + pd.Timedelta(minutes=i)).isoformat(),
                "kind": "counterfeit",
                "source": source,
            }
            for i, source in enumerate(["test_buy", "brand_owner", "consumer", "test_buy", "brand_owner"])
        ]
    }
    r = c.post(f"/v1/shops/{shop}/events", json=events)
    assert r.status_code == 200, r.text
    assert r.json()["added"] == {"complaints": 5}
    after = _score(c, str(shop))
    assert float(str(after["score"])) > float(str(before["score"])), (before, after)
    feats = after["features"]
    assert isinstance(feats, dict)
    assert pd.Timestamp(str(feats["as_of"])).tz_localize(None) > when
    # the same events again change nothing; an id reused with other content is a conflict
    again = c.post(f"/v1/shops/{shop}/events", json=events)
    assert again.status_code == 200 and again.json()["added"] == {} and again.json()["unchanged"] == 5
    assert _score(c, str(shop))["score"] == after["score"]
    changed = {"complaints": [{**events["complaints"][0], "kind": "quality"}]}
    assert c.post(f"/v1/shops/{shop}/events", json=changed).status_code == 409


def test_events_refused_clearly(online: Api) -> None:
    c = online.client("scorer")
    shop = str(_shops(online.registry.data)["shop_id"].iloc[1])
    good = {
        "complaint_id": "x-1",
        "order_id": None,
        "filed_at": "2025-01-01T00:00:00",
        "kind": "counterfeit",
        "source": "consumer",
    }
    # strict types: a string is no number
    order = {
        "order_id": "o-x",
        "listing_id": "l-x",
        "buyer_id": "b",
        "ordered_at": "2025-01-01T00:00:00",
        "amount": "3",
        "refunded_at": None,
    }
    r = c.post(f"/v1/shops/{shop}/events", json={"orders": [order]})
    assert r.status_code == 422 and any("amount" in e["path"] for e in r.json()["errors"]), r.text
    r = c.post(f"/v1/shops/{shop}/events", json={"complaints": [{**good, "shop_id": "someone-else"}]})
    assert r.status_code == 422 and "shop_id" in r.text
    assert c.post(f"/v1/shops/{shop}/events", json={}).status_code == 422
    assert c.post("/v1/shops/no-such-shop/events", json={"complaints": [good]}).status_code == 404
    assert online.client("reviewer").post(f"/v1/shops/{shop}/events", json={"complaints": [good]}).status_code == 403
    assert online.client().post(f"/v1/shops/{shop}/events", json={"complaints": [good]}).status_code == 401


def test_stale_and_other_version_rows_are_reported(online: Api, store_path: Path) -> None:
    """A row older than the configured age is scored and says stale; a row built for another pipeline is
    not scored (404 naming it); both are counted."""
    from features.online_store import open_online_store

    c = online.client("scorer")
    shops = _shops(online.registry.data)["shop_id"].astype(str).tolist()
    stale_shop, other_shop = shops[5], shops[6]
    store = open_online_store(store_path)
    try:
        with store.transaction() as conn:
            conn.execute(
                "UPDATE online_rows SET refreshed_at = refreshed_at - ? WHERE shop_id = ?", (10**15, stale_shop)
            )
            conn.execute("UPDATE online_rows SET pipeline = 'another-pipeline' WHERE shop_id = ?", (other_shop,))
    finally:
        store.close()
    before_stale, before_other = _metric(online, "stale"), _metric(online, "other_version")
    res = _score(c, stale_shop)
    assert isinstance(res["features"], dict) and res["features"]["status"] == "stale"
    r = c.post("/v1/scores", json={"shop_ids": [other_shop]})
    assert r.status_code == 404 and "another model version" in r.json()["message"]
    assert _metric(online, "stale") == before_stale + 1
    assert _metric(online, "other_version") == before_other + 1


def test_pipeline_digest_is_the_same_in_every_process(registry: Registry) -> None:
    """The digest names the fitted pipeline, whatever the process (sets, hash seeds)."""
    code = (
        "import sys; from serving.runtime import load_model_dir; from features.online_store import pipeline_digest;"
        "import glob; d = sorted(glob.glob(sys.argv[1] + '/**/MLmodel', recursive=True))[0].rsplit('/', 1)[0];"
        "print(pipeline_digest(load_model_dir(__import__('pathlib').Path(d)).pipeline))"
    )
    root = str(registry.home / "mlruns")
    out = set()
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        proc = subprocess.run([sys.executable, "-c", code, root], capture_output=True, text=True, env=env, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        out.add(proc.stdout.strip())
    assert len(out) == 1 and len(out.pop()) == 24


def test_local_sweep_materialises_the_rows_it_scored(registry: Registry, tmp_path: Path) -> None:
    """``dajia sweep`` (locally) leaves every shop's row in the online store: the very features it scored,
    built for the champion's pipeline, as of the sweep's time, with the shop's history beside it."""
    import numpy as np

    from dajia.scaleout.sweep import run_sweep
    from dajia.sweep import ChampionModel
    from features.online_store import open_online_store, pipeline_digest
    from tests.serving.conftest import home_settings
    from training.promotion import load_version

    base = home_settings(registry.home)
    model = load_version(base, "1")
    settings = home_settings(tmp_path)
    out = tmp_path / "scores.parquet"
    result = run_sweep(
        settings, str(registry.data), str(out), ChampionModel("dajia-shop-risk", "1", model), route=False
    )
    assert result["online"]["rows"] == len(_shops(registry.data))
    scores = pd.read_parquet(out).set_index("shop_id")
    store = open_online_store(settings.resolved_online_store)
    try:
        ids = scores.index.astype(str).tolist()
        rows = store.get_many(ids)
        assert set(rows) == set(ids)
        assert {r.pipeline for r in rows.values()} == {pipeline_digest(model.pipeline)}
        names = list(model.pipeline.get_feature_names_out())
        order = [names.index(n) for n in model.feature_names]
        X = np.stack([rows[s].values for s in ids])[:, order]
        np.testing.assert_allclose(model.predict_proba(X), scores["score"].to_numpy(), rtol=0, atol=1e-12)
        assert len(store.history(ids[:5])) == 5
    finally:
        store.close()


def test_console_evidence_without_the_marketplace_reads_the_stored_histories(online: Api) -> None:
    """``dajia serve --data`` keeps no marketplace in memory: the console's evidence page reads a shop's
    complaints and reviews from the online store's history, the same rows the marketplace holds."""
    from serving.console.evidence import MarketIndex, StoredMarketIndex

    services = online.server.lifespan.state["services"]  # uvicorn keeps the lifespan state it hands requests
    assert services.marketplace is not None  # in process: the marketplace is here to compare against
    whole, stored = MarketIndex(services.marketplace), StoredMarketIndex(services)
    complaints = services.marketplace.complaints
    shop = str(complaints["shop_id"].value_counts().index[0])  # the most complained-about shop
    for table, key in (("complaints", "complaint_id"), ("reviews", "review_id")):
        want = sorted(whole.rows(table, shop)[key].astype(str))
        got = sorted(stored.rows(table, shop)[key].astype(str))
        assert got == want and (table == "reviews" or len(got) > 0), table
    assert stored.rows("complaints", "no-such-shop").empty
    assert stored.reference_prices() == pytest.approx(whole.reference_prices())
