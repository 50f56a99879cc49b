"""``dajia validate --data DIR``: load a marketplace folder through the data contract and summarise it.

Bad data raises ``DataContractError``; the CLI turns it into exit code 2 and one readable line.
``--write-parquet NEWDIR`` also writes the validated tables as Parquet with a manifest: the sweep and
the scale-out jobs stream Parquet only, so a CSV export is converted once this way.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import typer

from core.errors import DajiaError
from dajia.output import console, emit


def _human(result: Mapping[str, Any]) -> None:
    console.print(
        f"[bold]{result['data']}[/bold]: valid marketplace, snapshot at {result['snapshot_at']}", soft_wrap=True
    )
    for name, rows in result["rows"].items():
        console.print(f"  {name:<16} {rows:>12,} rows")
    console.print(f"  {'total':<16} {result['total_rows']:>12,} rows (checked in {result['seconds']:.1f} s)")
    if result.get("written"):
        console.print(f"Parquet copy with manifest.json: {result['written']}", soft_wrap=True, highlight=False)


def register(app: typer.Typer) -> None:
    @app.command()
    def validate(
        data: Path = typer.Option(..., "--data", help="marketplace folder: <table>.parquet or <table>.csv per table"),
        snapshot_at: str | None = typer.Option(
            None,
            "--snapshot-at",
            help="snapshot time (ISO-8601, or 'now'); default: manifest.json's (an error without one)",
        ),
        write_parquet: Path | None = typer.Option(
            None, "--write-parquet", help="also write the validated tables as Parquet (+ manifest) into this new folder"
        ),
        as_json: bool = typer.Option(False, "--json", help="print the result as JSON"),
    ) -> None:
        """Check a marketplace folder against the data contract; print row counts and the snapshot time."""
        from marketplace.loader import load_marketplace

        started = time.perf_counter()
        if (
            write_parquet is not None
            and write_parquet.exists()
            and (not write_parquet.is_dir() or any(write_parquet.iterdir()))
        ):
            raise DajiaError(f"--write-parquet {write_parquet}: the folder is not empty; choose a new one")
        mp = load_marketplace(data, snapshot_at=snapshot_at)
        rows = {name: len(mp.table(name)) for name in mp.table_names()}
        if write_parquet is not None:
            from marketplace.io import write_manifest, write_table

            write_parquet.mkdir(parents=True, exist_ok=True)
            for name in mp.table_names():
                write_table(mp.table(name), write_parquet, name)
            write_manifest(write_parquet, mp.snapshot_at, converted_from=str(data.resolve()))  # last: marks it whole
        emit(
            {
                "data": str(data),
                "valid": True,
                "snapshot_at": mp.snapshot_at.isoformat(),
                "rows": rows,
                "total_rows": sum(rows.values()),
                "seconds": round(time.perf_counter() - started, 3),
                "written": str(write_parquet) if write_parquet is not None else None,
            },
            as_json,
            _human,
        )
