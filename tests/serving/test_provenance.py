"""Issue 17 point 9, provenance of routed data, through the real API on SQLite and PostgreSQL: a caller's
invented records under an honest shop's id freeze nothing (a shop the marketplace knows is routed on the
marketplace's data, never on the caller's records), and each case records where its data came from
(``routed_on`` in the answer, ``source`` in the case's score evidence)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest

from tests.conftest import postgres_schema
from tests.serving.conftest import MAX_BATCH, Api, Registry, create_keys, start_api


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_api(
    registry: Registry, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Api]:
    """The API over a fresh database of each kind, the registry's marketplace imported into it."""
    home = tmp_path_factory.mktemp(f"provenance-{request.param}")
    with contextlib.ExitStack() as stack:
        url = f"sqlite:///{home / 'dajia.db'}"
        if request.param == "postgres":
            url = stack.enter_context(postgres_schema(request.getfixturevalue("postgres_admin_url"), prefix="pv_"))
        a = start_api(registry, create_keys(url), home=home, database_url=url)
        a.wait_version("1")
        yield a
        a.stop()


@pytest.fixture(scope="module")
def market(registry: Registry) -> Any:
    from marketplace.loader import load_marketplace

    return load_marketplace(registry.data)


def test_inline_records_for_a_known_shop_are_routed_on_the_marketplace_data(store_api: Api, market: Any) -> None:
    from marketplace.records import records_from_frames

    api = store_api
    shop_ids = [str(s) for s in market.shops["shop_id"]][:MAX_BATCH]
    scored = api.client("scorer").post("/v1/scores", json={"shop_ids": shop_ids})
    assert scored.status_code == 200, scored.text
    all_scores = {x["shop_id"]: x for x in scored.json()["results"]}
    reviewer = api.client("reviewer")

    def untouched(shop_id: str) -> bool:
        return reviewer.get("/v1/cases", params={"shop_id": shop_id}).json() == []

    counterfeit = next(k for k, v in reversed(all_scores.items()) if v["tier"] == "suspected" and untouched(k))
    victim = next(k for k, v in reversed(all_scores.items()) if v["tier"] == "low" and untouched(k))
    frames = {name: market.table(name) for name in market.table_names()}
    (record,) = records_from_frames(frames, [counterfeit])
    invented = json.loads(json.dumps(record.model_dump(mode="json")).replace(counterfeit, victim))
    as_of = (pd.Timestamp(market.snapshot_at) + pd.Timedelta(seconds=1)).isoformat()
    r = api.client("scorer").post("/v1/scores", json={"records": [invented], "as_of": as_of, "route": True})
    assert r.status_code == 200, r.text
    (got,) = r.json()["results"]
    assert got["shop_id"] == victim and got["tier"] == "suspected"  # the invented data looks counterfeit
    assert got["case"] is None  # but the marketplace's data of that shop is low: no case, nothing frozen
    assert untouched(victim)
    # the counterfeit shop's own records: routed on the marketplace's data, and the case says so
    own = api.client("scorer").post(
        "/v1/scores", json={"records": [record.model_dump(mode="json")], "as_of": as_of, "route": True}
    )
    case = own.json()["results"][0]["case"]
    assert case["routed_on"] == "marketplace" and case["created"] is True
    view = reviewer.get(f"/v1/cases/{case['case_id']}").json()
    assert view["evidence"][0]["data"]["source"] == "marketplace"
    assert view["shop_id"] == counterfeit
