"""The crackdown's summary: what each step did, read back from the stores it wrote to.

Counts come from the sanction store (cases, events, claims, outbox, disclosures, audit), not from
the steps' own tallies, so the summary states what the database holds.
"""

from __future__ import annotations

from pathlib import Path
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


def _suspected_shop(session: Any) -> dict[str, Any] | None:
    """The riskiest shop whose score case is still open: what the quick start scores with ``route: true``."""
    from sanctions.models import Case

    row = session.execute(
        select(Case.shop_id, Case.case_id, Case.score)
        .where(Case.status == "open", Case.origin == "score", Case.tier == "suspected")
        .order_by(Case.score.desc().nulls_last(), Case.case_id)
        .limit(1)
    ).first()
    if row is None:
        return None
    return {"shop_id": str(row[0]), "case_id": int(row[1]), "score": None if row[2] is None else float(row[2])}


def dajia_command() -> str:
    """How a person types ``dajia`` here: bare when it is on PATH, else the path of this one
    (``.venv/bin/dajia`` from the checkout: ``make run`` does not activate the environment)."""
    import shutil
    import sys

    here = Path(sys.executable).with_name("dajia")
    on_path = shutil.which("dajia")
    if on_path is not None and Path(on_path).resolve() == here.resolve():
        return "dajia"
    try:
        return str(here.relative_to(Path.cwd()))
    except ValueError:
        return str(here)


def _env_url(url: str) -> str:
    """A URL for a command line (quoted; a password is not printed)."""
    import shlex

    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:
        return shlex.quote(url)
    if parsed.password:
        return shlex.quote(parsed.render_as_string(hide_password=True))
    return shlex.quote(url)


def where_to_look(settings: Settings, folder: RunFolder) -> dict[str, Any]:
    """Where the run's results are, and the commands that open them, each a whole line to copy.

    ``env`` exports what every later command needs (the run's home, and DATABASE_URL /
    MLFLOW_TRACKING_URI when they are not the run's own files); ``dajia`` is how to type the command
    here. With a tracking server there is no ``mlflow ui`` to run: ``mlflow_server`` is its address."""
    import shlex

    tracking = settings.resolved_tracking_uri
    server = tracking.startswith(("http://", "https://"))
    env = [f"DAJIA_HOME={shlex.quote(str(folder.root))}"]
    if settings.database_url:
        env.append(f"DATABASE_URL={_env_url(settings.database_url)}")
    if settings.mlflow_tracking_uri:
        env.append(f"MLFLOW_TRACKING_URI={_env_url(settings.mlflow_tracking_uri)}")
    dajia = dajia_command()
    mlflow = "mlflow" if dajia == "dajia" else str(Path(dajia).with_name("mlflow"))
    return {
        "mlflow_ui": None if server else f"{mlflow} ui --backend-store-uri {_env_url(tracking)} --port 5000",
        "mlflow_server": tracking if server else None,
        "announcement": str(folder.published / "announcement.html"),
        "disclosure_list": str(folder.published / "closed-shops.json"),
        "storefront_feed": str(folder.published / "storefront-changes.jsonl"),
        "summary": str(folder.root / "summary.json"),
        "env": "export " + " ".join(env),
        "dajia": dajia,
        "serve": f"{' '.join(env)} {dajia} serve --data {shlex.quote(str(folder.data))} --port 8000",
        "api_docs": "http://127.0.0.1:8000/docs",
        "console": "http://127.0.0.1:8000/console",
        "public": "http://127.0.0.1:8000/public/announcement",
    }


def _four_eyes(s: Any, campaign: Any, disclosure: Any, event: Any) -> dict[str, Any]:
    """Who drafted and who approved, read from the store: every approval by a second person?"""
    camps = [
        {"campaign_id": cid, "drafted_by": d, "approved_by": a, "second_person": bool(a) and a != d}
        for cid, d, a in s.execute(
            select(campaign.campaign_id, campaign.created_by, campaign.approved_by).order_by(campaign.campaign_id)
        ).all()
    ]
    pairs = s.execute(
        select(disclosure.drafted_by, disclosure.approved_by, func.count())
        .where(disclosure.approved_by.is_not(None))
        .group_by(disclosure.drafted_by, disclosure.approved_by)
    ).all()
    disclosures = [{"drafted_by": d, "approved_by": a, "entries": int(n), "second_person": d != a} for d, a, n in pairs]
    deciders = {
        (int(c), str(a))
        for c, a in s.execute(
            select(event.case_id, event.actor_id).where(event.action.in_(("close", "ban", "escalate")))
        ).all()
    }
    appeal_rows = s.execute(
        select(event.case_id, event.actor_id).where(event.action.in_(("reverse", "reject_appeal")))
    ).all()
    by_decider = sum(1 for c, a in appeal_rows if (int(c), str(a)) in deciders)
    return {
        "campaigns": camps,
        "disclosures": disclosures,
        "appeals_decided": len(appeal_rows),
        "appeals_decided_by_the_original_decider": by_decider,
        # campaigns still in draft (the demo leaves one for a person) have no approval yet to check
        "all_by_a_second_person": all(c["second_person"] for c in camps if c["approved_by"])
        and all(d["second_person"] for d in disclosures)
        and by_decider == 0,
    }


def crackdown_summary(settings: Settings, folder: RunFolder, state: dict[str, Any]) -> dict[str, Any]:
    from sqlalchemy.orm import Session

    from dajia.db import open_store
    from sanctions.models import Campaign, Case, CaseEvent, Claim, Disclosure, OutboxMessage, Shop

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
            queue = {
                "open_cases": count(Case.status == "open"),
                "appeals_pending": count(Case.status.in_(("appealed_close", "appealed_ban"))),
                "campaign_drafts": count(Campaign.status == "draft", model=Campaign),
                "campaigns_approved": count(Campaign.status == "approved", model=Campaign),
                "suspected_shop": _suspected_shop(s),
            }
            four_eyes = _four_eyes(s, Campaign, Disclosure, CaseEvent)
            summary: dict[str, Any] = {
                "run_folder": str(folder.root),
                "config": state["config"],
                "simulated": (
                    "reviewers, sellers, consumers and the two admins of this run are simulated "
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
                    "draft_campaign_id": done.get("campaign", {}).get("draft_campaign_id"),
                    "outbox": outbox,
                },
                "step4_disclose": {
                    "entries_disclosed": disclosed,
                    "entries_withdrawn": withdrawn,
                    "fields_masked": disclosed * len(PERSONAL_FIELDS),
                    "policy": done.get("disclose", {}).get("policy"),
                },
                "appeals": done.get("appeals", {}),
                "four_eyes": four_eyes,
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
                "queue": queue,
            }
    finally:
        engine.dispose()
    summary["where_to_look"] = where_to_look(settings, folder)
    summary["seconds"] = {k: v.get("seconds") for k, v in done.items()}
    return summary
