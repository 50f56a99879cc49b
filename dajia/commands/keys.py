"""``dajia keys create|list|revoke|role``: API keys for the HTTP service (the secret is printed once).

Every key is issued to a registered person (``--person``; ``dajia people add`` registers one); issuing,
revoking and re-roling are audited, as done by the system for this OS user (``cli:<user>``)."""

from __future__ import annotations

from typing import Any

import typer

from dajia.output import console, emit


def _store() -> Any:
    from core.settings import get_settings
    from dajia.db import open_store
    from serving.auth import ApiKeyStore

    return ApiKeyStore(open_store(get_settings().resolved_database_url))


def _by() -> Any:
    from dajia.cli_support import os_user
    from sanctions.workflow import Actor, Role

    user = os_user()
    return Actor(f"cli:{user}", Role.SYSTEM, via=f"cli:{user}")


def register(app: typer.Typer) -> None:
    keys = typer.Typer(help="API keys for the HTTP service (roles: scorer, reviewer, admin).", no_args_is_help=True)
    app.add_typer(keys, name="keys")

    @keys.command("create")
    def create(
        role: str = typer.Option(..., "--role", help="scorer, reviewer or admin"),
        name: str = typer.Option(..., "--name", help="what the key is for (e.g. 'alice laptop')"),
        person: str = typer.Option(..., "--person", help="the registered person the key is issued to"),
        secret_only: bool = typer.Option(
            False, "--secret-only", help="print only the secret (for KEY=$(dajia keys create ... --secret-only))"
        ),
        as_json: bool = typer.Option(False, "--json", help="print as JSON"),
    ) -> None:
        """Create a key; its secret is shown once and only its sha256 is stored."""
        key, secret = _store().create(role, name, person, by=_by())
        if secret_only and not as_json:
            print(secret)
            return
        result = {
            "key_id": key.key_id,
            "name": key.name,
            "role": key.role.value,
            "person_id": key.person_id,
            "actor_id": key.actor_id,
            "secret": secret,
        }

        def human(r: Any) -> None:
            console.print(
                f"key {r['key_id']} ({r['role']}, {r['name']}) issued to {r['person_id']}. Its secret, shown only now:"
            )
            console.print(r["secret"], highlight=False, soft_wrap=True)

        emit(result, as_json, human)

    @keys.command("list")
    def list_keys(as_json: bool = typer.Option(False, "--json", help="print as JSON")) -> None:
        """List keys (never their secrets)."""
        rows = [
            {
                "key_id": k.key_id,
                "name": k.name,
                "role": k.role.value,
                "person_id": k.person_id,
                "person_name": k.person_name,
                "created_at": k.created_at,
                "revoked_at": k.revoked_at,
            }
            for k in _store().list()
        ]

        def human(r: Any) -> None:
            for k in r["keys"]:
                state = f"revoked {k['revoked_at']:%Y-%m-%d %H:%M}" if k["revoked_at"] else "active"
                who = f"{k['person_name']} ({k['person_id']})"
                console.print(f"{k['key_id']}  {k['role']:<8}  {state:<24}  {who}  {k['name']}", highlight=False)

        emit({"keys": rows}, as_json, human)

    @keys.command("revoke")
    def revoke(
        key_id: str = typer.Argument(..., help="the key's id"),
        as_json: bool = typer.Option(False, "--json", help="print as JSON"),
    ) -> None:
        """Revoke a key (the service refuses it within a few seconds)."""
        key = _store().revoke(key_id, by=_by())
        emit({"key_id": key.key_id, "revoked_at": key.revoked_at}, as_json)

    @keys.command("role")
    def set_role(
        key_id: str = typer.Argument(..., help="the key's id"),
        role: str = typer.Option(..., "--role", help="scorer, reviewer or admin"),
        as_json: bool = typer.Option(False, "--json", help="print as JSON"),
    ) -> None:
        """Give a key another role (its console sessions end at once; the API sees it within seconds)."""
        key = _store().set_role(key_id, role, by=_by())
        emit({"key_id": key.key_id, "role": key.role.value}, as_json)
