"""Model parts on their own: calibration, thresholds, Saabas reasons, metrics, the --table path."""

from __future__ import annotations

import json
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from dajia.cli import main
from models.calibration import BetaCalibrator, CrossFitIsotonicCalibrator, IsotonicCalibrator
from models.ranking import ScoreRanking
from models.reasons import FeatureText, ReasonExplainer
from models.thresholds import ThresholdPolicy, Thresholds, choose_thresholds, precision_threshold
from training.booster import BoosterConfig
from training.evaluation import truth_metrics, verdict_metrics
from training.metrics import (
    binary_metrics,
    expected_calibration_error,
    precision_at_k,
    recall_at_precision,
    reliability_equal_mass,
)
from training.propensity import propensity_weights
from training.table import TableError, train_table


def _table(n: int = 3000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 6))
    logit = 1.5 * X[:, 0] + X[:, 1] - 0.8 * X[:, 2] - 3.0
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(6)])
    frame["is_fraud"] = y
    frame["when"] = pd.date_range("2024-01-01", periods=n, freq="h")
    return frame


def test_calibration_is_monotone_and_keeps_ranking() -> None:
    rng = np.random.default_rng(1)
    raw = rng.random(2000)
    y = (rng.random(2000) < raw**2).astype(float)
    cal = IsotonicCalibrator().fit(raw, y)
    grid = np.linspace(0, 1, 500)
    p = cal.transform(grid)
    assert np.all(np.diff(p) > 0), "calibrated scores must be strictly increasing (ties lose ranking)"
    assert abs(cal.transform(np.array([0.9]))[0] - 0.81) < 0.1
    with pytest.raises(ValueError, match="one class"):
        IsotonicCalibrator().fit(raw, np.zeros_like(raw))


@pytest.mark.parametrize("cls", [CrossFitIsotonicCalibrator, BetaCalibrator])
def test_smooth_calibrators_are_monotone_calibrated_and_take_many_values(cls: type) -> None:
    rng = np.random.default_rng(3)
    raw = rng.random(400) ** 2  # few labels, skewed scores: where one isotonic fit is a short staircase
    y = (rng.random(400) < raw).astype(float)
    cal = cls().fit(raw, y)
    grid = np.linspace(0, 1, 500)
    p = cal.transform(grid)
    assert np.all(np.diff(p) > 0)
    plain = IsotonicCalibrator().fit(raw, y).transform(grid)
    assert len(np.unique(np.round(p, 4))) > len(np.unique(np.round(plain, 4)))
    test_raw = rng.random(20_000) ** 2
    test_y = (rng.random(20_000) < test_raw).astype(float)
    iso_ece = expected_calibration_error(test_y, IsotonicCalibrator().fit(raw, y).transform(test_raw))
    assert expected_calibration_error(test_y, cal.transform(test_raw)) < max(0.05, iso_ece + 0.01)
    with pytest.raises(ValueError, match="one class"):
        cls().fit(raw, np.zeros_like(raw))


def test_equal_mass_reliability_and_ece() -> None:
    s = np.array([0.1, 0.1, 0.2, 0.2, 0.9, 0.9])
    y = np.array([0, 0, 0, 1, 1, 1])
    curve = reliability_equal_mass(y, s, bins=3)
    assert [b["n"] for b in curve] == [2, 2, 2]
    assert [b["observed_rate"] for b in curve] == [0.0, 0.5, 1.0]
    assert expected_calibration_error(y, s, bins=3) == pytest.approx((0.1 + 0.3 + 0.1) / 3)
    assert expected_calibration_error(y, y.astype(float), bins=2) == 0.0


def test_thresholds_respect_capacity_precision_and_floors() -> None:
    rng = np.random.default_rng(2)
    s = rng.random(5000)
    y = (rng.random(5000) < s).astype(float)
    policy = ThresholdPolicy(capacity_per_day=10, sweep_days=7, precision_target=0.8, suspected_floor=0.0)
    th = choose_thresholds(s, y, s, population_size=5000, policy=policy)
    # capacity: at most 70 of 5000 shops at or above suspected
    assert (s >= th.suspected).sum() <= 71
    # precision: what is routed reaches the target on the held-out slice
    assert y[s >= th.suspected].mean() >= 0.8
    assert 0.1 <= th.watch <= th.suspected
    tiers = th.tier(np.array([0.0, th.watch, th.suspected]))
    assert list(tiers) == ["low", "watch", "suspected"]
    assert precision_threshold(s, np.zeros_like(s), 0.5) > 1.0  # unreachable target → never flags


