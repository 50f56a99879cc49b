"""``dajia sweep``: score every shop of a marketplace with the champion and route suspected shops."""

from __future__ import annotations

import typer

from core.errors import DajiaError
from dajia.output import emit


def register(app: typer.Typer) -> None:
    @app.command()
    def sweep(
        data: str = typer.Option(..., "--data", help="marketplace folder (local or any fsspec URL, e.g. s3://...)"),
        out: str = typer.Option(
            "scores.parquet", "--out", help="scores: one Parquet file (local), a folder of part files (cluster)"
        ),
        as_of: str | None = typer.Option(None, "--as-of", help="score as of this time (default: the snapshot)"),
        route: bool = typer.Option(True, "--route/--no-route", help="open cases for suspected shops"),
        alias: str = typer.Option("champion", "--alias", help="registry alias of the model to use"),
        chunk_shops: int = typer.Option(50_000, "--chunk-shops", min=1, help="shops scored per chunk"),
        scheduler: str | None = typer.Option(
            None, "--scheduler", help="Dask scheduler address (default: DASK_SCHEDULER_ADDRESS; none: run locally)"
        ),
        as_json: bool = typer.Option(False, "--json", help="print the result as JSON"),
    ) -> None:
        """Batch-score shops partition by partition (bounded memory) and route the suspected ones into cases."""
        import pandas as pd

        from core.settings import get_settings
        from dajia.scaleout import jobs

        settings = get_settings()
        when = None
        if as_of is not None:
            try:
                when = pd.Timestamp(as_of)
            except ValueError as exc:
                raise DajiaError(f"--as-of {as_of!r}: not a date/time ({exc})") from None
        result = jobs.sweep(
            settings, data, out, scheduler=scheduler, as_of=when, route=route, alias=alias, chunk_shops=chunk_shops
        )
        emit(result, as_json)
