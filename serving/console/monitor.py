"""The model monitor: is today's population still the one the model was trained on, and do reviewers agree?

* **Feature drift.** The served model carries its training-time reference: the reason explainer keeps
  1,001 quantiles of every feature over the training rows (``model.explainer.quantiles_``). Each
  feature's population stability index compares the training deciles with today's values of every
  shop of the marketplace the service was started with (the runtime's cached feature matrix).
* **Score drift.** The training-time score distribution is not stored with the model, so it is
  recomputed: the model's own fitted pipeline builds the features of every shop open at the last
  *training* as-of date (``training.examples`` plan from ``model.info["plan"]``) and the model scores
  them; that is compared with today's scores. Computed once per model version and cached.
* **Trend.** Every sweep logs its drift against the same training population (``drift_history``: score
  PSI, per-feature PSI, sample sizes, as-of, model version); the trend plots read that log.
* **PSI** = Σ (now − ref) · ln(now / ref) over bins cut at the reference deciles (shares floored at
  1e-4). Rule of thumb: < 0.1 stable, 0.1–0.25 moderate shift, > 0.25 major shift.
* **Reviewer agreement** per model version: of the score-opened cases a person decided, the share they
  sanctioned (close or ban) rather than dismissed. **Precision** of decided cases per tier (and score
  band): sanctioned and not reversed on appeal, over all decided.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from numpy.typing import NDArray
from sqlalchemy.engine import Connection

from sanctions.models import Case, CaseEvent

EPS = 1e-4
#: interior edges of the chart's ten equal score bins
TENTHS = np.linspace(0.1, 0.9, 9)
POSITIVE = ("closed", "banned", "settled", "appealed_close", "appealed_ban")
NEGATIVE = ("dismissed", "reversed")


def psi(ref: Sequence[float] | NDArray[np.float64], now: Sequence[float] | NDArray[np.float64]) -> float:
    r = np.clip(np.asarray(ref, dtype=np.float64), EPS, None)
    n = np.clip(np.asarray(now, dtype=np.float64), EPS, None)
    r, n = r / r.sum(), n / n.sum()
    return float(np.sum((n - r) * np.log(n / r)))


def psi_band(value: float) -> str:
    return "stable" if value < 0.1 else "moderate shift" if value < 0.25 else "major shift"


def decile_edges(reference: NDArray[np.float64]) -> NDArray[np.float64]:
    """Interior bin edges at the reference deciles (duplicates dropped: point masses stay one bin)."""
    ref = reference[~np.isnan(reference)]
    if len(ref) == 0:
        return np.zeros(0)
    return np.unique(np.quantile(ref, np.linspace(0.1, 0.9, 9)))


def shares(values: NDArray[np.float64], edges: NDArray[np.float64]) -> NDArray[np.float64]:
    """Share of ``values`` per bin; bins are (-inf, e0], (e0, e1], ..., (e_last, inf)."""
    v = values[~np.isnan(values)]
    counts = np.bincount(np.searchsorted(edges, v, side="left"), minlength=len(edges) + 1).astype(np.float64)
    return counts / max(1.0, counts.sum())


def shares_from_quantiles(
    q_values: NDArray[np.float64], q_levels: NDArray[np.float64], edges: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Reference share per bin from a quantile table: F(x) = the highest level whose quantile is <= x."""
    cdf = []
    for e in edges:
        k = int(np.searchsorted(q_values, e, side="right")) - 1
        cdf.append(float(q_levels[k]) if k >= 0 else 0.0)
    c = np.r_[0.0, np.asarray(cdf), 1.0]
    return np.clip(np.diff(c), 0.0, None)


@dataclass
class FeatureDrift:
    name: str
    psi: float
    band: str
    ref_median: float
    now_median: float
    kind: str = "continuous"
    small_sample: bool = False
    noise: float = 0.0


