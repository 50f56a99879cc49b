"""The audit sample: shops the model did NOT flag, checked by reviewers, to measure what the model misses.

* **Who is sampled.** Active shops that never had a case (the model never routed them, and no ban
  evasion link opened one) and that no reviewer has checked yet, drawn uniformly at random
  (``ORDER BY random()``): a uniform sample is what makes the miss-rate estimate honest. The shop's
  latest score in the prediction log, if it was ever scored through the API, is shown beside it.
* **Findings.** counterfeit / genuine / unsure with a note, stored in ``console_findings`` in one
  transaction with an entry in the hash-chained audit log (``audit_sample.finding``); a retried form
  (same idempotency key) stores nothing twice.
* **Labels.** :func:`export_verdicts` turns counterfeit / genuine findings into rows of the data
  contract's ``verdicts`` table (``evidence_kind = "reviewer"``; unsure findings are not labels), so
  training can append them to a marketplace's ``verdicts.parquet``; the console serves the same rows as
  CSV at ``/console/audit-sample/verdicts.csv``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from core.atomic import SUCCESS_MARKER
from core.errors import DajiaError, NotFound
from marketplace.tables import VERDICT_COLUMNS, verdict_frame
from sanctions import tx
from sanctions.models import ActorRow, Case, Listing, Shop
from sanctions.workflow import Actor
from serving.console.db import VERDICTS, findings
from serving.db import predictions


@dataclass
class SampleShop:
    shop_id: str
    name: str
    category: str
    opened_at: datetime
    listings: int
    score: float | None
    tier: str | None
    model_version: str | None
    #: where the score comes from: "sweep <as_of>" or "API"
    source: str = ""


def sweep_scores(path: Path, shop_ids: list[str]) -> dict[str, tuple[float, str, str, datetime]]:
    """The latest sweep's view of ``shop_ids`` from its scores file (``dajia sweep`` / the crackdown write
    ``<home>/scores.parquet``, one file or a folder of part files): score, tier, model version, as-of."""
    if not shop_ids or not path.exists():
        return {}
    if path.is_dir() and not (path / SUCCESS_MARKER).is_file():
        return {}  # a folder of parts without its marker: a sweep that failed or is committing, not read
    cols = ["shop_id", "score", "tier", "model_version", "as_of"]
    frame = pd.read_parquet(path, columns=cols, filters=[("shop_id", "in", list(shop_ids))])
    frame = frame.sort_values("as_of").drop_duplicates("shop_id", keep="last")
    rows = frame.to_dict("records")
    return {
        str(r["shop_id"]): (float(r["score"]), str(r["tier"]), str(r["model_version"]), pd.Timestamp(r["as_of"]))
        for r in rows
    }


class FindingView(BaseModel):
    finding_id: int
    shop_id: str
    verdict: str
    note: str
    actor_id: str
    created_at: datetime
    score: float | None
    tier: str | None
    model_version: str | None


def _latest_predictions(conn: Connection, shop_ids: list[str]) -> dict[str, tuple[float, str, str]]:
    """The newest non-shadow logged score per shop: (score, tier, model version)."""
    if not shop_ids:
        return {}
    p = predictions.c
    newest = (
        sa.select(sa.func.max(p.id))
        .where(p.shop_id.in_(shop_ids), p.shadow.is_(False))
        .group_by(p.shop_id)
        .scalar_subquery()
    )
    rows = conn.execute(sa.select(p.shop_id, p.score, p.tier, p.model_version).where(p.id.in_(newest))).all()
    return {str(r.shop_id): (float(r.score), str(r.tier), str(r.model_version)) for r in rows}


def unflagged_count(conn: Connection) -> int:
    c, s = Case.__table__.c, Shop.__table__.c
    has_case = sa.select(c.case_id).where(c.shop_id == s.shop_id).exists()
    return int(conn.execute(sa.select(sa.func.count()).where(s.status == "active", ~has_case)).scalar_one())


def draw_sample(conn: Connection, n: int = 20, scores_path: Path | None = None) -> list[SampleShop]:
    """``n`` random active shops with no case, not checked yet, with the latest sweep's score of each
    (from ``scores_path``) or else its latest score logged by the API."""
    c, s, f = Case.__table__.c, Shop.__table__.c, findings.c
    has_case = sa.select(c.case_id).where(c.shop_id == s.shop_id).exists()
    checked = sa.select(f.finding_id).where(f.shop_id == s.shop_id).exists()
    rows = conn.execute(
        sa.select(s.shop_id, s.name, s.category, s.opened_at)
        .where(s.status == "active", ~has_case, ~checked)
        .order_by(sa.func.random())
        .limit(n)
    ).all()
    ids = [str(r.shop_id) for r in rows]
    counts: dict[str, int] = {}
    if ids:
        li = Listing.__table__.c
        counts = {
            str(k): int(v)
            for k, v in conn.execute(
                sa.select(li.shop_id, sa.func.count()).where(li.shop_id.in_(ids)).group_by(li.shop_id)
            )
        }
    scored = _latest_predictions(conn, ids)
    swept = sweep_scores(scores_path, ids) if scores_path is not None else {}
    out = []
    for r in rows:
        sw = swept.get(str(r.shop_id))
        sc: tuple[Any, ...] | None = sw[:3] if sw else scored.get(str(r.shop_id))
        source = f"sweep {sw[3]:%Y-%m-%d}" if sw else ("API" if sc else "")
        out.append(
            SampleShop(
                shop_id=str(r.shop_id),
                name=str(r.name),
                category=str(r.category),
                opened_at=r.opened_at,
                listings=counts.get(str(r.shop_id), 0),
                score=sc[0] if sc else None,
                tier=sc[1] if sc else None,
                model_version=sc[2] if sc else None,
                source=source,
            )
        )
    return out


def record_finding(
    session: Session,
    actor: Actor,
    shop_id: str,
    verdict: str,
    note: str,
    *,
    idempotency_key: str | None = None,
    now: datetime | None = None,
) -> FindingView:
    """Store a reviewer's finding on a sampled shop, audited, in one transaction."""
    if verdict not in VERDICTS:
        raise DajiaError(f"finding: verdict must be one of {', '.join(VERDICTS)}, not {verdict!r}")
    note = note.strip()
    if len(note) > 2000:
        raise DajiaError("finding: the note is longer than 2000 characters")
    if verdict == "counterfeit" and not note:
        raise DajiaError("finding: say what you saw (a note) when you find a shop counterfeit")
    when = now or tx.utcnow()

    def work() -> FindingView:
        if session.get(Shop, shop_id) is None:
            raise NotFound(f"shop '{shop_id}' does not exist")
        tx.ensure_actor(session, actor, when)
        latest = _latest_predictions(session.connection(), [shop_id]).get(shop_id)
        values: dict[str, Any] = {
            "shop_id": shop_id,
            "verdict": verdict,
            "note": note,
            "actor_id": actor.actor_id,
            "created_at": when,
            "score": latest[0] if latest else None,
            "tier": latest[1] if latest else None,
            "model_version": latest[2] if latest else None,
        }
        inserted = session.execute(findings.insert().values(**values).returning(findings.c.finding_id))
        finding_id = int(inserted.scalar_one())
        ch = tx.Change(session, actor, when)
        ch.audit("audit_sample.finding", "shop", shop_id, {"finding_id": finding_id, "verdict": verdict, "note": note})
        ch.finish()
        return FindingView(finding_id=finding_id, **values)

    return tx.run(
        session,
        operation="audit_sample.finding",
        request={"shop_id": shop_id, "verdict": verdict, "note": note, "actor": actor.actor_id},
        idempotency_key=idempotency_key,
        result_type=FindingView,
        work=work,
    )


