"""``dajia evaluate``: metrics of a registered version (or alias) on a frozen evaluation set."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import typer

from core.errors import DajiaError
from dajia.output import console, emit


def _human(result: Mapping[str, Any]) -> None:
    console.print(
        f"{result['model']} version {result['version']} on the frozen evaluation set of run {result['frozen_eval_run']}"
    )
    for k, v in result["metrics"].items():
        console.print(f"  {k:<24} {v:.4f}" if isinstance(v, float) else f"  {k:<24} {v}")


def register(app: typer.Typer) -> None:
    @app.command()
    def evaluate(
        version: str | None = typer.Option(None, "--version", help="registered version (default: champion)"),
        alias: str = typer.Option("champion", "--alias", help="alias used when --version is not given"),
        run: str | None = typer.Option(None, "--run", help="frozen set of this run (default: the gate's set)"),
        as_json: bool = typer.Option(False, "--json", help="print the result as JSON"),
    ) -> None:
        """Evaluate a registered model version on a frozen evaluation set and print the metrics."""
        from core.settings import get_settings
        from training import frozen as fz
        from training.promotion import frozen_run, load_version
        from training.tracking import current_alias_version, setup_mlflow

        settings = get_settings()
        client = setup_mlflow(settings)
        name = settings.model_name
        if version is None:
            version = current_alias_version(client, name, alias)
            if version is None:
                raise DajiaError(f"{name} has no version with alias {alias!r}")
        run_id = run or frozen_run(client, name, version)
        metrics = fz.frozen_metrics(load_version(settings, version), fz.load_frozen(run_id))
        emit({"model": name, "version": version, "frozen_eval_run": run_id, "metrics": metrics}, as_json, _human)