def feature_drift(model: Any, X_now: NDArray[np.float64]) -> list[FeatureDrift]:
    """PSI of every model feature: training quantiles (the explainer's) against today's rows."""
    explainer = getattr(model, "explainer", None)
    q = getattr(explainer, "quantiles_", None)
    levels = getattr(explainer, "q_levels_", None)
    if q is None or levels is None or len(X_now) == 0 or q.shape[1] != X_now.shape[1]:
        return []
    names = list(model.feature_names)
    mid = int(np.searchsorted(levels, 0.5))
    out = []
    for j, name in enumerate(names):
        col = q[:, j]
        if np.all(np.isnan(col)):
            continue
        edges = np.unique(col[[100 * k for k in range(1, 10)]])
        edges = edges[~np.isnan(edges)]
        ref = shares_from_quantiles(col, levels, edges)
        now = shares(X_now[:, j], edges)
        value = psi(ref, now)
        out.append(FeatureDrift(name, value, psi_band(value), float(col[mid]), float(np.nanmedian(X_now[:, j]))))
    return sorted(out, key=lambda d: -d.psi)


# --------------------------------------------------------------------------- drift that means something

#: each reference bin holds at least this share of the reference (adjacent quantile bins are merged)
MIN_BIN_MASS = 0.05
#: fewer rows than this on either side: the PSI is reported but flagged as a small sample, never "major"
MIN_SAMPLE = 300
#: a feature whose most common reference value holds this share is zero-inflated (one bin for that value)
POINT_MASS = 0.3


@dataclass
class Drift:
    """PSI of one column: reference vs now, on bins from the reference's quantiles."""

    psi: float
    band: str
    kind: str  # continuous | zero-inflated | constant | empty
    n_ref: int
    n_now: int
    #: the PSI two samples of the same distribution would show by chance at these sizes and bins
    noise: float
    small_sample: bool
    ref_median: float
    now_median: float


def quantile_bins(ref: NDArray[np.float64], n_bins: int = 10, min_mass: float = MIN_BIN_MASS) -> NDArray[np.float64]:
    """Interior edges (bins ``(-inf, e0], (e0, e1], …, (e_last, inf)``) at the reference's quantiles, merged
    until every bin holds at least ``min_mass`` of the reference. A point mass (many zeros) keeps its own
    bin: its value is an edge, and ``(prev, value]`` holds exactly it."""
    if len(ref) == 0:
        return np.zeros(0)
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, n_bins + 1)[1:-1]))
    values, counts = np.unique(ref, return_counts=True)
    mode = values[np.argmax(counts)]
    if counts.max() / len(ref) >= POINT_MASS:  # the point mass's own bin: (just below it, it]
        below = values[values < mode]
        edges = np.unique(np.r_[edges, mode, below[-1] if len(below) else []])
    while len(edges):
        mass = shares(ref, edges)
        small = np.flatnonzero(mass < min_mass)
        if len(small) == 0:
            break
        i = int(small[np.argmin(mass[small])])
        # merge bin i with its smaller neighbour by dropping the edge between them
        if i == 0:
            drop = 0
        elif i == len(edges):
            drop = len(edges) - 1
        else:
            drop = i - 1 if mass[i - 1] <= mass[i + 1] else i
        edges = np.delete(edges, drop)
    return edges


