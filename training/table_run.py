"""``dajia train --table``: the tracked run around ``training.table.train_table``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import numpy as np

from core.settings import Settings
from models.thresholds import ThresholdPolicy
from training import frozen as fz
from training.booster import BoosterConfig
from training.table import prepare_table, read_table, train_table
from training.tracking import (
    file_digest,
    flat_metrics,
    git_commit,
    log_and_register,
    log_dataset,
    process_tags,
    setup_mlflow,
    write_report_artifacts,
)


def run_table(
    settings: Settings,
    path: Path,
    label: str,
    time_col: str | None = None,
    seed: int = 0,
    k: int = 100,
    test_fraction: float = 0.3,
    register: bool = True,
) -> dict[str, Any]:
    frame = read_table(path)
    config = BoosterConfig(seed=seed)
    # one "sweep" scores the whole table and may route k rows
    policy = ThresholdPolicy(capacity_per_day=k, sweep_days=1)
    run = train_table(frame, label, time_col, test_fraction, config, policy, k=k)
    X, y, _ = prepare_table(frame, label, time_col)
    client = setup_mlflow(settings)
    digest = file_digest([path])
    with mlflow.start_run(run_name=f"table:{path.name}") as active:
        mlflow.set_tags(
            {
                "dajia.mode": "table",
                "dajia.source": str(path.resolve()),
                "git_commit": git_commit() or "none",
                **process_tags(),
            }
        )
        mlflow.log_params(
            {
                "label": label,
                "time_col": time_col or "",
                "seed": seed,
                "k": k,
                "test_fraction": test_fraction,
                "split": run.split.kind,
                "best_iteration": run.model.info["best_iteration"],
                **{f"lgbm.{a}": b for a, b in config.to_dict().items() if a != "extra"},
                "threshold.watch": run.model.thresholds.watch,
                "threshold.suspected": run.model.thresholds.suspected,
            }
        )
        log_dataset(frame, str(path.resolve()), path.stem, digest, "training", label)
        mlflow.log_metrics(flat_metrics("test_", run.metrics))
        mlflow.log_dict({"features": run.model.feature_names}, "feature_names.json")
        with _tmp() as tmp:
            write_report_artifacts(
                tmp / "report", run.model, run.y_test, {"model": run.test_scores}, {"metrics": run.metrics}
            )
            test_X = X.iloc[run.split.test].reset_index(drop=True)
            feats = test_X.assign(**{fz.LABEL: y[run.split.test]})
            fz.FrozenEval(
                spec={"kind": "table", "k": k, "source": str(path.resolve()), "digest": digest}, features=feats
            ).write(tmp)
            mlflow.log_artifacts(str(tmp))
        version = None
        champion = False
        if register:
            example = X.iloc[run.split.test[:3]].reset_index(drop=True)
            version, champion = log_and_register(
                client, settings, run.model, example, {"mode": "table", "data_digest": digest}
            )
        run_id = active.info.run_id
    return {
        "run_id": run_id,
        "model": settings.model_name,
        "version": version,
        "champion": champion,
        "rows": len(y),
        "positives": int(np.sum(y)),
        "features": len(run.model.feature_names),
        "split": run.split.kind,
        "best_iteration": run.model.info["best_iteration"],
        "thresholds": {"watch": run.model.thresholds.watch, "suspected": run.model.thresholds.suspected},
        "test_metrics": run.metrics,
    }


def _tmp() -> Any:
    from training.tracking import report_dir

    return report_dir()