def recent_findings(conn: Connection, limit: int = 50) -> list[FindingView]:
    rows = conn.execute(sa.select(findings).order_by(findings.c.finding_id.desc()).limit(limit)).mappings().all()
    return [FindingView.model_validate(dict(r)) for r in rows]


@dataclass(frozen=True)
class MissEstimate:
    checked: int
    counterfeit: int
    genuine: int
    unsure: int
    rate: float | None
    low: float | None
    high: float | None
    population: int

    @property
    def missed_shops(self) -> tuple[int, int] | None:
        if self.low is None or self.high is None:
            return None
        return round(self.low * self.population), round(self.high * self.population)


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a proportion k/n (sound for small n and k = 0)."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    d = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / d
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return max(0.0, centre - half), min(1.0, centre + half)


def miss_estimate(conn: Connection) -> MissEstimate:
    counts: dict[str, int] = dict(
        conn.execute(sa.select(findings.c.verdict, sa.func.count()).group_by(findings.c.verdict)).tuples().all()
    )
    cf, gen, uns = (int(counts.get(v, 0)) for v in VERDICTS)
    n = cf + gen
    lo, hi = wilson(cf, n) if n else (None, None)
    return MissEstimate(
        checked=cf + gen + uns,
        counterfeit=cf,
        genuine=gen,
        unsure=uns,
        rate=cf / n if n else None,
        low=lo,
        high=hi,
        population=unflagged_count(conn),
    )


def finding_labels(engine: Engine, since: datetime | None = None) -> pd.DataFrame:
    """:func:`export_verdicts`' rows with ``source = "audit_sample"`` and ``simulated`` (the finding's
    reviewer is one of the demo's stand-in humans): what ``dajia train --feedback`` reads."""
    f, a = findings.c, ActorRow.__table__.c
    stmt = (
        sa.select(f.finding_id, f.shop_id, f.created_at, f.verdict, sa.func.coalesce(a.simulated, False))
        .select_from(findings.outerjoin(ActorRow.__table__, a.actor_id == f.actor_id))
        .where(f.verdict.in_(("counterfeit", "genuine")))
    )
    if since is not None:
        stmt = stmt.where(f.created_at >= since)
    with engine.connect() as conn:
        rows = conn.execute(stmt.order_by(f.finding_id)).all()
    simulated = {f"console-{r[0]}": bool(r[4]) for r in rows}
    frame = verdict_frame(
        [
            {
                "verdict_id": f"console-{r[0]}",
                "shop_id": str(r[1]),
                "decided_at": r[2],
                "outcome": str(r[3]),
                "evidence_kind": "reviewer",
            }
            for r in rows
        ]
    )
    frame["source"] = pd.Series("audit_sample", index=frame.index, dtype="string")
    flags = [simulated[i] for i in frame["verdict_id"].astype(str)]
    frame["simulated"] = pd.Series(flags, index=frame.index, dtype=bool)
    return frame


def export_verdicts(engine: Engine, since: datetime | None = None) -> pd.DataFrame:
    """Findings as rows of the contract's ``verdicts`` table (counterfeit / genuine only).

    Columns ``verdict_id, shop_id, decided_at, outcome, evidence_kind`` in the loaded dtypes (strings as
    pandas string dtype, ``decided_at`` naive UTC ``datetime64[us]``); ``verdict_id`` is
    ``console-<finding id>`` so a re-export never collides with itself or with generated verdicts.
    """
    return finding_labels(engine, since)[list(VERDICT_COLUMNS)]
