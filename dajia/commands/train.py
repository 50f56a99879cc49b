"""``dajia train``: train, evaluate and register a shop-risk model (marketplace or feature table)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import typer

from core.errors import DajiaError
from dajia.commands.options import SNAPSHOT_HELP, check_local_folder, check_streamed_folder
from dajia.output import console, emit


def _human(result: Mapping[str, Any]) -> None:
    console.print(
        f"run [bold]{result['run_id']}[/bold]  model {result['model']} version {result.get('version')}"
        f"{' (champion)' if result.get('champion') else ''}"
    )
    if "feedback" in result:
        _feedback(result["feedback"])
    for section in ("test_metrics", "comparison", "true_comparison"):
        if section not in result:
            continue
        value = result[section]
        console.print(f"[bold]{section}[/bold]")
        if isinstance(value, Mapping):
            for k, v in value.items():
                console.print(f"  {k}: {v:.4f}" if isinstance(v, float) else f"  {k}: {v}")
        else:
            for row in value:
                console.print(
                    "  " + "  ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items())
                )


def _feedback(report: Mapping[str, Any]) -> None:
    def counts(c: Mapping[str, int]) -> str:
        return f"{c['all']}" + "".join(f", {k} {v}" for k, v in c.items() if k != "all")

    left = report["left_out"]
    console.print(
        f"feedback: {report['read']['all']:,} reviewer decisions read from the sanction store, "
        f"{report['added']['all']:,} added as labels (snapshot {report['snapshot_at']})",
        highlight=False,
    )
    console.print(f"  read: {counts(report['read'])}")
    sim = "included" if report["include_simulated"] else "left out (--feedback-include-simulated uses them)"
    console.print(f"  simulated: {counts(report['simulated'])}: {sim}")
    console.print(f"  added: {counts(report['added'])}; outcomes {dict(report['added_by_outcome'])}")
    console.print(
        f"  left out: unknown shop {left['unknown_shop']}, decided after the snapshot {left['after_snapshot']}, "
        f"already present {left['already_present']}"
    )
    if "labelled_examples" in report:
        console.print(f"  labelled examples: {dict(report['labelled_examples'])}")


def register(app: typer.Typer) -> None:
    @app.command()
    def train(
        data: str | None = typer.Option(
            None, "--data", help="marketplace folder (contract tables): local path or fsspec URL (s3://...)"
        ),
        table: Path | None = typer.Option(None, "--table", help="ready feature table (Parquet/CSV)"),
        label: str | None = typer.Option(None, "--label", help="label column of --table (0/1)"),
        time: str | None = typer.Option(None, "--time", help="time column of --table: split by time"),
        seed: int = typer.Option(0, "--seed"),
        capacity: int = typer.Option(50, "--capacity", help="reviewer capacity, cases a day"),
        k: int = typer.Option(100, "--k", help="--table: precision@k cut"),
        population_sample: int = typer.Option(
            50_000, "--population-sample", help="--data: unlabelled shops kept per validation/test date"
        ),
        feedback: bool = typer.Option(
            False,
            "--feedback",
            help="--data: add reviewer decisions, appeal outcomes and audit-sample findings from the store as labels",
        ),
        feedback_include_simulated: bool = typer.Option(
            False, "--feedback-include-simulated", help="--feedback: also use the demo's simulated decisions"
        ),
        no_register: bool = typer.Option(False, "--no-register", help="log the run but do not register"),
        scheduler: str | None = typer.Option(
            None, "--scheduler", help="--data: Dask scheduler address (default: DASK_SCHEDULER_ADDRESS; none: local)"
        ),
        snapshot_at: str | None = typer.Option(None, "--snapshot-at", help=f"--data: {SNAPSHOT_HELP}"),
        partitions: str | None = typer.Option(
            None, "--partitions", help="folder for the shared partitioned copies (default: <data>/_partitions)"
        ),
        partition_shops: int = typer.Option(
            50_000, "--partition-shops", min=1, help="shops per partition of the split marketplace (memory per task)"
        ),
        as_json: bool = typer.Option(False, "--json", help="print the result as JSON"),
        verbose: bool = typer.Option(False, "--verbose", help="also show MLflow's own log lines"),
    ) -> None:
        """Train a model; log it to MLflow and register it (first version champion, later challenger)."""
        from dajia.output import quiet_third_party

        quiet_third_party(verbose)
        from core.settings import get_settings

        settings = get_settings()
        if (data is None) == (table is None):
            raise DajiaError("give exactly one of --data DIR or --table FILE")
        if table is not None and snapshot_at is not None:
            raise DajiaError("--snapshot-at goes with --data (a marketplace folder), not --table")
        if table is not None:
            if not label:
                raise DajiaError("--table needs --label COL")
            from training.table_run import run_table

            result = run_table(settings, table, label, time, seed=seed, k=k, register=not no_register)
        else:
            assert data is not None
            from training.examples import ExamplePlan
            from training.marketplace_run import run_marketplace

            is_url = "://" in data
            plan = ExamplePlan(seed=seed, population_sample=population_sample)
            from dajia.scaleout.cluster import scheduler_address

            address = scheduler_address(scheduler, settings)
            if address is not None:  # features and boosting on the cluster (docs/scale-out.md)
                if feedback:
                    raise DajiaError("--feedback is not supported with --scheduler yet; train locally")
                check_streamed_folder(data, snapshot_at)  # before any work: Parquet, a snapshot time
                from dajia.scaleout.jobs import train_on_cluster

                result = train_on_cluster(
                    settings,
                    address,
                    data,
                    seed=seed,
                    capacity_per_day=capacity,
                    population_sample=population_sample,
                    register=not no_register,
                    shops_per_partition=partition_shops,
                    partitions=partitions,
                    snapshot_at=snapshot_at,
                )
                emit(result, as_json, _human)
                return
            if is_url:  # an object store without a cluster: read it here, train as locally
                if feedback:
                    raise DajiaError("--feedback reads a local --data folder; copy the marketplace locally first")
                from dajia.scaleout.jobs import train_from_url

                result = train_from_url(
                    settings,
                    data,
                    seed=seed,
                    capacity_per_day=capacity,
                    plan=plan,
                    register=not no_register,
                    snapshot_at=snapshot_at,
                )
                emit(result, as_json, _human)
                return
            check_local_folder(Path(data), snapshot_at)  # before any work: a folder with a snapshot time
            verdicts = None
            if feedback_include_simulated and not feedback:
                raise DajiaError("--feedback-include-simulated needs --feedback")
            if feedback:
                from dajia.db import open_store
                from dajia.feedback import read_feedback

                engine = open_store(settings.resolved_database_url)
                try:
                    verdicts = read_feedback(engine)
                finally:
                    engine.dispose()
            result = run_marketplace(
                settings,
                Path(data),
                seed=seed,
                capacity_per_day=capacity,
                register=not no_register,
                plan=plan,
                feedback=verdicts,
                include_simulated=feedback_include_simulated,
                snapshot_at=snapshot_at,
            )
        emit(result, as_json, _human)
