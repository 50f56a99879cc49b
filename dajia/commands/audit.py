"""``dajia audit …``: recompute the sanction store's hash chain (and check it against a published
checkpoint); sign a checkpoint of its head."""

from __future__ import annotations

from pathlib import Path

import typer

from dajia.output import emit


def register(app: typer.Typer) -> None:
    audit = typer.Typer(help="The append-only, hash-chained audit log.", no_args_is_help=True)
    app.add_typer(audit, name="audit")

    @audit.command("verify")
    def verify(
        checkpoint_file: Path | None = typer.Option(
            None, "--checkpoint", help="a published checkpoint (JSON): the chain must still hold its head"
        ),
        trusted_key: str | None = typer.Option(
            None, "--key", help="the public key (hex) the checkpoint must be signed by"
        ),
        as_json: bool = typer.Option(False, "--json", help="print the result as JSON"),
    ) -> None:
        """Recompute every entry's hash and the rows each entry wrote; exit 2 naming the first entry
        that was changed or deleted (or whose rows were), or that no longer matches the checkpoint."""
        from pydantic import ValidationError

        from core.errors import DajiaError
        from dajia.cli_support import store_session
        from sanctions.audit import verify_chain
        from sanctions.checkpoint import Checkpoint, verify_against

        cp = None
        if checkpoint_file is not None:
            try:
                cp = Checkpoint.model_validate_json(checkpoint_file.read_text(encoding="utf-8"))
            except (OSError, ValidationError) as exc:
                raise DajiaError(f"--checkpoint {checkpoint_file}: not a checkpoint ({exc})") from exc
        with store_session() as session:
            report = verify_chain(session) if cp is None else verify_against(session, cp, trusted_key)
        if not report.ok:
            if as_json:
                emit(report.as_dict(), True)
            where = f" at entry {report.first_bad_seq}" if report.first_bad_seq is not None else ""
            raise DajiaError(f"audit chain broken{where}: {report.problem}")
        emit(report.as_dict(), as_json)

    @audit.command("checkpoint")
    def checkpoint_(
        out: Path | None = typer.Option(None, "--out", help="also write the checkpoint (JSON) here"),
        as_json: bool = typer.Option(False, "--json"),
    ) -> None:
        """Sign a checkpoint of the chain's head now (campaign announcements carry one each)."""
        from core import atomic
        from core.db import unit_of_work
        from dajia.cli_support import store_session
        from sanctions.checkpoint import Signer, checkpoint
        from sanctions.tx import utcnow

        with store_session() as session, unit_of_work(session):
            now = utcnow()
            cp = checkpoint(session, Signer.resolve(session, now), now)
        if out is not None:
            atomic.write_text(out, cp.model_dump_json(indent=2) + "\n")
        emit(cp.model_dump(mode="json"), as_json)
