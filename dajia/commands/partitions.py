"""``dajia partitions clean``: remove the partitioned copies of a marketplace that are no longer current."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import typer

from dajia.output import console, emit, num


def _human(result: Mapping[str, Any]) -> None:
    removed = result["removed"]
    console.print(
        f"partitions under {result['root']}: removed {len(removed)} ({num(result['bytes_freed'])} bytes), "
        f"kept {len(result['kept'])} of the current content {result['fingerprint']}",
        soft_wrap=True,
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    partitions = typer.Typer(help="The shared shop-partitioned copies of marketplaces (docs/scale-out.md).")
    app.add_typer(partitions, name="partitions")

    @partitions.command("clean")
    def clean(
        data: str = typer.Option(..., "--data", help="marketplace folder (local path or fsspec URL)"),
        root: str | None = typer.Option(
            None, "--partitions", help="folder of the partitioned copies (default: <data>/_partitions)"
        ),
        everything: bool = typer.Option(False, "--all", help="also remove the copy of the current content"),
        as_json: bool = typer.Option(False, "--json", help="print the result as JSON"),
    ) -> None:
        """Remove partitioned copies made from older content of --data (all of them with --all)."""
        from dajia.scaleout.partition import clean_partitions

        emit(clean_partitions(data, root, everything=everything), as_json, _human)