def test_one_tier_rule_for_one_score_and_many() -> None:
    """``tier_of`` (the serving hot path, one score) and ``tier`` (batches) are one rule: the same tier for
    every score, at the cut points, just below them, outside [0, 1] and for NaN (low: no comparison holds)."""
    th = Thresholds(watch=0.3, suspected=0.7, policy={}, basis={})
    below = np.nextafter
    scores = np.array([-1.0, 0.0, below(0.3, 0.0), 0.3, 0.5, below(0.7, 0.0), 0.7, 1.0, 2.0, np.nan])
    expected = ["low", "low", "low", "watch", "watch", "watch", "suspected", "suspected", "suspected", "low"]
    assert [th.tier_of(v) for v in scores.tolist()] == expected
    assert th.tier(scores).tolist() == expected
    assert th.tier(scores.reshape(2, 5)).tolist() == [expected[:5], expected[5:]]
    assert th.tier(np.array([])).shape == (0,)


def test_ranks_break_score_ties_by_shop_id_and_place_outsiders() -> None:
    """Every reference shop gets its own rank (ties in score by shop id), equal to its position in a full sort;
    a score from outside ranks ahead of the reference shops sharing it; percentiles run 100 (riskiest) down."""
    rng = np.random.default_rng(3)
    scores = np.round(rng.random(500), 2)  # many ties (isotonic-like levels)
    ids = [f"S{i:05d}" for i in rng.permutation(500)]
    ranking = ScoreRanking(scores, ids)
    expected = sorted(range(500), key=lambda i: (-scores[i], ids[i]))
    ranks, pcts = ranking.rank(scores, ids)
    assert [ranks[i] for i in expected] == list(range(1, 501))
    assert pcts[expected[0]] == 100.0 and pcts[expected[-1]] == pytest.approx(0.2)
    # the same score for a shop the reference does not hold: ahead of every reference shop sharing it
    out_ranks, _ = ranking.rank(scores[:20], [f"X{i}" for i in range(20)])
    assert out_ranks == [1 + int((scores > v).sum()) for v in scores[:20]]
    assert ranking.rank([2.0, -1.0])[0] == [1, 501] and ranking.rank([-1.0])[1] == [0.0]
    # the few-at-a-time path (the by-id hot path) answers as the batch path, insiders and outsiders alike
    mixed, mixed_ids = np.concatenate([scores[:40], scores[:40]]), ids[:40] + [f"X{i}" for i in range(40)]
    one_by_one = [ranking.rank(mixed[i : i + 1], mixed_ids[i : i + 1]) for i in range(80)]
    assert ranking.rank(mixed, mixed_ids) == ([r[0][0] for r in one_by_one], [p[1][0] for p in one_by_one])
    # without ids (a model's population sample): no tie order, the outsider rule for every score
    assert ScoreRanking(scores, source="training_population").one(float(scores[0])).rank == out_ranks[0]
    with pytest.raises(ValueError, match="NaN"):
        ScoreRanking([0.1, np.nan])


def test_propensity_weights_lift_the_rarely_investigated_kind() -> None:
    """Shops of kind 1 are investigated 5x less often: their labelled examples weigh more, the mean weight of
    labelled rows stays 1, unlabelled rows keep 1, and the weights stay within the clip."""
    rng = np.random.default_rng(0)
    n = 6_000
    kind = rng.random(n) < 0.5
    X = pd.DataFrame({"kind": kind.astype(float), "noise": rng.random(n)})
    labelled = rng.random(n) < np.where(kind, 0.05, 0.25)
    w = propensity_weights(X, labelled, seed=0)
    assert np.all(w[~labelled] == 1.0) and w[labelled].mean() == pytest.approx(1.0)
    assert w[labelled & kind].mean() > 2.5 * w[labelled & ~kind].mean()
    assert w.max() <= 4.0 / 0.25 and w.min() > 0
    assert np.array_equal(w, propensity_weights(X, labelled, seed=0))  # deterministic
    assert np.all(propensity_weights(X, np.zeros(n, dtype=bool)) == 1.0)


def test_metrics_on_a_known_ranking() -> None:
    y = np.array([1, 1, 0, 1, 0, 0, 0, 0], dtype=float)
    s = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2])
    assert precision_at_k(y, s, 2) == 1.0
    assert precision_at_k(y, s, 4) == 0.75
    assert recall_at_precision(y, s, 0.9) == pytest.approx(2 / 3)
    m = binary_metrics(y, s, k=3)
    assert m["roc_auc"] == pytest.approx(14 / 15)
    assert 0 < m["brier"] < 1


def test_verdict_precision_counts_investigator_misses_that_ground_truth_reveals() -> None:
    """One as-of date, capacity 2 (so 2k = 4, 4k = 8, 8k = 16 of the 16 rows). The top two shops are
    counterfeiters; the second was cleared by a missed investigation ("genuine" verdict): the verdict
    precision@k calls it an error, ground truth does not, and investigator_misses names it."""
    n = 16
    frame = pd.DataFrame(
        {
            "shop_id": [f"S{i}" for i in range(n)],
            "as_of": pd.Timestamp("2026-05-01"),
            "score": np.linspace(1.0, 0.0, n),
            "labelled": [True, True, True, False] + [True] * 4 + [False] * 8,
            "label": [1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0] + [0.0] * 8,
            "true_label": [1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0] + [0.0] * 8,
        }
    )
    capacity = {pd.Timestamp("2026-05-01"): 2.0}
    v = verdict_metrics(frame, "score", capacity, probabilities=True)
    assert v["precision_at_k"] == 0.5 and v["routed_with_verdict"] == 2
    assert v["precision_at_2k"] == 2 / 3  # S0..S3 routed, S3 has no verdict
    assert v["precision_at_4k"] == 3 / 7
    t = truth_metrics(frame, "score", capacity)
    assert t["precision_at_k"] == 1.0 and t["precision_at_2k"] == 1.0 and t["precision_at_4k"] == 5 / 8
    assert t["precision_at_8k"] == 5 / 16
    assert t["routed_genuine_verdicts"] == 1 and t["routed_genuine_verdicts_counterfeit"] == 1
    assert t["routed_genuine_verdict_shops"] == 1


