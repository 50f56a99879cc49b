"""The team's dashboard: queue size and age, decisions per day and per reviewer, agreement with the model
over time. Four grouped queries over ``cases`` and ``case_events``; charts drawn by ``plots.bars_svg``."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sanctions.models import Case, CaseEvent
from serving.console.queue import WAITING

#: the decisions a person makes on a case
DECISIONS = ("close", "ban", "dismiss", "reject_appeal", "reverse")
AGE_BUCKETS = (("under 1 day", 0, 1), ("1–7 days", 1, 7), ("7–30 days", 7, 30), ("over 30 days", 30, None))


@dataclass
class Dashboard:
    waiting: int
    ages: list[tuple[str, int]]
    oldest: datetime | None
    days: list[tuple[str, int]]
    reviewers: list[tuple[str, int, int]]  # actor id, decisions in the window, of which sanctioned
    weeks: list[tuple[str, int, float | None]]  # week, score-opened decisions, share sanctioned
    window_days: int = 30
    by_status: dict[str, int] = field(default_factory=dict)


def load_dashboard(conn: Connection, now: datetime, days: int = 30) -> Dashboard:
    c, e = Case.__table__.c, CaseEvent.__table__.c
    by_status = {str(s): int(n) for s, n in conn.execute(sa.select(c.status, sa.func.count()).group_by(c.status))}
    ages = []
    for label, lo, hi in AGE_BUCKETS:
        conds = [c.status.in_(WAITING), c.opened_at <= now - timedelta(days=lo)]
        if hi is not None:
            conds.append(c.opened_at > now - timedelta(days=hi))
        ages.append((label, int(conn.execute(sa.select(sa.func.count()).where(*conds)).scalar_one())))
    oldest = conn.execute(sa.select(sa.func.min(c.opened_at)).where(c.status.in_(WAITING))).scalar()
    since = (now - timedelta(days=days - 1)).replace(hour=0, minute=0, second=0, microsecond=0)
    human = [e.action.in_(DECISIONS), e.role.in_(("reviewer", "admin"))]
    rows = conn.execute(
        sa.select(e.at, e.actor_id, e.action, c.origin)
        .select_from(CaseEvent.__table__.join(Case.__table__, c.case_id == e.case_id))
        .where(*human)
    ).all()
    per_day: dict[str, int] = {(since + timedelta(days=i)).strftime("%m-%d"): 0 for i in range(days)}
    per_person: dict[str, list[int]] = {}
    per_week: dict[str, list[int]] = {}
    for at, actor, action, origin in rows:
        sanctioned = action in ("close", "ban")
        if at >= since:
            key = at.strftime("%m-%d")
            if key in per_day:
                per_day[key] += 1
            p = per_person.setdefault(str(actor), [0, 0])
            p[0] += 1
            p[1] += int(sanctioned)
        if origin == "score" and action in ("close", "ban", "dismiss"):
            iso = at.isocalendar()
            w = per_week.setdefault(f"{iso.year}-W{iso.week:02d}", [0, 0])
            w[0] += 1
            w[1] += int(sanctioned)
    weeks = [(k, v[0], v[1] / v[0] if v[0] else None) for k, v in sorted(per_week.items())][-26:]
    return Dashboard(
        waiting=sum(n for _label, n in ages),
        ages=ages,
        oldest=oldest,
        days=list(per_day.items()),
        reviewers=sorted(((a, v[0], v[1]) for a, v in per_person.items()), key=lambda r: -r[1]),
        weeks=weeks,
        window_days=days,
        by_status=by_status,
    )