def drift_of(ref_values: NDArray[np.float64], now_values: NDArray[np.float64], n_bins: int = 10) -> Drift:
    """PSI with quantile bins of the reference (min bin mass), the missing share as a bin of its own,
    constant and zero-inflated columns handled, and a band that accounts for sampling noise: two samples of
    one distribution give PSI ≈ (bins − 1)·(1/n_ref + 1/n_now) by chance, so a shift is "moderate" only above
    max(0.1, 3× that) and "major" above max(0.25, 5× that); a small sample is never "major"."""
    ref_all = np.asarray(ref_values, dtype=np.float64)
    now_all = np.asarray(now_values, dtype=np.float64)
    ref, now = ref_all[~np.isnan(ref_all)], now_all[~np.isnan(now_all)]
    nr, nn = len(ref_all), len(now_all)
    if nr == 0 or nn == 0:
        return Drift(0.0, "no data", "empty", nr, nn, 0.0, True, float("nan"), float("nan"))
    uniq = np.unique(ref)
    if len(uniq) <= 1:
        kind = "constant"
        c = uniq[0] if len(uniq) else 0.0
        r_sh = np.array([np.mean(ref == c), np.mean(ref != c)]) if len(ref) else np.array([1.0, 0.0])
        n_sh = np.array([np.mean(now == c), np.mean(now != c)]) if len(now) else np.array([1.0, 0.0])
    else:
        _, counts = np.unique(ref, return_counts=True)
        kind = "zero-inflated" if counts.max() / len(ref) >= POINT_MASS else "continuous"
        edges = quantile_bins(ref, n_bins)
        r_sh, n_sh = shares(ref, edges), shares(now, edges)
    # the missing share is a bin of its own (a feature that starts missing has drifted)
    r_miss, n_miss = 1 - len(ref) / nr, 1 - len(now) / nn
    r_sh = np.r_[r_sh * (1 - r_miss), r_miss]
    n_sh = np.r_[n_sh * (1 - n_miss), n_miss]
    keep = (r_sh > 0) | (n_sh > 0)
    r_sh, n_sh = r_sh[keep], n_sh[keep]
    floor = 0.5 / max(1, min(nr, nn))
    value = psi(np.clip(r_sh, floor, None), np.clip(n_sh, floor, None))
    noise = (max(1, len(r_sh)) - 1) * (1 / nr + 1 / nn)
    small = min(nr, nn) < MIN_SAMPLE
    band = "stable" if value < max(0.1, 3 * noise) else "moderate shift"
    if value >= max(0.25, 5 * noise) and not small:
        band = "major shift"
    return Drift(value, band, kind, nr, nn, noise, small, _median(ref), _median(now))


def _median(v: NDArray[np.float64]) -> float:
    return float(np.median(v)) if len(v) else float("nan")


def drift_table(names: Sequence[str], X_ref: NDArray[np.float64], X_now: NDArray[np.float64]) -> list[FeatureDrift]:
    """:func:`drift_of` per feature column, most drifted first."""
    out = []
    for j, name in enumerate(names):
        d = drift_of(X_ref[:, j], X_now[:, j])
        out.append(FeatureDrift(name, d.psi, d.band, d.ref_median, d.now_median, d.kind, d.small_sample, d.noise))
    return sorted(out, key=lambda d: -d.psi)


@dataclass
class ScoreDrift:
    psi: float | None
    band: str
    edges: list[float] = field(default_factory=list)
    ref_shares: list[float] = field(default_factory=list)
    now_shares: list[float] = field(default_factory=list)
    ref_n: int = 0
    now_n: int = 0
    reference_as_of: str | None = None
    note: str = ""
    #: shares per tenth of the score range (0–0.1, …, 0.9–1), for the chart people read
    ref_tenths: list[float] = field(default_factory=list)
    now_tenths: list[float] = field(default_factory=list)
    small_sample: bool = False


@dataclass
class TrendPoint:
    """Drift of one logged sweep against the training reference (a row of the drift history)."""

    as_of: str
    shops: int
    score_psi: float
    features: dict[str, float]


def reference_as_of(model: Any, first_open: pd.Timestamp, snapshot: pd.Timestamp) -> pd.Timestamp:
    """The model's last *training* as-of date (its ``info["plan"]``) on a marketplace whose first shop
    opened at ``first_open``, snapshot at ``snapshot``."""
    from training.examples import ExamplePlan, as_of_dates_between, split_dates

    plan_info = dict(model.info.get("plan") or {})
    plan = ExamplePlan(**{k: v for k, v in plan_info.items() if k in ExamplePlan.__dataclass_fields__})
    dates = split_dates(as_of_dates_between(first_open, snapshot, plan), plan)["train"]
    return pd.Timestamp(dates[-1])


