"""``dajia generate``: write a synthetic marketplace (contract tables, manifest, ground truth)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import typer

from dajia.output import console, emit, err_console
from marketplace.synth.config import GeneratorConfig


def _default(knob: str) -> Any:
    """The config's own default, so the CLI and the Python API never disagree."""
    return GeneratorConfig.__dataclass_fields__[knob].default


def _human(result: Mapping[str, Any]) -> None:
    console.print(
        f"[bold]synthetic marketplace[/bold] {result['shops']:,} shops, seed {result['seed']} -> {result['out']} "
        f"({result['seconds']} s)"
    )
    console.print(f"snapshot {result['snapshot_at']}, crackdown {result['crackdown_at']}")
    console.print("[bold]rows per table[/bold]")
    for table, n in result["counts"].items():
        console.print(f"  {table:<15} {n:>12,}")
    console.print("[bold]shops per archetype[/bold]")
    for arch, n in result["archetypes"].items():
        console.print(f"  {arch:<24} {n:>10,}")
    console.print(
        f"counterfeit rate {result['counterfeit_rate']:.2%} ({result['counterfeiters']:,} shops); "
        f"verdicts {result['verdicts']}; counterfeiters with a verdict {result['verdict_coverage']:.1%}; "
        f"pending {result['pending_verdicts']:,}; closed {result['closed_shops']:,}; "
        f"left on their own {result['left_shops']:,}; "
        f"re-registered {result['reregistered_shops']:,}"
    )


def register(app: typer.Typer) -> None:
    @app.command()
    def generate(
        out: Path = typer.Option(..., "--out", help="folder to write the tables into"),
        shops: int = typer.Option(_default("shops"), "--shops", help="number of shops"),
        seed: int = typer.Option(
            _default("seed"), "--seed", help="random seed: same seed and knobs give identical tables"
        ),
        counterfeit_rate: float = typer.Option(
            _default("counterfeit_rate"), "--counterfeit-rate", help="share of shops selling fakes"
        ),
        camouflage_share: float = typer.Option(
            _default("camouflage_share"), "--camouflage-share", help="share of counterfeiters whose titles hide it"
        ),
        label_coverage: float = typer.Option(
            _default("label_coverage"),
            "--label-coverage",
            help="share of counterfeiters that get investigated (verdicts)",
        ),
        label_delay_days: float = typer.Option(
            _default("label_delay_days"), "--label-delay-days", help="mean days from the judged sale to the verdict"
        ),
        history_months: int = typer.Option(
            _default("history_months"), "--months", help="months of history before the snapshot"
        ),
        snapshot_at: str = typer.Option(_default("snapshot_at"), "--snapshot", help="snapshot time: no event after it"),
        crackdown_at: str | None = typer.Option(
            None, "--crackdown", help="crackdown date (default: 120 days before the snapshot)"
        ),
        reregister_rate: float = typer.Option(
            _default("reregister_rate"), "--reregister-rate", help="share of closed shopkeepers who open a new shop"
        ),
        as_json: bool = typer.Option(False, "--json", help="print the summary as JSON"),
    ) -> None:
        """Generate a synthetic marketplace with ground truth (see docs/generator.md)."""
        from marketplace.generator import generate as run

        config = GeneratorConfig(
            shops=shops,
            seed=seed,
            counterfeit_rate=counterfeit_rate,
            camouflage_share=camouflage_share,
            label_coverage=label_coverage,
            label_delay_days=label_delay_days,
            history_months=history_months,
            snapshot_at=snapshot_at,
            crackdown_at=crackdown_at,
            reregister_rate=reregister_rate,
        )

        def progress(done: int, total: int) -> None:
            if total > config.chunk_shops:
                err_console.print(f"generated {done:,} / {total:,} shops", highlight=False)

        emit(run(config, out, progress), as_json, _human)
