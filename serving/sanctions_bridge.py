"""The scoring API's door into the sanction workflow: route scored shops into cases.

The sanction package owns the rules (``sanctions.routing.route_scored``: idempotent by a digest of
shop, model, version and score); this adapter only opens the store, names the actor (the key's person, as a
scorer) and reports, per shop, the case it opened or found.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker


class SanctionsBridge:
    """On the service's engine (the database migrated before the app starts)."""

    def __init__(self, engine: Any) -> None:
        from core.db import session_factory

        self.engine = engine
        self.sessions: sessionmaker[Session] = session_factory(engine)

    def import_marketplace(self, mp: Any) -> Any:
        """Make the marketplace's shops known to the store (idempotent), so they can get cases."""
        from sanctions.storefront import import_marketplace

        return import_marketplace(self.engine, mp)

    def unknown_shops(self, shop_ids: list[str]) -> list[str]:
        """The ids among ``shop_ids`` that the store does not know (routing cannot open a case for them)."""
        from sanctions.models import Shop

        wanted = sorted(set(shop_ids))
        known: set[str] = set()
        with self.sessions() as session:
            for i in range(0, len(wanted), 500):
                known.update(
                    session.execute(select(Shop.shop_id).where(Shop.shop_id.in_(wanted[i : i + 500]))).scalars()
                )
        return [s for s in wanted if s not in known]

    def route(
        self,
        items: list[tuple[str, float, str, list[str], str, dict[str, float | None] | None]],
        served: Any,
        threshold: float,
        key: Any,
        lookup: list[str] | None = None,
    ) -> dict[str, dict[str, Any]]:
        """Route (shop, score, tier, reasons, source, feature values) through the workflow (the feature
        values go into the evidence snapshot of a case it opens); per shop of ``items`` and
        ``lookup`` with an open case: case id, status, created (by this routing), and where the routed data
        came from (``marketplace`` or the caller's ``inline`` records; None for a case found, not routed)."""
        from sanctions.models import Case
        from sanctions.routing import route_scored
        from sanctions.scored import ScoredShop
        from sanctions.workflow import OPEN_STATUSES

        scored = [
            ScoredShop(
                shop_id=sid,
                score=float(score),
                tier=tier,
                model_name=served.name,
                model_version=str(served.version),
                reasons=list(reasons),
                suspected_threshold=float(threshold),
                source=source,
                features=features,
            )
            for sid, score, tier, reasons, source, features in items
        ]
        sources = {sid: source for sid, _, _, _, source, _ in items}
        # routing is a scorer action whatever the key (an actor id keeps one role in the workflow)
        actor = key.actor("scorer")
        ids = sorted({s.shop_id for s in scored} | set(lookup or ()))
        with self.sessions() as session:
            opened = set(route_scored(session, scored, actor=actor).opened_case_ids) if scored else set()
            rows = session.execute(
                select(Case.case_id, Case.shop_id, Case.status).where(
                    Case.shop_id.in_(ids), Case.status.in_(sorted(OPEN_STATUSES))
                )
            ).all()
        out: dict[str, dict[str, Any]] = {}
        for case_id, shop_id, status in rows:
            out[str(shop_id)] = {
                "case_id": str(case_id),
                "status": str(status),
                "created": int(case_id) in opened,
                "routed_on": sources.get(str(shop_id)),
            }
        return out
