"""``dajia campaign …`` (step 3: publicise and warn) and ``dajia disclosure …`` (step 4: disclose)."""

from __future__ import annotations

from pathlib import Path

import typer

from dajia.output import console, emit


def register(app: typer.Typer) -> None:
    campaign = typer.Typer(help="Crackdown campaigns: announcement and warning to every seller.", no_args_is_help=True)
    app.add_typer(campaign, name="campaign")
    disclosure = typer.Typer(help="The public list of closed shops, under a disclosure policy.", no_args_is_help=True)
    app.add_typer(disclosure, name="disclosure")

    @campaign.command("create")
    def create(
        title: str = typer.Option(..., "--title"),
        case: list[int] = typer.Option([], "--case", help="case id (default: every decided case not yet announced)"),
        actor_id: str = typer.Option(..., "--actor"),
        role: str = typer.Option("reviewer", "--role"),
        key: str | None = typer.Option(None, "--key", help="idempotency key"),
        as_json: bool = typer.Option(False, "--json"),
    ) -> None:
        """Create a draft campaign over decided cases."""
        from dajia.cli_support import actor, store_session
        from sanctions.campaigns import create_campaign

        with store_session() as session:
            view = create_campaign(
                session, actor(session, actor_id, role), title=title, case_ids=case or None, idempotency_key=key
            )
        emit(view.model_dump(mode="json"), as_json)

    @campaign.command("approve")
    def approve(
        campaign_id: int = typer.Argument(...),
        actor_id: str = typer.Option(..., "--actor", help="a second admin (not the campaign's drafter)"),
        role: str = typer.Option("admin", "--role"),
        key: str | None = typer.Option(None, "--key"),
        as_json: bool = typer.Option(False, "--json"),
    ) -> None:
        """A second admin approves a draft campaign (four eyes: its drafter may not)."""
        from dajia.cli_support import actor, store_session
        from sanctions.campaigns import approve_campaign

        with store_session() as session:
            view = approve_campaign(session, campaign_id, actor(session, actor_id, role), idempotency_key=key)
        emit(view.model_dump(mode="json"), as_json)

    @campaign.command("publish")
    def publish(
        campaign_id: int = typer.Argument(...),
        actor_id: str = typer.Option(..., "--actor", help="an admin"),
        role: str = typer.Option("admin", "--role"),
        key: str | None = typer.Option(None, "--key"),
        as_json: bool = typer.Option(False, "--json"),
    ) -> None:
        """Publish an approved campaign: the announcement and a warning to every seller (outbox)."""
        from dajia.cli_support import actor, store_session
        from sanctions.campaigns import publish_campaign

        with store_session() as session:
            view = publish_campaign(session, campaign_id, actor(session, actor_id, role), idempotency_key=key)
        emit(view.model_dump(mode="json"), as_json)

    @campaign.command("show")
    def show(
        campaign_id: int = typer.Argument(...),
        html: Path | None = typer.Option(None, "--html", help="write the published HTML announcement here"),
        as_json: bool = typer.Option(False, "--json"),
    ) -> None:
        """Show a campaign (and write its HTML announcement)."""
        from dajia.cli_support import store_session
        from sanctions.campaigns import campaign_html, get_campaign

        with store_session() as session:
            view = get_campaign(session, campaign_id)
            if html is not None:
                html.write_text(campaign_html(session, campaign_id), encoding="utf-8")
        emit(view.model_dump(mode="json"), as_json)

    @campaign.command("list")
    def list_(as_json: bool = typer.Option(False, "--json")) -> None:
        """List campaigns."""
        from dajia.cli_support import store_session
        from sanctions.campaigns import list_campaigns

        with store_session() as session:
            rows = [c.model_dump(mode="json", exclude={"announcement"}) for c in list_campaigns(session)]

        def human(result: dict[str, object]) -> None:
            for c in rows:
                console.print(f"{c['campaign_id']:>5}  {c['status']:<10} {c['title']}  ({len(c['case_ids'])} cases)")

        emit({"campaigns": rows}, as_json, human)  # type: ignore[arg-type]

    @disclosure.command("policy")
    def policy(
        name: str = typer.Option(..., "--name"),
        field: list[str] = typer.Option([], "--field", help="personal field to publish, repeatable"),
        basis: str = typer.Option(..., "--basis", help="the legal basis that allows it"),
        case: list[int] = typer.Option([], "--case", help="a case the legal basis is for, repeatable"),
        actor_id: str = typer.Option(..., "--actor", help="an admin"),
        as_json: bool = typer.Option(False, "--json"),
    ) -> None:
        """Draft a disclosure policy naming personal fields that may be published, with its legal basis and
        the cases it is for (the fields go out only in those cases' entries; a policy naming personal fields
        needs a second admin: `dajia disclosure approve-policy`)."""
        from dajia.cli_support import actor, store_session
        from sanctions.disclosure import create_policy

        with store_session() as session:
            view = create_policy(
                session,
                actor(session, actor_id, "admin"),
                name=name,
                personal_fields=field,
                legal_basis=basis,
                case_ids=case,
            )
        emit(view.model_dump(mode="json"), as_json)

    @disclosure.command("approve-policy")
    def approve_policy(
        name: str = typer.Argument(..., help="the policy's name"),
        actor_id: str = typer.Option(..., "--actor", help="a second admin (not the policy's author)"),
        as_json: bool = typer.Option(False, "--json"),
    ) -> None:
        """A second admin approves a policy that reveals personal fields (four eyes)."""
        from dajia.cli_support import actor, store_session
        from sanctions.disclosure import approve_policy as approve

        with store_session() as session:
            view = approve(session, name, actor(session, actor_id, "admin"))
        emit(view.model_dump(mode="json"), as_json)

    @disclosure.command("propose")
    def propose(
        basis: str = typer.Option(..., "--basis", help="basis of this publication (recorded)"),
        actor_id: str = typer.Option(..., "--actor", help="the drafting admin"),
        role: str = typer.Option("admin", "--role"),
        case: list[int] = typer.Option([], "--case", help="case id (default: every closed case not yet disclosed)"),
        policy_name: str | None = typer.Option(
            None, "--policy", help="disclosure policy (default: business fields only)"
        ),
        key: str | None = typer.Option(None, "--key"),
        as_json: bool = typer.Option(False, "--json"),
    ) -> None:
        """Draft entries of closed shops for the public list (public once a second admin approves them)."""
        from dajia.cli_support import actor, store_session
        from sanctions.disclosure import propose_disclosures

        with store_session() as session:
            result = propose_disclosures(
                session,
                actor(session, actor_id, role),
                basis=basis,
                case_ids=case or None,
                policy=policy_name,
                idempotency_key=key,
            )
        emit(result.model_dump(mode="json"), as_json)

    @disclosure.command("approve")
    def approve_entries(
        actor_id: str = typer.Option(..., "--actor", help="a second admin (not the drafter)"),
        role: str = typer.Option("admin", "--role"),
        case: list[int] = typer.Option([], "--case", help="case id (default: every proposed entry)"),
        key: str | None = typer.Option(None, "--key"),
        as_json: bool = typer.Option(False, "--json"),
    ) -> None:
        """A second admin approves proposed entries: they go on the public list (four eyes)."""
        from dajia.cli_support import actor, store_session
        from sanctions.disclosure import approve_disclosures

        with store_session() as session:
            result = approve_disclosures(
                session, actor(session, actor_id, role), case_ids=case or None, idempotency_key=key
            )
        emit(result.model_dump(mode="json"), as_json)

    @disclosure.command("list")
    def list_closed(as_json: bool = typer.Option(False, "--json")) -> None:
        """The public list of closed shops, exactly as the public sees it (masked)."""
        from dajia.cli_support import store_session
        from sanctions.public import closed_shops

        with store_session() as session:
            rows = [e.model_dump(mode="json") for e in closed_shops(session)]

        def human(result: dict[str, object]) -> None:
            for e in rows:
                console.print(
                    f"{e['measure_date']}  {e['shop_id']:<16} {e['name']}  reg {e['business_registration']}  "
                    f"{e['business_phone']} {e['business_email']}"
                )

        emit({"closed_shops": rows}, as_json, human)  # type: ignore[arg-type]
