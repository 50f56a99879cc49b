"""``dajia crackdown``: the whole crackdown on a synthetic marketplace, end to end."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import typer

from dajia.output import console, emit, to_json


def _human(summary: Mapping[str, Any]) -> None:
    from rich.table import Table

    console.rule("[bold]dajia crackdown: summary")
    console.print(f"[dim]{summary['simulated']}[/dim]")
    model = summary["model"]
    console.print(f"model {model['name']} v{model['version']}  promotion: {model['promotion']}")
    for title, key in (("verdict-based", "metrics_vs_baselines"), ("ground truth", "true_metrics_vs_baselines")):
        rows = model.get(key) or []
        if not rows:
            continue
        table = Table(title=f"test-period metrics ({title})")
        cols = list(rows[0].keys())
        for c in cols:
            table.add_column(c)
        for r in rows:
            table.add_row(*(f"{v:.3f}" if isinstance(v, float) else str(v) for v in r.values()))
        console.print(table)
    for key in (
        "sweep",
        "cases",
        "step1_close",
        "step2_compensate",
        "step3_publicise",
        "step4_disclose",
        "appeals",
        "ban_evasion",
        "audit",
    ):
        value = dict(summary[key])
        value.pop("outbox", None)
        value.pop("claims_by_status", None)
        console.print(f"[bold]{key}[/bold]: {value}")
    console.rule("where to look")
    for k, v in summary["where_to_look"].items():
        console.print(f"{k}: {v}")


def register(app: typer.Typer) -> None:
    @app.command()
    def crackdown(
        shops: int = typer.Option(20_000, "--shops", min=200, help="size of the synthetic marketplace"),
        seed: int = typer.Option(7, "--seed", min=0, help="seed of the marketplace and the simulation"),
        out: Path | None = typer.Option(
            None, "--out", help="run folder (default: runs/crackdown-<time>, new); an existing run resumes"
        ),
        capacity: int = typer.Option(50, "--capacity", min=1, help="reviewer capacity, cases a day"),
        serve: bool = typer.Option(False, "--serve", help="afterwards keep the API and console running on the run"),
        host: str = typer.Option("127.0.0.1", "--host"),
        port: int = typer.Option(8000, "--port", min=0, max=65535),
        as_json: bool = typer.Option(False, "--json", help="print the summary as JSON"),
    ) -> None:
        """Generate a marketplace, train, promote, sweep, route, sanction (simulated people), publish."""
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        from core.settings import get_settings
        from dajia.crackdown import STEPS, Crackdown, CrackdownConfig, RunFolder, run_settings

        folder = RunFolder(out or Path("runs") / f"crackdown-{datetime.now():%Y%m%d-%H%M%S}")
        config = CrackdownConfig(shops=shops, seed=seed, capacity_per_day=capacity)
        settings = run_settings(get_settings(), folder)
        progress = Progress(
            TextColumn("{task.description:<12}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            console=console if not as_json else None,
            disable=as_json,
            transient=False,
        )
        overall = progress.add_task("crackdown", total=len(STEPS))
        tasks: dict[str, Any] = {}

        def step_progress(step: str) -> Any:
            def update(done: int, total: int) -> None:
                if step not in tasks:
                    tasks[step] = progress.add_task(step, total=total)
                progress.update(tasks[step], completed=done, total=total)

            return update

        def announce(step: str, result: Mapping[str, Any]) -> None:
            progress.advance(overall)
            if not as_json:
                progress.console.print(f"[green]✓[/green] {step} ({result.get('seconds', 0):.1f} s)")

        @contextmanager
        def shown() -> Iterator[None]:
            with progress:
                yield

        if not as_json:
            console.print(f"run folder: {folder.root}")
        with shown():
            run = Crackdown(settings, folder, config, step_progress=step_progress, announce=announce)
            progress.update(overall, completed=len(run.state["done"]))
            summary = run.run()
        emit(summary, as_json, _human)
        if not as_json:
            console.print(f"summary JSON: {folder.root / 'summary.json'}")
        (folder.root / "summary.json").write_text(to_json(summary), encoding="utf-8")
        if serve:
            _serve(settings, folder, host, port)


def _serve(settings: Any, folder: Any, host: str, port: int) -> None:
    import uvicorn

    from serving.app import create_app
    from serving.config import ServeOptions

    console.print(
        f"serving the run: API http://{host}:{port}/docs  console http://{host}:{port}/console  (Ctrl-C stops)"
    )
    uvicorn.run(create_app(settings, ServeOptions(data_dir=folder.data)), host=host, port=port, log_level="warning")
