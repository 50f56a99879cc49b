"""The console's pieces without a browser: drift statistics, the miss-rate interval, the decision
buttons against THE transition table, queue filters, and the server-side chart."""

from __future__ import annotations

from datetime import datetime, timedelta

import lightgbm as lgb
import numpy as np
import pytest

from sanctions.workflow import TRANSITIONS, Action, CaseStatus, Role
from serving.console.evidence import DECISION_ACTIONS, NOT_FROM_CONSOLE, allowed_actions
from serving.console.monitor import decile_edges, feature_drift, psi, psi_band, shares, shares_from_quantiles
from serving.console.plots import Marker, Series, binned_counts, timeline_svg
from serving.console.queue import QueueFilter
from serving.console.sample import wilson


def test_psi_is_zero_for_the_same_distribution_and_large_for_a_shift() -> None:
    rng = np.random.default_rng(0)
    ref = rng.normal(0, 1, 20_000)
    same = rng.normal(0, 1, 20_000)
    moved = rng.normal(1.0, 1, 20_000)
    edges = decile_edges(ref)
    assert len(edges) == 9
    assert psi(shares(ref, edges), shares(same, edges)) < 0.01
    big = psi(shares(ref, edges), shares(moved, edges))
    assert big > 0.25 and psi_band(big) == "major shift"
    assert psi_band(0.05) == "stable" and psi_band(0.2) == "moderate shift"


def test_reference_shares_from_a_quantile_table_keep_point_masses() -> None:
    # 70% of the reference is exactly 0 (e.g. "complaints in 30 days"), the rest spreads over 1..10
    values = np.r_[np.zeros(7000), np.linspace(1, 10, 3000)]
    levels = np.linspace(0, 1, 1001)
    q = np.quantile(values, levels)
    edges = np.unique(q[[100 * k for k in range(1, 10)]])
    ref = shares_from_quantiles(q, levels, edges)
    assert ref.sum() == pytest.approx(1.0)
    assert ref[0] == pytest.approx(0.7, abs=0.002)  # the bin (-inf, 0] holds the point mass
    np.testing.assert_allclose(ref, shares(values, edges), atol=0.002)


def _tiny_model(rng: np.random.Generator) -> object:
    from models.calibration import IsotonicCalibrator
    from models.model import ShopRiskModel
    from models.reasons import ReasonExplainer
    from models.thresholds import Thresholds

    X = rng.normal(0, 1, (2000, 3))
    y = (X[:, 0] + 0.5 * rng.normal(size=2000) > 1).astype(float)
    ds = lgb.Dataset(X, label=y, feature_name=["complaints_30d", "price_ratio", "age_days"])
    booster = lgb.train({"objective": "binary", "verbose": -1, "num_leaves": 7, "num_threads": 1}, ds, 20)
    raw = booster.predict(X)
    explainer = ReasonExplainer(booster, {}, X)
    return ShopRiskModel(booster, IsotonicCalibrator().fit(raw, y), Thresholds(0.3, 0.6, {}, {}), explainer)


def test_feature_drift_uses_the_models_training_quantiles_and_ranks_the_moved_feature_first() -> None:
    rng = np.random.default_rng(1)
    model = _tiny_model(rng)
    steady = rng.normal(0, 1, (3000, 3))
    drift = feature_drift(model, steady)
    assert [d.name for d in drift] and max(d.psi for d in drift) < 0.05
    moved = steady.copy()
    moved[:, 1] += 1.5
    drift = feature_drift(model, moved)
    assert drift[0].name == "price_ratio" and drift[0].band == "major shift"
    assert all(d.psi < 0.05 for d in drift[1:])
    assert drift[0].now_median == pytest.approx(np.median(moved[:, 1]))


def test_wilson_interval() -> None:
    lo, hi = wilson(0, 40)
    assert lo == 0.0 and 0.05 < hi < 0.12  # no miss seen in 40 checks still allows a few percent
    lo, hi = wilson(10, 100)
    assert lo < 0.1 < hi and hi - lo < 0.13
    assert wilson(0, 0) == (0.0, 1.0)


@pytest.mark.parametrize("status", list(CaseStatus))
@pytest.mark.parametrize("role", list(Role))
def test_decision_buttons_are_the_transition_tables_for_the_role(status: CaseStatus, role: Role) -> None:
    expected = {
        a for (s, a), (_new, roles) in TRANSITIONS.items() if s == status and role in roles and a in DECISION_ACTIONS
    }
    assert set(allowed_actions(status.value, role.value)) == expected
    # every human transition of the table is either a button or explained
    for (s, a), (_new, roles) in TRANSITIONS.items():
        if s == status and role in roles and role in (Role.REVIEWER, Role.ADMIN):
            assert a in DECISION_ACTIONS or a in NOT_FROM_CONSOLE


