"""``dajia predictions prune``: retention of the prediction log (archive to Parquet, then delete by age)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from dajia.output import emit


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="The service's prediction log.", no_args_is_help=True)
    app.add_typer(group, name="predictions")

    @group.command("prune")
    def prune(
        older_than: float | None = typer.Option(
            None,
            "--older-than",
            help="days; default: settings.prediction_retention_days (DAJIA_PREDICTION_RETENTION_DAYS)",
        ),
        archive: Path | None = typer.Option(None, "--archive", help="folder for the Parquet archive"),
        no_archive: bool = typer.Option(False, "--no-archive", help="delete without archiving"),
        as_json: bool = typer.Option(False, "--json", help="print as JSON"),
    ) -> None:
        """Archive the log's rows older than the cut-off to Parquet, then delete them (rerun-safe)."""
        from core.errors import DajiaError
        from core.settings import get_settings
        from dajia.db import open_store
        from serving.retention import prune_predictions

        settings = get_settings()
        days = older_than if older_than is not None else settings.prediction_retention_days
        if days is None:
            raise DajiaError("give --older-than DAYS (or set DAJIA_PREDICTION_RETENTION_DAYS)")
        if (archive is None) == (not no_archive):
            raise DajiaError("give --archive DIR, or --no-archive to delete without keeping the rows")
        engine = open_store(settings.resolved_database_url)
        try:
            report = prune_predictions(engine, days, archive)
        finally:
            engine.dispose()
        result: dict[str, Any] = {
            "cutoff": report.cutoff.isoformat(),
            "archived": report.archived,
            "deleted": report.deleted,
            "files": report.files,
        }
        emit(result, as_json)
