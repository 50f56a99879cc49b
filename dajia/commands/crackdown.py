"""``dajia crackdown``: the whole crackdown on a synthetic marketplace, end to end."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import typer

from dajia.output import command, console, emit, num, plural, quiet_third_party, to_json, yuan

#: the metrics tables' columns: key in the summary -> header (short enough for 80 columns)
METRIC_COLUMNS = {
    "pr_auc": "PR-AUC",
    "roc_auc": "ROC-AUC",
    "precision_at_k": "prec@k",
    "recall_at_90_precision": "rec@90%P",
    "brier": "Brier",
    "routed_with_verdict": "routed",
}


def _metrics_table(title: str, rows: list[Mapping[str, Any]]) -> Any:
    """One row per scorer, each value under its own column's name (a scorer without a metric shows -)."""
    from rich import box
    from rich.table import Table

    cols = [c for c in METRIC_COLUMNS if any(c in r for r in rows)]
    table = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left", pad_edge=False)
    table.add_column("scorer")
    for c in cols:
        table.add_column(METRIC_COLUMNS[c], justify="right")
    for r in rows:
        cells = [str(r.get("scorer", "?"))]
        for c in cols:
            v = r.get(c)
            cells.append("-" if v is None else num(v) if c == "routed_with_verdict" else f"{float(v):.3f}")
        table.add_row(*cells)
    return table


def _promotion(model: Mapping[str, Any]) -> str:
    p = model.get("promotion") or {}
    v = model.get("version")
    if p.get("note") == "already champion":
        return f"v{v} is the champion: the registry's first version, champion since it was registered"
    if p.get("promoted"):
        return f"v{v} promoted to champion: it passed the gate on the frozen evaluation set"
    return f"v{v} stays challenger: it did not pass the promotion gate"