def test_reviewer_buttons_on_open_and_appealed_cases() -> None:
    assert allowed_actions("open", "reviewer") == [Action.CLOSE, Action.BAN, Action.DISMISS]
    assert allowed_actions("appealed_ban", "admin") == [Action.REJECT_APPEAL, Action.REVERSE]
    assert allowed_actions("closed", "reviewer") == []
    assert allowed_actions("banned", "reviewer") == [Action.ESCALATE]
    assert allowed_actions("open", "scorer") == []


def test_queue_filter_parses_junk_to_defaults_and_builds_links() -> None:
    f = QueueFilter.parse({"status": "nope", "page": "-3", "age": "x" * 500, "tier": "suspected"})
    assert (f.status, f.page, f.age, f.tier) == ("waiting", 1, "", "suspected")
    assert QueueFilter.parse({"page": "banana"}).page == 1
    assert f.query(page=2) == "status=waiting&tier=suspected&page=2"
    assert QueueFilter.parse({"category": "a&b=c"}).query() == "status=waiting&category=a%26b%3Dc"


def test_timeline_svg_counts_bins_marks_events_and_escapes_labels() -> None:
    start = datetime(2026, 1, 5)
    orders = [start + timedelta(days=d) for d in (0, 1, 2, 8, 20)]
    assert binned_counts(orders, start, 4) == [3, 1, 1, 0]
    svg = timeline_svg(
        [Series("orders", orders, "#000"), Series("<script>x</script>", [start], "#111")],
        [Marker("case opened", start + timedelta(days=21))],
        title="t & t",
    )
    assert svg.startswith("<svg") and svg.count("<polyline") == 2
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    assert "case opened 2026-01-26" in svg and "t &amp; t" in svg
    assert "no orders" in timeline_svg([Series("orders", [], "#000")])


def test_monitor_page_renders_drift_of_a_real_model() -> None:
    from datetime import UTC

    from serving.console.monitor import Precision, ScoreDrift, compute_drift
    from serving.console.routes import templates
    from serving.console.sample import MissEstimate
    from serving.console.security import User
    from serving.model_holder import Served
    from serving.runtime import ModelRuntime

    rng = np.random.default_rng(2)
    runtime = ModelRuntime(_tiny_model(rng), "dajia-shop-risk", "7")
    runtime.X = rng.normal(0.8, 1, (500, 3))
    report = compute_drift(runtime, None)
    assert report.score.psi is None and "no marketplace" in report.score.note
    assert report.features[0].band == "major shift"
    report.score = ScoreDrift(0.31, "major shift", [0.2, 0.5], [0.5, 0.3, 0.2], [0.3, 0.3, 0.4], 100, 500, "2026-02-08")
    served = Served(runtime, "dajia-shop-risk", "7", "champion", "registry", datetime.now(UTC))
    html = (
        templates()
        .get_template("monitor.html")
        .render(
            user=User("k", "n", "reviewer", "t"),
            served=served,
            drift=report,
            drift_error=None,
            chart="<svg></svg>",
            trend="<svg id='trend'></svg>",
            sweeps=2,
            sparks={report.features[0].name: "<svg class='spark'></svg>"},
            agreement=[],
            by_tier=[Precision("suspected", 10, 8, 1)],
            by_band=[],
            est=MissEstimate(12, 1, 10, 1, 1 / 11, 0.01, 0.38, 250),
        )
    )
    assert "dajia-shop-risk version 7" in html and "0.310" in html and "(major shift)" in html
    assert html.index(report.features[0].name) < html.index(report.features[-1].name)
    assert "<svg id='trend'></svg>" in html and html.count("<svg class='spark'>") == 1
    assert "as logged by each sweep of this model version (2 logged" in html
    assert "80.0%" in html and "9.1%" in html


def test_console_refusals_take_their_status_from_the_api_table() -> None:
    from core.errors import Conflict, DajiaError, Forbidden, InvalidTransition, NotFound
    from sanctions.workflow import AlreadyDone
    from serving.console.routes import refused

    want = {
        NotFound("no case 9"): 404,
        Forbidden("reviewers may not"): 403,
        Conflict("version 2"): 409,
        InvalidTransition("cannot publish"): 409,
        AlreadyDone("published already"): 409,
        DajiaError("bad note"): 400,
    }
    for exc, status in want.items():
        page = refused(exc, "Not withdrawn", missing="No such entry")
        assert (page.status, page.message) == (status, str(exc))
        assert page.title == ("No such entry" if status == 404 else "Not withdrawn")