def training_reference(model: Any, mp: Any) -> tuple[NDArray[np.float64], NDArray[np.float64], pd.Timestamp]:
    """(feature rows, scores, as-of) of every shop open at the model's last training as-of date, through
    its own pipeline: the population the model was fitted for, the reference of every drift figure."""
    as_of = reference_as_of(model, pd.Timestamp(mp.shops["opened_at"].min()), pd.Timestamp(mp.snapshot_at))
    X = population(model, mp, as_of)
    return X, np.asarray(model.predict_proba(X), dtype=np.float64), as_of


def open_at(shops: pd.DataFrame, as_of: pd.Timestamp) -> pd.Series:
    """Which of ``shops`` were open at ``as_of`` (opened before it, not closed before it)."""
    open_ = shops["opened_at"] < as_of
    if "closed_at" in shops:
        open_ &= ~(shops["closed_at"] < as_of)
    return open_


def population(model: Any, mp: Any, as_of: pd.Timestamp, among: Any = None) -> NDArray[np.float64]:
    """Feature rows (model columns) of the shops open at ``as_of`` (of ``among`` when given: ids)."""
    shops = mp.shops
    keep = open_at(shops, as_of)
    if among is not None:
        keep &= shops["shop_id"].astype(str).isin([str(i) for i in among])
    ids = [str(s) for s in shops.loc[keep, "shop_id"]]
    if not ids:
        return np.zeros((0, len(model.feature_names)))
    X = model.pipeline.transform(mp, as_of, shop_ids=ids)
    return np.ascontiguousarray(X[model.feature_names].to_numpy(dtype=np.float64))


def training_reference_scores(model: Any, mp: Any) -> tuple[NDArray[np.float64], pd.Timestamp]:
    """Scores of every shop open at the model's last training as-of date, through its own pipeline."""
    _, scores, as_of = training_reference(model, mp)
    return scores, as_of


@dataclass
class DriftReport:
    version: str
    features: list[FeatureDrift]
    score: ScoreDrift
    now_scores: NDArray[np.float64]
    #: what the features were compared with
    reference: str = ""


class DriftCache:
    """One drift report per served model version (the marketplace does not change while serving); each
    new report sets the Prometheus gauges (``on_report``)."""

    def __init__(self, on_report: Any = None) -> None:
        self._lock = threading.Lock()
        self._reports: dict[str, DriftReport] = {}
        self._on_report = on_report

    def get(self, runtime: Any, mp: Any) -> DriftReport:
        key = f"{runtime.name}:{runtime.version}"
        with self._lock:
            hit = self._reports.get(key)
            if hit is not None:
                return hit
            report = compute_drift(runtime, mp)
            self._reports = {key: report}
            if self._on_report is not None:
                self._on_report(report)
            return report


def compute_drift(runtime: Any, mp: Any) -> DriftReport:
    model = runtime.model
    X_now = np.asarray(runtime.X, dtype=np.float64)
    now_scores = np.asarray(model.predict_proba(X_now), dtype=np.float64) if len(X_now) else np.zeros(0)
    if mp is None or getattr(model, "pipeline", None) is None:
        why = "no marketplace loaded (dajia serve --data) or no feature pipeline"
        features = feature_drift(model, X_now)
        return DriftReport(
            str(runtime.version), features, ScoreDrift(None, "unavailable", note=why), now_scores,
            reference="the training rows' quantiles (no marketplace to rebuild the training population from)",
        )  # fmt: skip
    if len(now_scores) == 0:
        return DriftReport(
            str(runtime.version), [], ScoreDrift(None, "unavailable", note="no shop to score now"), now_scores
        )
    try:
        X_ref, ref, as_of = training_reference(model, mp)
    except Exception as exc:  # a model without a usable training plan: say why, keep the page
        features = feature_drift(model, X_now)
        score = ScoreDrift(None, "unavailable", note=f"training reference not computable: {exc}")
        return DriftReport(str(runtime.version), features, score, now_scores, reference="the training rows' quantiles")
    # today's population: the shops a sweep at the snapshot scores (open, not closed)
    X_today = population(model, mp, scoring_time_of(mp))
    today_scores = np.asarray(model.predict_proba(X_today), dtype=np.float64)
    features = drift_table(list(model.feature_names), X_ref, X_today)
    d = drift_of(ref, today_scores)
    edges = quantile_bins(ref)
    score = ScoreDrift(
        d.psi,
        d.band,
        edges=[float(e) for e in edges],
        ref_shares=[float(v) for v in shares(ref, edges)],
        now_shares=[float(v) for v in shares(today_scores, edges)],
        ref_n=len(ref),
        now_n=len(today_scores),
        reference_as_of=str(as_of.date()),
        ref_tenths=[float(v) for v in shares(ref, TENTHS)],
        now_tenths=[float(v) for v in shares(today_scores, TENTHS)],
        small_sample=d.small_sample,
    )
    reference = f"every shop open at the last training as-of date {as_of.date()} ({len(ref)} shops)"
    return DriftReport(str(runtime.version), features, score, now_scores, reference)


