"""``dajia sweep``: score every shop of a marketplace with the champion and route suspected shops."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import typer

from core.errors import DajiaError
from dajia.commands.options import SNAPSHOT_HELP, check_streamed_folder
from dajia.output import console, emit, num


def _ids(values: list[Any], shown: int = 5) -> str:
    """A list of ids for people: its length and the first few (``--json`` has them all)."""
    if not values:
        return "0"
    head = ", ".join(str(v) for v in values[:shown])
    return f"{num(len(values))} ({head}{', …' if len(values) > shown else ''})"


def _human(result: Mapping[str, Any]) -> None:
    tiers = result.get("tiers") or {}
    console.print(
        f"scored {num(result.get('shops'))} shops as of {str(result.get('as_of'))[:19]} with "
        f"{result.get('model')} v{result.get('version')}: {num(tiers.get('suspected', 0))} suspected, "
        f"{num(tiers.get('watch', 0))} watch, {num(tiers.get('low', 0))} low "
        f"({result.get('mode')}, {num(result.get('partitions'))} partitions, {result.get('seconds')} s)",
        highlight=False,
    )
    console.print(f"scores: {result.get('scores')}", soft_wrap=True, highlight=False)
    drift = result.get("drift") or {}
    if "score_psi" in drift:
        console.print(
            f"drift against the training population ({str(drift.get('reference_as_of'))[:10]}, "
            f"{num(drift.get('sample_ref'))} shops) on {num(drift.get('sample_now'))} shops: score PSI "
            f"{drift['score_psi']:.3f} ({drift.get('score_band')}); "
            + ("logged to the drift history" if drift.get("logged") else "this sweep was logged already"),
            highlight=False,
        )
    routed = result.get("routed")
    if routed:
        console.print(
            f"cases: {_ids(routed.get('opened_case_ids') or [])} opened, {num(routed.get('rescored', 0))} rescored, "
            f"{num(routed.get('unchanged', 0))} unchanged; skipped: {num(routed.get('skipped_closed', 0))} closed "
            f"shops, {num(routed.get('skipped_in_appeal', 0))} in appeal; unknown shops: "
            f"{_ids(routed.get('unknown_shops') or [])}",
            highlight=False,
        )
        console.print("the open cases: dajia cases list --status open (--json prints every id)", highlight=False)


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
        snapshot_at: str | None = typer.Option(None, "--snapshot-at", help=SNAPSHOT_HELP),
        partitions: str | None = typer.Option(
            None, "--partitions", help="folder for the shared partitioned copies (default: <data>/_partitions)"
        ),
        partition_shops: int = typer.Option(
            50_000, "--partition-shops", min=1, help="shops per partition of the split marketplace (memory per task)"
        ),
        as_json: bool = typer.Option(False, "--json", help="print the result as JSON"),
        verbose: bool = typer.Option(False, "--verbose", help="also show MLflow's own log lines"),
    ) -> None:
        """Batch-score shops partition by partition (bounded memory) and route the suspected ones into cases."""
        from dajia.output import quiet_third_party

        quiet_third_party(verbose)
        import pandas as pd

        from core.settings import get_settings
        from dajia.scaleout import jobs

        settings = get_settings()
        check_streamed_folder(data, snapshot_at)  # before the model loads: Parquet tables, a snapshot time
        when = None
        if as_of is not None:
            try:
                when = pd.Timestamp(as_of)
            except ValueError as exc:
                raise DajiaError(f"--as-of {as_of!r}: not a date/time ({exc})") from None
        result = jobs.sweep(
            settings,
            data,
            out,
            scheduler=scheduler,
            as_of=when,
            route=route,
            alias=alias,
            chunk_shops=chunk_shops,
            shops_per_partition=partition_shops,
            partitions=partitions,
            snapshot_at=snapshot_at,
        )
        emit(result, as_json, _human)
