"""``dajia validate --data DIR``: load a marketplace folder through the data contract and summarise it.

Bad data raises ``DataContractError``; the CLI turns it into exit code 2 and one readable line.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import typer

from dajia.output import console, emit


def _human(result: Mapping[str, Any]) -> None:
    console.print(
        f"[bold]{result['data']}[/bold]: valid marketplace, snapshot at {result['snapshot_at']}", soft_wrap=True
    )
    for name, rows in result["rows"].items():
        console.print(f"  {name:<16} {rows:>12,} rows")
    console.print(f"  {'total':<16} {result['total_rows']:>12,} rows (checked in {result['seconds']:.1f} s)")


def register(app: typer.Typer) -> None:
    @app.command()
    def validate(
        data: Path = typer.Option(..., "--data", help="marketplace folder: <table>.parquet or <table>.csv per table"),
        snapshot_at: str | None = typer.Option(
            None, "--snapshot-at", help="snapshot time (ISO-8601); default: manifest.json's, else now"
        ),
        as_json: bool = typer.Option(False, "--json", help="print the result as JSON"),
    ) -> None:
        """Check a marketplace folder against the data contract; print row counts and the snapshot time."""
        from marketplace.loader import load_marketplace

        started = time.perf_counter()
        mp = load_marketplace(data, snapshot_at=snapshot_at)
        rows = {name: len(mp.table(name)) for name in mp.table_names()}
        emit(
            {
                "data": str(data),
                "valid": True,
                "snapshot_at": mp.snapshot_at.isoformat(),
                "rows": rows,
                "total_rows": sum(rows.values()),
                "seconds": round(time.perf_counter() - started, 3),
            },
            as_json,
            _human,
        )
