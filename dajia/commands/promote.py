"""``dajia promote``: move the ``champion`` alias to a version that beats the champion (or refuse)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import typer

from dajia.output import console, emit


def _human(result: Mapping[str, Any]) -> None:
    state = "promoted" if result.get("promoted") else "not promoted"
    forced = " (FORCED: " + str(result.get("reason")) + ")" if result.get("forced") else ""
    console.print(
        f"{result['model']} version {result['version']}: {state}{forced}; "
        f"previous champion {result.get('previous_champion')}"
    )
    for row in result.get("comparison", []):
        c, p = row["candidate"], row["champion"]
        console.print(
            f"  {row['metric']:<24} candidate {c if c is None else f'{c:.4f}'}  "
            f"champion {p if p is None else f'{p:.4f}'}"
        )


def register(app: typer.Typer) -> None:
    @app.command()
    def promote(
        version: str | None = typer.Option(None, "--version", help="registered version (default: challenger)"),
        force: bool = typer.Option(False, "--force", help="skip the gate (needs --reason)"),
        reason: str | None = typer.Option(None, "--reason", help="why the gate is skipped (recorded)"),
        as_json: bool = typer.Option(False, "--json", help="print the result as JSON"),
    ) -> None:
        """Make a version champion if it beats the champion on the frozen evaluation set; exit 2 if not."""
        from core.settings import get_settings
        from training.promotion import promote as do_promote
        from training.tracking import setup_mlflow

        settings = get_settings()
        client = setup_mlflow(settings)
        emit(do_promote(client, settings, version, force=force, reason=reason), as_json, _human)
