"""``dajia people …``: reviewers and admins are people with names; registering one is explicit."""

from __future__ import annotations

import typer

from dajia.output import console, emit


def register(app: typer.Typer) -> None:
    people = typer.Typer(
        help="Reviewers and admins: named people and the actor ids they act under.", no_args_is_help=True
    )
    app.add_typer(people, name="people")

    @people.command("add")
    def add(
        person_id: str = typer.Option(..., "--id", help="the person's id (their first actor id)"),
        name: str = typer.Option(..., "--name", help="the person's name"),
        role: str = typer.Option(..., "--role", help="reviewer or admin"),
        actor_id: str | None = typer.Option(
            None, "--actor-id", help="default: the id, or <id>:<role> for a second role"
        ),
        as_json: bool = typer.Option(False, "--json"),
    ) -> None:
        """Register a person acting in a role (recorded as done by the system for this OS user)."""
        from dajia.cli_support import os_user, store_session
        from sanctions.people import register as register_person
        from sanctions.workflow import Actor, Role

        user = os_user()
        registrar = Actor(f"cli:{user}", Role.SYSTEM, via=f"cli:{user}")
        with store_session() as session:
            view = register_person(session, registrar, person_id=person_id, name=name, role=role, actor_id=actor_id)
        emit(view.model_dump(mode="json"), as_json)

    @people.command("list")
    def list_(as_json: bool = typer.Option(False, "--json")) -> None:
        """Everyone registered, with their actor ids."""
        from dajia.cli_support import store_session
        from sanctions.people import list_people

        with store_session() as session:
            rows = [p.model_dump(mode="json") for p in list_people(session)]

        def human(result: dict[str, object]) -> None:
            for p in rows:
                ids = ", ".join(f"{r}: {a}" for r, a in p["actor_ids"].items())
                console.print(f"{p['person_id']:<16} {p['name']}  ({ids})")

        emit({"people": rows}, as_json, human)  # type: ignore[arg-type]
