"""The model monitor of a service with a trained model and its marketplace, in Chromium: the score and
feature drift against the training population, the trend over the sweeps logged in its history, and the Prometheus
gauges the monitor sets."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pandas as pd
import pytest

from tests.console.conftest import OUTPUT, browser  # noqa: F401  (the browser fixture)
from tests.serving.conftest import Api, Registry, create_keys, start_api

#: the as-of dates of the two logged sweeps, in days before the marketplace's scoring time
SWEEP_DAYS_BEFORE = (21, 0)


@pytest.fixture(scope="module")
def live(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """A second service on the session registry (the one ``tests/serving`` uses: one MLflow server per
    process), with a database of its own, after two sweeps of the champion logged their drift there."""
    from core.settings import Settings
    from dajia.scaleout.sweep import run_sweep
    from dajia.sweep import load_champion
    from marketplace.loader import load_marketplace
    from marketplace.tables import scoring_time

    home = tmp_path_factory.mktemp("monitor")
    url = f"sqlite:///{home / 'dajia.db'}"
    settings = Settings(home=registry.home, DATABASE_URL=url, MLFLOW_TRACKING_URI=registry.store_uri)
    champion = load_champion(settings)
    end = scoring_time(load_marketplace(registry.data).snapshot_at)
    for days in SWEEP_DAYS_BEFORE:
        when = end - pd.Timedelta(days=days)
        out = home / f"scores-{days}.parquet"
        run_sweep(settings, str(registry.data), str(out), champion, as_of=when, route=False)
    a = start_api(registry, create_keys(url), home=home, database_url=url)
    yield a
    a.stop()


def test_monitor_shows_drift_trends_and_exports_gauges(live: Api, browser: Any) -> None:  # noqa: F811
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    ctx.set_default_timeout(120_000)
    page = ctx.new_page()
    try:
        page.goto(f"{live.base_url}/console/login")
        page.get_by_label("API key").fill(live.keys["reviewer"])
        with page.expect_navigation():
            page.get_by_role("button", name="Sign in").click()
        page.goto(f"{live.base_url}/console/monitor")
        page.get_by_role("heading", name="Drift over time").wait_for()
        text = page.inner_text("main")
        assert "Population stability index of the score" in text
        assert "Reference: every shop open at the last training as-of date" in text
        trend = page.locator("svg[aria-labelledby='tr-title tr-desc']")
        assert trend.count() == 1
        assert trend.locator("polyline").count() == 6  # the score and the five features that moved most
        assert "2 logged" in text  # one point per logged sweep
        assert page.locator("td svg.spark").count() == min(25, page.locator("tbody tr").count())
        OUTPUT.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(OUTPUT / "monitor-drift.png"), full_page=True)
    finally:
        ctx.close()
    metrics = httpx.get(f"{live.base_url}/metrics", timeout=10).text
    score = re.search(r"^dajia_drift_score_psi ([0-9.e+-]+)$", metrics, re.M)
    assert score is not None and float(score.group(1)) >= 0.0
    features = re.findall(r'^dajia_drift_feature_psi\{feature="([^"]+)"\} ([0-9.e+-]+)$', metrics, re.M)
    assert len(features) == 10
    values = [float(v) for _, v in features]
    assert max(values) > 0.0


def test_case_page_shows_reasons_with_their_evidence_highlighted(live: Api, browser: Any) -> None:  # noqa: F811
    r = live.client("scorer").post("/v1/scores", json={"shop_ids": _shop_ids(live), "route": True})
    assert r.status_code == 200, r.text
    # a case whose reasons include the listing text: its evidence marks the words that drove the score
    case = next(
        x["case"]
        for x in r.json()["results"]
        if x["tier"] == "suspected" and x["case"] and any("listing text" in t for t in x["reasons"])
    )
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    ctx.set_default_timeout(60_000)
    page = ctx.new_page()
    try:
        page.goto(f"{live.base_url}/console/login")
        page.get_by_label("API key").fill(live.keys["reviewer"])
        with page.expect_navigation():
            page.get_by_role("button", name="Sign in").click()
        page.goto(f"{live.base_url}/console/cases/{case['case_id']}")
        cited = page.locator("#cited-reasons > li")
        assert cited.count() >= 1
        kinds = page.locator("#cited-reasons li[data-kind]").evaluate_all("els => els.map(e => e.dataset.kind)")
        assert set(kinds) & {"listing", "review", "complaint", "linked_shop", "order", "listing_edit"}
        assert page.locator("#cited-reasons mark").count() >= 1, page.inner_text("#cited-reasons")
        assert page.locator("#cited-reasons mark").first.inner_text().strip()
        page.locator("#cited-reasons").scroll_into_view_if_needed()
        OUTPUT.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(OUTPUT / "case-cited-reasons.png"), full_page=True)
    finally:
        ctx.close()


def _shop_ids(live: Api) -> list[str]:
    from marketplace.loader import load_marketplace

    return load_marketplace(live.registry.data).shops["shop_id"].astype(str).tolist()[:400]
