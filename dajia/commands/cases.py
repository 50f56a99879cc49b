"""``dajia cases …``: import the storefront, route scored shops, review, decide, compensate, appeal."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import typer

from dajia.commands.options import SNAPSHOT_HELP, check_local_folder
from dajia.output import console, emit


def _human_case(result: Mapping[str, Any]) -> None:
    console.print(
        f"case {result['case_id']} · shop {result['shop_id']} ({result['shop_name']}, {result['shop_status']}) · "
        f"[bold]{result['status']}[/bold] v{result['version']} · origin {result['origin']} · "
        f"score {result['score']} ({result['model_name']} {result['model_version']})"
    )
    if result.get("shopkeeper_id"):
        console.print(f"  shopkeeper {result['shopkeeper_id']} (the --actor of appeal, pay and refuse)")
    for e in result.get("events", []):
        sim = " (simulated)" if e["simulated"] else ""
        console.print(
            f"  {e['at']}  {e['action']:<14} {e['old_status']} → {e['new_status']}  "
            f"by {e['role']} {e['actor_id']}{sim}: {e['reason']}"
        )
    for c in result.get("claims", []):
        console.print(f"  claim {c['claim_id']} buyer {c['buyer_id']}: {c['amount']:.2f} yuan, {c['status']}")


def register(app: typer.Typer) -> None:
    cases = typer.Typer(help="Sanction cases: import, route, review, decide, compensate, appeal.", no_args_is_help=True)
    app.add_typer(cases, name="cases")

    @cases.command("import")
    def import_(
        data: Path = typer.Option(..., "--data", help="marketplace folder (Parquet/CSV tables)"),
        snapshot_at: str | None = typer.Option(None, "--snapshot-at", help=SNAPSHOT_HELP),
        as_json: bool = typer.Option(False, "--json", help="print the result as JSON"),
    ) -> None:
        """Import (idempotently) a marketplace's shops, listings and orders into the sanction store."""
        from dajia.cli_support import store_session
        from marketplace.loader import load_marketplace
        from sanctions.storefront import import_marketplace

        check_local_folder(data, snapshot_at)
        mp = load_marketplace(data, snapshot_at)
        with store_session() as session:
            report = import_marketplace(session, mp)
        result = report.model_dump()
        result["new_shop_ids"] = len(report.new_shop_ids)
        emit(result, as_json)

    @cases.command("route")
    def route(
        scores: str = typer.Option(
            ..., "--scores", help="Parquet/CSV of scored shops, or a sweep's folder (local path or fsspec URL)"
        ),
        tier: str = typer.Option("suspected", "--tier", help="lowest tier that opens a case"),
        chunk: int = typer.Option(5000, "--chunk", min=1, help="shops per transaction"),
        throttle: float = typer.Option(0.0, "--throttle", min=0.0, help="seconds to sleep between chunks"),
        as_json: bool = typer.Option(False, "--json", help="print the result as JSON"),
    ) -> None:
        """Open (or rescore) a case for every scored shop at or above --tier. Safe to rerun after a crash."""
        from dajia.cli_support import read_scores, store_session
        from sanctions.routing import route_scored

        with store_session() as session:
            report = route_scored(session, read_scores(scores), tier=tier, chunk_size=chunk, throttle=throttle)
        result = report.model_dump()
        result["opened_case_ids"] = len(report.opened_case_ids)
        emit(result, as_json)

    @cases.command("evasion")
    def evasion(as_json: bool = typer.Option(False, "--json", help="print the result as JSON")) -> None:
        """Open a case for every shop that shares identifiers with a closed shop (ban evasion)."""
        from dajia.cli_support import store_session
        from sanctions.routing import detect_ban_evasion

        with store_session() as session:
            emit(detect_ban_evasion(session).model_dump(), as_json)

    @cases.command("list")
    def list_(
        status: str | None = typer.Option(None, "--status", help="only cases in this status"),
        shop: str | None = typer.Option(None, "--shop", help="only cases of this shop"),
        limit: int = typer.Option(50, "--limit", min=1),
        shop_ids: bool = typer.Option(
            False, "--shop-ids", help="print only the shop ids, one a line (SHOP=$(dajia cases list ... --shop-ids))"
        ),
        as_json: bool = typer.Option(False, "--json", help="print the result as JSON"),
    ) -> None:
        """List cases, riskiest first."""
        from core.errors import DajiaError
        from dajia.cli_support import store_session
        from sanctions.cases import list_cases
        from sanctions.workflow import CaseStatus

        if status is not None and status not in {s.value for s in CaseStatus}:
            raise DajiaError(f"--status must be one of {', '.join(s.value for s in CaseStatus)}, got {status!r}")
        with store_session() as session:
            rows = [c.model_dump(mode="json") for c in list_cases(session, status=status, shop_id=shop, limit=limit)]

        def human(result: Mapping[str, Any]) -> None:
            for c in result["cases"]:
                if shop_ids:
                    print(c["shop_id"])
                    continue
                console.print(
                    f"{c['case_id']:>7}  {c['status']:<15} {c['shop_id']:<16} {c['category']:<12} "
                    f"score {c['score'] if c['score'] is not None else '-'}  {c['origin']}"
                )

        emit({"cases": rows}, as_json, human)

    @cases.command("show")
    def show(
        case_id: int = typer.Argument(..., help="case id"),
        as_json: bool = typer.Option(False, "--json", help="print the result as JSON"),
    ) -> None:
        """One case with its history and claims."""
        from dajia.cli_support import shopkeeper_of, store_session
        from sanctions.cases import get_case

        with store_session() as session:
            view = get_case(session, case_id).model_dump(mode="json")
            view["shopkeeper_id"] = shopkeeper_of(session, view["shop_id"])
        emit(view, as_json, _human_case)

    @cases.command("decide")
    def decide(
        case_id: int = typer.Argument(..., help="case id"),
        action: str = typer.Argument(..., help="close (step 1, needs proof) | ban (step 2) | dismiss"),
        actor_id: str = typer.Option(..., "--actor", help="who decides"),
        role: str = typer.Option("reviewer", "--role"),
        reason: str = typer.Option(..., "--reason"),
        evidence: list[str] = typer.Option([], "--evidence", help="kind:ref[:detail], repeatable"),
        listing: list[str] = typer.Option([], "--listing", help="suspect listing id (default: all), repeatable"),
        expected_version: int | None = typer.Option(None, "--expected-version", help="the version you reviewed"),
        key: str | None = typer.Option(None, "--key", help="idempotency key (retry-safe)"),
        simulated: bool = typer.Option(False, "--simulated", help="the actor is a simulated stand-in"),
        as_json: bool = typer.Option(False, "--json", help="print the result as JSON"),
    ) -> None:
        """Decide an open case."""
        from dajia.cli_support import actor, store_session
        from dajia.cli_support import evidence as parse_evidence
        from sanctions import cases as svc

        with store_session() as session:
            result = svc.decide(
                session,
                case_id,
                _action(action, ("close", "ban", "dismiss")),
                actor(session, actor_id, role, simulated),
                reason=reason,
                evidence=parse_evidence(evidence),
                suspect_listing_ids=listing or None,
                expected_version=expected_version,
                idempotency_key=key,
            )
        emit(result.model_dump(mode="json"), as_json)

    @cases.command("appeal")
    def appeal(
        case_id: int = typer.Argument(...),
        actor_id: str = typer.Option(..., "--actor", help="the shopkeeper's id (K…; `dajia cases show` lists it)"),
        reason: str = typer.Option(..., "--reason"),
        key: str | None = typer.Option(None, "--key"),
        as_json: bool = typer.Option(False, "--json"),
    ) -> None:
        """The shopkeeper appeals a closure or a ban."""
        from dajia.cli_support import seller, store_session
        from sanctions import cases as svc

        with store_session() as session:
            who = seller(session, actor_id, case_id=case_id)
            result = svc.appeal(session, case_id, who, reason=reason, idempotency_key=key)
        emit(result.model_dump(mode="json"), as_json)

    @cases.command("decide-appeal")
    def decide_appeal(
        case_id: int = typer.Argument(...),
        uphold: bool = typer.Option(..., "--uphold/--reject", help="--uphold reverses the measure"),
        actor_id: str = typer.Option(..., "--actor"),
        role: str = typer.Option("reviewer", "--role"),
        reason: str = typer.Option(..., "--reason"),
        key: str | None = typer.Option(None, "--key"),
        as_json: bool = typer.Option(False, "--json"),
    ) -> None:
        """Decide an appeal: --uphold restores the shop, voids unpaid claims, withdraws disclosure."""
        from dajia.cli_support import actor, store_session
        from sanctions import cases as svc

        with store_session() as session:
            result = svc.decide_appeal(
                session, case_id, uphold, actor(session, actor_id, role), reason=reason, idempotency_key=key
            )
        emit(result.model_dump(mode="json"), as_json)

    @cases.command("pay")
    def pay(
        claim_id: int = typer.Argument(...),
        actor_id: str = typer.Option(..., "--actor", help="the shopkeeper's id (K…), or an admin's with --role admin"),
        role: str = typer.Option("seller", "--role"),
        ref: str = typer.Option(..., "--ref", help="payment reference"),
        key: str | None = typer.Option(None, "--key"),
        as_json: bool = typer.Option(False, "--json"),
    ) -> None:
        """Record the payment of one compensation claim."""
        from dajia.cli_support import actor, seller, store_session
        from sanctions import cases as svc

        with store_session() as session:
            who = seller(session, actor_id, claim_id=claim_id) if role == "seller" else actor(session, actor_id, role)
            result = svc.record_payment(session, claim_id, who, payment_ref=ref, idempotency_key=key)
        emit(result.model_dump(mode="json"), as_json)

    @cases.command("confirm")
    def confirm(
        claim_id: int = typer.Argument(...),
        actor_id: str = typer.Option(..., "--actor", help="the buyer's id (the claim's buyer_id)"),
        key: str | None = typer.Option(None, "--key"),
        as_json: bool = typer.Option(False, "--json"),
    ) -> None:
        """The consumer confirms a paid claim (the last confirmation lifts the ban)."""
        from dajia.cli_support import actor, store_session
        from sanctions import cases as svc

        with store_session() as session:
            result = svc.confirm_claim(session, claim_id, actor(session, actor_id, "consumer"), idempotency_key=key)
        emit(result.model_dump(mode="json"), as_json)

    @cases.command("refuse")
    def refuse(
        case_id: int = typer.Argument(...),
        actor_id: str = typer.Option(..., "--actor", help="the shopkeeper's id (K…; `dajia cases show` lists it)"),
        reason: str = typer.Option("seller refuses to compensate", "--reason"),
        as_json: bool = typer.Option(False, "--json"),
    ) -> None:
        """The shopkeeper refuses to compensate: escalated to closure."""
        from dajia.cli_support import seller, store_session
        from sanctions import cases as svc

        with store_session() as session:
            who = seller(session, actor_id, case_id=case_id)
            result = svc.refuse_compensation(session, case_id, who, reason=reason)
        emit(result.model_dump(mode="json"), as_json)

    @cases.command("escalate-overdue")
    def escalate_overdue(as_json: bool = typer.Option(False, "--json")) -> None:
        """Close every banned shop with a claim unpaid past its deadline."""
        from dajia.cli_support import store_session
        from sanctions import cases as svc

        with store_session() as session:
            done = svc.escalate_overdue(session)
        emit({"escalated": [r.case_id for r in done]}, as_json)


def _action(value: str, allowed: tuple[str, ...]) -> str:
    from core.errors import DajiaError

    if value not in allowed:
        raise DajiaError(f"action must be one of {', '.join(allowed)}, got {value!r}")
    return value