def _sections(summary: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The steps in words: (label, sentence)."""
    sw, cs = summary["sweep"], summary["cases"]
    s1, s2, s3 = summary["step1_close"], summary["step2_compensate"], summary["step3_publicise"]
    s4, ap, ev, au = summary["step4_disclose"], summary["appeals"], summary["ban_evasion"], summary["audit"]
    tiers = sw.get("tiers") or {}
    origins = cs.get("by_origin") or {}
    draft = s3.get("draft_campaign_id")
    return [
        (
            "sweep",
            f"{num(sw.get('shops'))} shops scored as of {str(sw.get('as_of', '?'))[:10]}: "
            f"{num(tiers.get('suspected', 0))} suspected, {num(tiers.get('watch', 0))} watch, "
            f"{num(tiers.get('low', 0))} low",
        ),
        (
            "cases",
            f"{plural(cs.get('total'), 'case')} opened: {num(origins.get('score', 0))} for suspected shops, "
            f"{num(origins.get('ban_evasion', 0))} for ban evasion",
        ),
        (
            "1 close",
            f"{plural(s1['shops_closed'], 'shop')} closed: {num(s1['closed_on_proof'])} on proof (test buy), "
            f"{num(s1['escalated_from_ban'])} escalated from a ban",
        ),
        (
            "2 compensate",
            f"{plural(s2['shops_banned'], 'shop')} banned until every affected buyer confirms compensation: "
            f"{num(s2['bans_lifted'])} bans lifted, {num(s2['still_banned'])} still banned, "
            f"{num(s2['refusals'])} sellers refused. Compensation {yuan(s2['compensation_owed'])} owed, "
            f"{yuan(s2['compensation_paid'])} paid, {yuan(s2['compensation_confirmed'])} confirmed by buyers",
        ),
        (
            "3 publicise",
            f"campaign {s3.get('campaign_id')} published: {plural(s3.get('cases_announced'), 'case')} announced, "
            f"{plural(s3.get('warnings_sent'), 'seller')} warned"
            + (f"; campaign {draft} drafted, awaiting an admin's approval" if draft else ""),
        ),
        (
            "4 disclose",
            f"{plural(s4['entries_disclosed'], 'closed shop')} disclosed (personal fields masked, policy "
            f"{s4.get('policy')}), {num(s4['entries_withdrawn'])} withdrawn",
        ),
        (
            "appeals",
            f"{plural(ap.get('appeals', 0), 'appeal')}: {num(ap.get('reversed', 0))} upheld (measure reversed), "
            f"{num(ap.get('rejected', 0))} rejected, {num(ap.get('pending', 0))} pending",
        ),
        (
            "ban evasion",
            f"{plural(ev['cases_opened'], 'new shop')} linked to closed ones: {num(ev['shops_closed'])} closed",
        ),
        (
            "audit",
            f"hash chain verified: {plural(au.get('entries'), 'entry', 'entries')}, unbroken"
            if au.get("ok")
            else f"hash chain BROKEN at entry {au.get('first_bad_seq')}: {au.get('problem')}",
        ),
    ]


def _human(summary: Mapping[str, Any]) -> None:
    from rich.table import Table

    console.rule("[bold]dajia crackdown: summary")
    console.print(f"[dim]{summary['simulated']}[/dim]")
    model = summary["model"]
    console.print(f"model {model['name']} {_promotion(model)}", highlight=False)
    for title, key in (
        ("test period against reviewer verdicts", "metrics_vs_baselines"),
        ("test period against the ground truth", "true_metrics_vs_baselines"),
    ):
        rows = model.get(key) or []
        if rows:
            console.print(_metrics_table(title, rows))
    steps = Table.grid(padding=(0, 2))
    steps.add_column(style="bold", no_wrap=True)
    steps.add_column()
    for label, text in _sections(summary):
        steps.add_row(label, text)
    console.print(steps, highlight=False)
    _where(summary)


def _where(summary: Mapping[str, Any]) -> None:
    """Where the results are and what to do next: every command a whole line, to copy as it is."""
    where, queue = summary["where_to_look"], summary.get("queue") or {}
    console.rule("where to look")
    console.print(f"announcement   {where['announcement']}", soft_wrap=True, highlight=False)
    console.print(f"closed shops   {where['disclosure_list']}", soft_wrap=True, highlight=False)
    console.print(f"summary        {where['summary']}", soft_wrap=True, highlight=False)
    if where.get("mlflow_ui"):
        console.print("MLflow (runs, metrics, the registry): run this, then open http://127.0.0.1:5000")
        command(where["mlflow_ui"])
    elif where.get("mlflow_server"):
        console.print(f"MLflow: the tracking server {where['mlflow_server']}", soft_wrap=True, highlight=False)
    console.rule("next: the work left for you")
    console.print(
        f"The simulated reviewers stopped part-way: {plural(queue.get('open_cases', 0), 'open case')}, "
        f"{plural(queue.get('appeals_pending', 0), 'pending appeal')} and "
        f"{plural(queue.get('campaign_drafts', 0), 'campaign draft')} awaiting approval are in the "
        "console's queue. In a shell in this folder, run each line as it is:",
        highlight=False,
    )
    dajia = where["dajia"]
    command(where["env"])
    command(f"KEY=$({dajia} keys create --role admin --name newcomer --secret-only)")
    command(f"{dajia} serve --data $DAJIA_HOME/data --port 8000 &")
    command("curl -s --retry 120 --retry-connrefused --retry-delay 1 localhost:8000/readyz")
    command("echo $KEY")
    console.print(f"Open {where['console']} and sign in with that key (it is an admin's: queue and campaigns).")
    shop = queue.get("suspected_shop")
    if shop:
        console.print(
            f"Score shop {shop['shop_id']}, suspected in this run (its case {shop['case_id']} is open):",
            highlight=False,
        )
        body = '{"shop_ids": ["' + str(shop["shop_id"]) + '"], "route": true}'
        command(
            f'curl -s -X POST localhost:8000/v1/scores -H "X-API-Key: $KEY" '
            f"-H 'content-type: application/json' -d '{body}'"
        )
    console.print("Public pages (announcement, closed shops, how buyers are compensated), API reference:")
    command(where["public"])
    command(where["api_docs"])
    console.print("Stop the service with: kill %1")


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
        verbose: bool = typer.Option(False, "--verbose", help="also show MLflow's own log lines"),
    ) -> None:
        """Generate a marketplace, train, promote, sweep, route, sanction (simulated people), publish."""
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        from core.settings import get_settings
        from dajia.crackdown import STEPS, Crackdown, CrackdownConfig, RunFolder, run_settings

        quiet_third_party(verbose)
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
            console.print(f"run folder: {folder.root}", soft_wrap=True, highlight=False)
        with shown():
            run = Crackdown(settings, folder, config, step_progress=step_progress, announce=announce)
            progress.update(overall, completed=len(run.state["done"]))
            summary = run.run()
        emit(summary, as_json, _human)
        (folder.root / "summary.json").write_text(to_json(summary), encoding="utf-8")
        if serve:
            _serve(settings, folder, host, port)


def _serve(settings: Any, folder: Any, host: str, port: int) -> None:

    from dajia.commands.serve import run_server
    from dajia.db import migrate
    from serving.app import create_app
    from serving.config import ServeOptions

    migrate(settings.resolved_database_url)
    run_server(create_app(settings, ServeOptions(data_dir=folder.data)), host=host, port=port)
