"""The drift history: one row per sweep (``console_drift_history``), the monitor's trend.

A sweep (``dajia sweep``, locally or on a cluster, and the crackdown's) measures the population it
scored against the model's training population (:func:`sweep_drift`) and appends the figures with
:func:`log_drift`; the monitor's trend plots read them back with :func:`history`. A sweep is identified
by model name, version and as-of: logging the same sweep again keeps the first row (the unique key
refuses a second one), so a re-run appends nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from numpy.typing import NDArray
from sqlalchemy.engine import Connection, Engine

from core.db import writing
from serving.console.db import drift_history
from serving.console.monitor import TrendPoint, drift_of, drift_table


@dataclass(frozen=True)
class SweepDrift:
    """One sweep's drift against the training population (a row of the history)."""

    model_name: str
    model_version: str
    as_of: datetime
    mode: str
    shops: int
    sample_now: int
    sample_ref: int
    reference_as_of: datetime
    score_psi: float
    score_band: str
    small_sample: bool
    feature_psi: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        top = sorted(self.feature_psi.items(), key=lambda kv: -kv[1])[:5]
        return {
            "as_of": self.as_of.isoformat(),
            "reference_as_of": self.reference_as_of.isoformat(),
            "sample_now": self.sample_now,
            "sample_ref": self.sample_ref,
            "score_psi": round(self.score_psi, 4),
            "score_band": self.score_band,
            "small_sample": self.small_sample,
            "top_features": {k: round(v, 4) for k, v in top},
        }


def sweep_drift(
    model: Any,
    X_ref: NDArray[np.float64],
    X_now: NDArray[np.float64],
    *,
    model_name: str,
    model_version: str,
    as_of: pd.Timestamp,
    reference_as_of: pd.Timestamp,
    mode: str,
    shops: int,
) -> SweepDrift:
    """The drift figures of a sweep: ``X_now`` (rows the sweep scored) against ``X_ref`` (the training
    population's rows), both in the model's feature columns; scores by the model itself."""
    ref_scores = np.asarray(model.predict_proba(X_ref), dtype=np.float64) if len(X_ref) else np.zeros(0)
    now_scores = np.asarray(model.predict_proba(X_now), dtype=np.float64) if len(X_now) else np.zeros(0)
    d = drift_of(ref_scores, now_scores)
    features = drift_table(list(model.feature_names), X_ref, X_now)
    return SweepDrift(
        model_name=model_name,
        model_version=str(model_version),
        as_of=pd.Timestamp(as_of).to_pydatetime(),
        mode=mode,
        shops=int(shops),
        sample_now=len(X_now),
        sample_ref=len(X_ref),
        reference_as_of=pd.Timestamp(reference_as_of).to_pydatetime(),
        score_psi=float(d.psi),
        score_band=d.band,
        small_sample=bool(d.small_sample),
        feature_psi={f.name: round(float(f.psi), 6) for f in features},
    )


def log_drift(engine: Engine, drift: SweepDrift, now: datetime | None = None) -> bool:
    """Append ``drift`` to the history; False (nothing written) when this sweep — same model, version
    and as-of — is logged already."""
    c = drift_history.c
    same = sa.and_(c.model_name == drift.model_name, c.model_version == drift.model_version, c.as_of == drift.as_of)
    row = {
        "model_name": drift.model_name,
        "model_version": drift.model_version,
        "as_of": drift.as_of,
        "recorded_at": now or datetime.now(),
        "mode": drift.mode,
        "shops": drift.shops,
        "sample_now": drift.sample_now,
        "sample_ref": drift.sample_ref,
        "reference_as_of": drift.reference_as_of,
        "score_psi": drift.score_psi,
        "score_band": drift.score_band,
        "small_sample": drift.small_sample,
        "feature_psi": drift.feature_psi,
    }
    try:
        with writing(engine).begin() as conn:
            if conn.execute(sa.select(c.drift_id).where(same)).first() is not None:
                return False
            conn.execute(drift_history.insert().values(**row))
    except sa.exc.IntegrityError:  # a concurrent run of the same sweep won the race
        return False
    return True


def history(conn: Connection, model_name: str, model_version: str) -> list[TrendPoint]:
    """The logged sweeps of one model version, oldest as-of first."""
    c = drift_history.c
    rows = conn.execute(
        sa.select(c.as_of, c.sample_now, c.score_psi, c.feature_psi)
        .where(c.model_name == model_name, c.model_version == str(model_version))
        .order_by(c.as_of)
    ).all()
    return [
        TrendPoint(_label(a), int(n), float(p), {str(k): float(v) for k, v in dict(f).items()}) for a, n, p, f in rows
    ]


def _label(when: datetime) -> str:
    t = pd.Timestamp(when)
    return t.strftime("%Y-%m-%d") if t.strftime("%H:%M") == "00:00" else t.strftime("%Y-%m-%d %H:%M")
