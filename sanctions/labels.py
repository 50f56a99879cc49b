"""Reviewer decisions in the sanction workflow as verdicts (labels) for the next training run.

    model score → case opened (sanctions) → reviewer decides → case_events
        → ``reviewer_verdicts(engine)`` → verdict rows → ``training.feedback.with_feedback`` → ``dajia train``

Mapping of the workflow's decision events (``sanctions.workflow``):

* ``close`` (step 1, with proof) → ``counterfeit``; evidence kind from the proof cited (test_buy,
  brand_owner; anything else → reviewer);
* ``ban`` (step 2, reviewer agrees, evidence short of proof) → ``counterfeit`` / reviewer;
* ``dismiss`` → ``genuine`` / reviewer;
* ``reverse`` (an appeal upheld) → ``genuine`` / reviewer, and the case's earlier counterfeit verdict is
  withdrawn (the shop was wrongly sanctioned: it must not train the next model as a counterfeiter).

The decision time is the verdict's ``decided_at``, so the example builder's label windows and the
label-delay gap apply to these labels exactly as to the marketplace's own verdicts. Verdict ids are
``case<case_id>-ev<event_id>``: re-exporting is idempotent, and a verdict already in the marketplace
with the same id is not duplicated.
"""

from __future__ import annotations

import pandas as pd
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from marketplace.schema import EVIDENCE_KINDS
from marketplace.tables import VERDICT_COLUMNS, verdict_frame
from sanctions.models import Case, CaseEvent

_OUTCOME = {"close": "counterfeit", "ban": "counterfeit", "dismiss": "genuine", "reverse": "genuine"}


def _evidence_kind(evidence: list[dict[str, object]] | None) -> str:
    for e in evidence or []:
        kind = str(e.get("kind", ""))
        if kind in ("test_buy", "brand_owner"):
            return kind
    for e in evidence or []:
        if str(e.get("kind", "")) == "consumer_reports":
            return "consumer_reports"
    return "reviewer"


def reviewer_labels(engine: Engine) -> pd.DataFrame:
    """Verdict rows from the workflow's decision events, with two more columns: ``source``
    (``decision`` for close/ban/dismiss, ``appeal`` for an upheld appeal) and ``simulated`` (the
    deciding actor was one of the demo's stand-in humans, ``sanctions.workflow.Actor.simulated``)."""
    stmt = (
        select(
            CaseEvent.event_id,
            CaseEvent.case_id,
            Case.shop_id,
            CaseEvent.at,
            CaseEvent.action,
            CaseEvent.evidence,
            CaseEvent.simulated,
        )
        .join(Case, Case.case_id == CaseEvent.case_id)
        .where(CaseEvent.action.in_(list(_OUTCOME)))
        .order_by(CaseEvent.event_id)
    )
    with Session(engine) as session:
        rows = session.execute(stmt).all()
    out: dict[int, list[dict[str, object]]] = {}
    extra: dict[str, tuple[str, bool]] = {}
    for event_id, case_id, shop_id, at, action, evidence, simulated in rows:
        if action == "reverse":
            out[case_id] = [v for v in out.get(case_id, []) if v["outcome"] != "counterfeit"]
        kind = "reviewer" if action in ("ban", "dismiss", "reverse") else _evidence_kind(evidence)
        assert kind in EVIDENCE_KINDS
        verdict_id = f"case{case_id}-ev{event_id}"
        extra[verdict_id] = ("appeal" if action == "reverse" else "decision", bool(simulated))
        out.setdefault(case_id, []).append(
            {
                "verdict_id": verdict_id,
                "shop_id": str(shop_id),
                "decided_at": pd.Timestamp(at),
                "outcome": _OUTCOME[action],
                "evidence_kind": kind,
            }
        )
    frame = verdict_frame([v for vs in out.values() for v in vs])
    ids = frame["verdict_id"].astype(str)
    frame["source"] = pd.Series([extra[i][0] for i in ids], index=frame.index, dtype="string")
    frame["simulated"] = pd.Series([extra[i][1] for i in ids], index=frame.index, dtype=bool)
    return frame


def reviewer_verdicts(engine: Engine) -> pd.DataFrame:
    """Verdict rows (the contract's ``verdicts`` columns) from the workflow's decision events."""
    return reviewer_labels(engine)[list(VERDICT_COLUMNS)]
