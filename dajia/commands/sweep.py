"""``dajia sweep``: score every shop of a marketplace with the champion and route suspected shops."""

from __future__ import annotations

from pathlib import Path

import typer

from dajia.errors import DajiaError
from dajia.output import emit


def register(app: typer.Typer) -> None:
    @app.command()
    def sweep(
        data: Path = typer.Option(..., "--data", help="marketplace folder"),
        out: Path = typer.Option(Path("scores.parquet"), "--out", help="Parquet file for the scores"),
        as_of: str | None = typer.Option(None, "--as-of", help="score as of this time (default: the snapshot)"),
        route: bool = typer.Option(True, "--route/--no-route", help="open cases for suspected shops"),
        alias: str = typer.Option("champion", "--alias", help="registry alias of the model to use"),
        chunk_shops: int = typer.Option(50_000, "--chunk-shops", min=1, help="shops scored per chunk"),
        as_json: bool = typer.Option(False, "--json", help="print the result as JSON"),
    ) -> None:
        """Batch-score shops (bounded memory, chunk by chunk) and route the suspected ones into cases."""
        import pandas as pd

        from dajia.settings import get_settings
        from dajia.sweep import load_champion, route_scores, score_shops
        from marketplace.loader import load_marketplace
        from sanctions.store import open_store
        from sanctions.storefront import import_marketplace

        settings = get_settings()
        when = None
        if as_of is not None:
            try:
                when = pd.Timestamp(as_of)
            except ValueError as exc:
                raise DajiaError(f"--as-of {as_of!r}: not a date/time ({exc})") from None
        mp = load_marketplace(data)
        champion = load_champion(settings, alias)
        result = score_shops(mp, champion, out, as_of=when, chunk_shops=chunk_shops)
        if route:
            engine = open_store(settings.resolved_database_url)
            try:
                result["imported"] = import_marketplace(engine, mp).model_dump(exclude={"new_shop_ids"})
            finally:
                engine.dispose()
            result["routed"] = route_scores(settings, out)
        emit(result, as_json)