def scoring_time_of(mp: Any) -> pd.Timestamp:
    from marketplace.tables import scoring_time

    return scoring_time(mp.snapshot_at)


# --------------------------------------------------------------------------- reviewers vs the model


@dataclass
class Agreement:
    model_version: str
    decided: int
    sanctioned: int
    dismissed: int
    simulated: int

    @property
    def rate(self) -> float | None:
        return self.sanctioned / self.decided if self.decided else None


def agreement_by_version(conn: Connection) -> list[Agreement]:
    e, c = CaseEvent.__table__.c, Case.__table__.c
    rows = conn.execute(
        sa.select(e.model_version, e.action, e.simulated, sa.func.count())
        .select_from(CaseEvent.__table__.join(Case.__table__, c.case_id == e.case_id))
        .where(e.action.in_(("close", "ban", "dismiss")), e.role.in_(("reviewer", "admin")), c.origin == "score")
        .group_by(e.model_version, e.action, e.simulated)
    ).all()
    out: dict[str, Agreement] = {}
    for version, action, simulated, n in rows:
        a = out.setdefault(str(version or "unknown"), Agreement(str(version or "unknown"), 0, 0, 0, 0))
        a.decided += n
        if action == "dismiss":
            a.dismissed += n
        else:
            a.sanctioned += n
        if simulated:
            a.simulated += n
    return sorted(out.values(), key=lambda a: a.model_version)


@dataclass
class Precision:
    group: str
    decided: int
    sanctioned: int
    reversed: int

    @property
    def precision(self) -> float | None:
        return self.sanctioned / self.decided if self.decided else None


def precision_tables(conn: Connection) -> tuple[list[Precision], list[Precision]]:
    """(per tier, per score band) precision of decided cases; ban-evasion cases have tier "none"."""
    c = Case.__table__.c
    rows = conn.execute(sa.select(c.tier, c.score, c.status).where(c.decided_at.is_not(None))).all()
    tiers: dict[str, Precision] = {}
    bands: dict[str, Precision] = {}
    for tier, score, status in rows:
        lo = min(int(score * 10), 9) / 10 if score is not None else 0.0
        band = "no score" if score is None else f"{lo:.1f}–{lo + 0.1:.1f}"
        for table, key in ((tiers, str(tier or "none")), (bands, band)):
            p = table.setdefault(key, Precision(key, 0, 0, 0))
            if status in POSITIVE:
                p.decided += 1
                p.sanctioned += 1
            elif status in NEGATIVE:
                p.decided += 1
                p.reversed += status == "reversed"
    order = {"suspected": 0, "watch": 1, "low": 2}
    return (
        sorted(tiers.values(), key=lambda p: (order.get(p.group, 9), p.group)),
        sorted(bands.values(), key=lambda p: p.group, reverse=True),
    )
