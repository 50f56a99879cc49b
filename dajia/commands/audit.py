"""``dajia audit verify``: recompute the sanction store's hash chain; non-zero exit on the first bad entry."""

from __future__ import annotations

import typer

from dajia.output import emit


def register(app: typer.Typer) -> None:
    audit = typer.Typer(help="The append-only, hash-chained audit log.", no_args_is_help=True)
    app.add_typer(audit, name="audit")

    @audit.command("verify")
    def verify(as_json: bool = typer.Option(False, "--json", help="print the result as JSON")) -> None:
        """Recompute every entry's hash; exit 2 naming the first entry that was changed or deleted."""
        from core.errors import DajiaError
        from dajia.cli_support import store_session
        from sanctions.audit import verify_chain

        with store_session() as session:
            report = verify_chain(session)
        if not report.ok:
            if as_json:
                emit(report.as_dict(), True)
            where = f" at entry {report.first_bad_seq}" if report.first_bad_seq is not None else ""
            raise DajiaError(f"audit chain broken{where}: {report.problem}")
        emit(report.as_dict(), as_json)
