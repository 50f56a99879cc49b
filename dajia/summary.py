"""The crackdown's summary: what each step did, read back from the stores it wrote to.

Counts come from the sanction store (cases, events, claims, outbox, disclosures, audit), not from
the steps' own tallies, so the summary states what the database holds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from core.settings import Settings
from marketplace.schema import PERSONAL_FIELDS

if TYPE_CHECKING:
    from dajia.crackdown import RunFolder


#: outbox kinds that are notices to a person (buyer or seller), reported by kind/topic
NOTICE_KINDS = ("notify_buyer/", "notify_seller/")


def _fen(v: Any) -> float:
    return round(int(v or 0) / 100.0, 2)


def crackdown_summary(settings: Settings, folder: RunFolder, state: dict[str, Any]) -> dict[str, Any]:
    from sqlalchemy.orm import Session

    from dajia.db import open_store
    from sanctions.models import Case, CaseEvent, Claim, Disclosure, OutboxMessage, Shop

    done = state["done"]
    train = done.get("train", {})
    engine = open_store(settings.resolved_database_url)
    try:
        with Session(engine) as s:

            def count(*where: Any, model: Any = Case) -> int:
                return int(s.execute(select(func.count()).select_from(model).where(*where)).scalar_one())

            def events(action: str) -> int:
                return count(CaseEvent.action == action, model=CaseEvent)

            tiers = {
                str(t or "none"): int(n)
                for t, n in s.execute(
                    select(Case.tier, func.count()).where(Case.origin == "score").group_by(Case.tier)
                ).all()
            }
            origins = {str(o): int(n) for o, n in s.execute(select(Case.origin, func.count()).group_by(Case.origin))}
            claims = {
                str(st): {"claims": int(n), "amount": _fen(a)}
                for st, n, a in s.execute(
                    select(Claim.status, func.count(), func.sum(Claim.amount_fen)).group_by(Claim.status)
                ).all()
            }
            owed_total = _fen(s.execute(select(func.sum(Claim.amount_fen))).scalar_one())
            paid = _fen(s.execute(select(func.sum(Claim.amount_fen)).where(Claim.paid_at.is_not(None))).scalar_one())
            confirmed = _fen(
                s.execute(select(func.sum(Claim.amount_fen)).where(Claim.confirmed_at.is_not(None))).scalar_one()
            )
            outbox = {
                f"{k}/{t}": int(n)
                for k, t, n in s.execute(
                    select(OutboxMessage.kind, OutboxMessage.topic, func.count()).group_by(
                        OutboxMessage.kind, OutboxMessage.topic
                    )
                ).all()
            }
            disclosed = count(Disclosure.status == "published", model=Disclosure)
            withdrawn = count(Disclosure.status == "withdrawn", model=Disclosure)
            simulated_events = count(CaseEvent.simulated.is_(True), model=CaseEvent)
            shop_status = {
                str(k): int(n) for k, n in s.execute(select(Shop.status, func.count()).group_by(Shop.status))
            }
            evasion_closed = count(Case.origin == "ban_evasion", Case.status == "closed")
            summary: dict[str, Any] = {
                "run_folder": str(folder.root),
                "config": state["config"],
                "simulated": (
                    "reviewers, sellers, consumers and the admin of this run are simulated "
                    f"({simulated_events} case events carry simulated=true)"
                ),
                "marketplace": done.get("generate", {}),
                "model": {
                    "name": settings.model_name,
                    "version": train.get("version"),
                    "promotion": {k: done.get("promote", {}).get(k) for k in ("promoted", "passed_gate", "note")},
                    "thresholds": train.get("thresholds"),
                    "metrics_vs_baselines": train.get("comparison"),
                    "true_metrics_vs_baselines": train.get("true_comparison"),
                },
                "sweep": {k: done.get("sweep", {}).get(k) for k in ("shops", "tiers", "as_of", "seconds")},
                "cases": {"opened_by_tier": tiers, "by_origin": origins, "total": sum(origins.values())},
                "step1_close": {
                    "shops_closed": shop_status.get("closed", 0),
                    "closed_on_proof": events("close"),
                    "escalated_from_ban": events("escalate") + events("refuse"),
                },
                "step2_compensate": {
                    "shops_banned": events("ban"),
                    "still_banned": shop_status.get("banned", 0),
                    "bans_lifted": events("settle"),
                    "refusals": events("refuse"),
                    "compensation_owed": owed_total,
                    "compensation_paid": paid,
                    "compensation_confirmed": confirmed,
                    "claims_by_status": claims,
                },
                "step3_publicise": {
                    "campaign_id": done.get("campaign", {}).get("campaign_id"),
                    "cases_announced": done.get("campaign", {}).get("cases"),
                    "warnings_sent": done.get("campaign", {}).get("warnings_sent"),
                    "outbox": outbox,
                },
                "step4_disclose": {
                    "entries_disclosed": disclosed,
                    "entries_withdrawn": withdrawn,
                    "fields_masked": disclosed * len(PERSONAL_FIELDS),
                    "policy": done.get("disclose", {}).get("policy"),
                },
                "appeals": done.get("appeals", {}),
                "ban_evasion": {
                    "cases_opened": origins.get("ban_evasion", 0),
                    "shops_closed": evasion_closed,
                },
                "audit": {k: v for k, v in done.get("verify", {}).items() if k != "second_routing"},
                "effects": {
                    "storefront_changes_published": done.get("deliver", {}).get("storefront_changes"),
                    "notices_by_kind": {k: n for k, n in outbox.items() if k.startswith(NOTICE_KINDS)},
                    "claims_confirmed_through_links_by_simulated_consumers": done.get("compensate", {}).get(
                        "claims_confirmed_via_links"
                    ),
                    "second_routing_of_the_same_scores": done.get("verify", {}).get("second_routing"),
                },
            }
    finally:
        engine.dispose()
    summary["where_to_look"] = {
        "mlflow_ui": f"mlflow ui --backend-store-uri {settings.resolved_tracking_uri} --port 5000",
        "announcement": str(folder.published / "announcement.html"),
        "disclosure_list": str(folder.published / "closed-shops.json"),
        "storefront_feed": str(folder.published / "storefront-changes.jsonl"),
        "summary": str(folder.root / "summary.json"),
        "serve": (
            f"DAJIA_HOME={folder.root} dajia serve --data {folder.data} --port 8000  "
            "(API http://127.0.0.1:8000/docs, console http://127.0.0.1:8000/console)"
        ),
    }
    summary["seconds"] = {k: v.get("seconds") for k, v in done.items()}
    return summary
