"""The model monitor: is today's population still the one the model was trained on, and do reviewers agree?

* **Feature drift.** The served model carries its training-time reference: the reason explainer keeps
  1,001 quantiles of every feature over the training rows (``model.explainer.quantiles_``). Each
  feature's population stability index compares the training deciles with today's values of every
  shop of the marketplace the service was started with (the runtime's cached feature matrix).
* **Score drift.** The training-time score distribution is not stored with the model, so it is
  recomputed: the model's own fitted pipeline builds the features of every shop open at the last
  *training* as-of date (``training.examples`` plan from ``model.info["plan"]``) and the model scores
  them; that is compared with today's scores. Computed once per model version and cached.
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


def training_reference_scores(model: Any, mp: Any) -> tuple[NDArray[np.float64], pd.Timestamp]:
    """Scores of every shop open at the model's last training as-of date, through its own pipeline."""
    from training.examples import ExamplePlan, as_of_dates, split_dates

    plan_info = dict(model.info.get("plan") or {})
    plan = ExamplePlan(**{k: v for k, v in plan_info.items() if k in ExamplePlan.__dataclass_fields__})
    dates = split_dates(as_of_dates(mp, plan), plan)["train"]
    as_of = pd.Timestamp(dates[-1])
    shops = mp.shops
    ids = [str(s) for s in shops.loc[shops["opened_at"] < as_of, "shop_id"]]
    X = model.pipeline.transform(mp, as_of, shop_ids=ids)
    return np.asarray(model.predict_proba(X[model.feature_names]), dtype=np.float64), as_of


@dataclass
class DriftReport:
    version: str
    features: list[FeatureDrift]
    score: ScoreDrift
    now_scores: NDArray[np.float64]


class DriftCache:
    """One drift report per served model version (the marketplace does not change while serving)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reports: dict[str, DriftReport] = {}

    def get(self, runtime: Any, mp: Any) -> DriftReport:
        key = f"{runtime.name}:{runtime.version}"
        with self._lock:
            hit = self._reports.get(key)
            if hit is not None:
                return hit
            report = compute_drift(runtime, mp)
            self._reports = {key: report}
            return report


def compute_drift(runtime: Any, mp: Any) -> DriftReport:
    model = runtime.model
    X_now = np.asarray(runtime.X, dtype=np.float64)
    now_scores = np.asarray(model.predict_proba(X_now), dtype=np.float64) if len(X_now) else np.zeros(0)
    features = feature_drift(model, X_now)
    if mp is None or getattr(model, "pipeline", None) is None:
        why = "no marketplace loaded (dajia serve --data) or no feature pipeline"
        score = ScoreDrift(None, "unavailable", note=why)
    elif len(now_scores) == 0:
        score = ScoreDrift(None, "unavailable", note="no shop to score now")
    else:
        try:
            ref, as_of = training_reference_scores(model, mp)
        except Exception as exc:  # a model without a usable training plan: say why, keep the page
            score = ScoreDrift(None, "unavailable", note=f"training reference not computable: {exc}")
        else:
            edges = decile_edges(ref)
            r, n = shares(ref, edges), shares(now_scores, edges)
            value = psi(r, n)
            score = ScoreDrift(
                value,
                psi_band(value),
                edges=[float(e) for e in edges],
                ref_shares=[float(v) for v in r],
                now_shares=[float(v) for v in n],
                ref_n=len(ref),
                now_n=len(now_scores),
                reference_as_of=str(as_of.date()),
                ref_tenths=[float(v) for v in shares(ref, TENTHS)],
                now_tenths=[float(v) for v in shares(now_scores, TENTHS)],
            )
    return DriftReport(str(runtime.version), features, score, now_scores)


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