def test_saabas_credits_add_up_to_the_raw_score_and_reasons_read_in_words() -> None:
    frame = _table(2000)
    X = frame[[f"f{i}" for i in range(6)]].to_numpy()
    y = frame["is_fraud"].to_numpy()
    booster = lgb.train(
        {
            "objective": "binary",
            "verbosity": -1,
            "num_leaves": 15,
            "seed": 0,
            "deterministic": True,
            "force_row_wise": True,
            "num_threads": 1,
        },
        lgb.Dataset(X, y, feature_name=[f"f{i}" for i in range(6)]),
        num_boost_round=40,
    )
    texts = {"f0": FeatureText("{value:.1f} counterfeit complaints in 30 days")}
    ex = ReasonExplainer(booster, texts, X)
    contrib = ex.contributions(booster, X[:50])
    margin = booster.predict(X[:50], raw_score=True)
    np.testing.assert_allclose(contrib.sum(axis=1) + ex.bias_, margin, rtol=1e-6, atol=1e-6)
    # same total as exact TreeSHAP, and the same top feature on clearly driven rows
    shap = booster.predict(X[:50], pred_contrib=True)
    np.testing.assert_allclose(shap.sum(axis=1), margin, rtol=1e-6, atol=1e-6)
    row = int(np.argmax(X[:, 0]))
    reasons = ex.explain(booster, X[row : row + 1], top=2)[0]
    assert reasons[0].startswith(f"{X[row, 0]:.1f} counterfeit complaints in 30 days, top ")
    assert "of shops" in reasons[0]
    # issue 25: every row's reasons ranked and placed at once give what one row at a time gives
    some = X[:300].copy()
    some[::7, 2] = np.nan
    for top in (1, 3, 6, 10):
        one_by_one = []
        for x in some:
            row_credit = ex.contributions(booster, x[None, :])[0]
            k = min(top, len(row_credit))
            idx = np.argpartition(-row_credit, k - 1)[:k] if k < len(row_credit) else np.arange(len(row_credit))
            idx = idx[np.argsort(-row_credit[idx], kind="stable")]
            one_by_one.append([ex.sentence(f"f{j}", int(j), float(x[j])) for j in idx if row_credit[j] > 0])
        assert ex.explain(booster, some, top=top) == one_by_one


def test_table_mode_learns_and_is_reproducible() -> None:
    frame = _table()
    a = train_table(frame, "is_fraud", time_col="when", config=BoosterConfig(seed=3))
    b = train_table(frame, "is_fraud", time_col="when", config=BoosterConfig(seed=3))
    assert a.split.kind == "time"
    assert frame["when"].iloc[a.split.train].max() < frame["when"].iloc[a.split.test].min()
    assert a.metrics == b.metrics
    assert a.metrics["roc_auc"] > 0.8
    strat = train_table(frame.drop(columns=["when"]), "is_fraud", config=BoosterConfig(seed=3))
    assert strat.split.kind == "stratified"


def test_table_mode_rejects_bad_tables() -> None:
    frame = _table(200)
    with pytest.raises(TableError, match="label column 'nope'"):
        train_table(frame, "nope")
    bad = frame.assign(is_fraud=frame["is_fraud"].replace({1: 2}))
    with pytest.raises(TableError, match="must be 0/1"):
        train_table(bad, "is_fraud")
    with pytest.raises(TableError, match="numeric"):
        train_table(frame.assign(name="x"), "is_fraud")


def test_train_table_cli_logs_registers_and_evaluates(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "features.csv"
    _table().to_csv(path, index=False)
    assert main(["train", "--table", str(path), "--label", "is_fraud", "--time", "when", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["version"] == "1" and out["champion"] is True
    assert out["test_metrics"]["pr_auc"] > 0.3
    assert (home / "mlruns" / "mlflow.db").exists()
    assert any((home / "mlruns" / "artifacts").rglob("pr_curve.png"))
    assert main(["evaluate", "--json"]) == 0
    ev = json.loads(capsys.readouterr().out)
    assert ev["metrics"]["pr_auc"] == pytest.approx(out["test_metrics"]["pr_auc"])
    assert main(["train", "--table", str(path), "--json"]) == 2  # --label missing
    assert "--label" in capsys.readouterr().err
