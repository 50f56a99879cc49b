"""MLflow tracking and the model registry: where runs, artifacts and registered models live.

Default store: SQLite ``mlruns/mlflow.db`` under ``DAJIA_HOME`` (the model registry needs a database
backed store; the plain file store has no registry in MLflow 3), artifacts under ``mlruns/artifacts``.
A ``MLFLOW_TRACKING_URI`` replaces both: a SQLite file keeps its artifacts in ``artifacts`` beside it, a
tracking server or another database where the server says.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.data.pandas_dataset import from_pandas
from mlflow.models import ModelSignature
from mlflow.tracking import MlflowClient
from sklearn.metrics import precision_recall_curve

from core.settings import Settings
from models.model import ShopRiskModel
from models.pyfunc import MODEL_ARTIFACT, ShopRiskPyfunc, input_schema, output_schema, save_model_object
from training.metrics import reliability_curve

EXPERIMENT = "dajia-shop-risk"
REPO_ROOT = Path(__file__).resolve().parent.parent
#: packages the model needs at load time, shipped inside the MLflow model
CODE_PACKAGES = ("models", "features", "marketplace", "dajia")
CHAMPION = "champion"
CHALLENGER = "challenger"


def setup_mlflow(settings: Settings) -> MlflowClient:
    """Point MLflow at the configured store and make sure the experiment exists."""
    uri = settings.resolved_tracking_uri
    artifacts = settings.artifact_root
    if artifacts is not None:  # a local SQLite store: its folder and its artifacts beside it
        artifacts.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    if client.get_experiment_by_name(EXPERIMENT) is None:
        location = artifacts.as_uri() if artifacts is not None else None
        client.create_experiment(EXPERIMENT, artifact_location=location)
    mlflow.set_experiment(EXPERIMENT)
    fail_interrupted_runs(client, settings.model_name)
    return client


def process_tags() -> dict[str, str]:
    """Tags naming the process that runs a training (set at the run's start), so a later start can tell a
    run whose process was killed from one still going."""
    return {"dajia.host": socket.gethostname(), "dajia.pid": str(os.getpid())}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def fail_interrupted_runs(client: MlflowClient, model_name: str) -> list[str]:
    """Runs of the experiment left RUNNING by a process of this host that no longer exists (a training
    killed midway: MLflow cannot end its run): each is marked FAILED, and any model version it registered
    before it died is deleted, so a killed training registers nothing. Returns their run ids."""
    experiment = client.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        return []
    host = socket.gethostname()
    failed = []
    for run in client.search_runs([experiment.experiment_id], "attributes.status = 'RUNNING'", max_results=1000):
        tags = run.data.tags
        pid = tags.get("dajia.pid", "")
        if tags.get("dajia.host") != host or not pid.isdigit() or _alive(int(pid)):
            continue
        for version in client.search_model_versions(f"run_id = '{run.info.run_id}'"):
            client.delete_model_version(version.name, version.version)
        client.set_terminated(run.info.run_id, status="FAILED")
        failed.append(run.info.run_id)
    return failed


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def file_digest(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for p in sorted(paths):
        h.update(p.name.encode())
        with open(p, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:16]


def log_dataset(frame: pd.DataFrame, source: str, name: str, digest: str, context: str, target: str | None) -> None:
    with warnings.catch_warnings():
        # a local path matches two equivalent source kinds; MLflow warns and picks one
        warnings.simplefilter("ignore", UserWarning)
        ds = from_pandas(frame, source=source, name=name, digest=digest, targets=target)
    mlflow.log_input(ds, context=context)


def flat_metrics(prefix: str, metrics: dict[str, float]) -> dict[str, float]:
    return {f"{prefix}{k}": float(v) for k, v in metrics.items() if v is not None and np.isfinite(v)}


def write_report_artifacts(
    out: Path,
    model: ShopRiskModel,
    y: np.ndarray,
    scores: dict[str, np.ndarray],
    tables: dict[str, Any],
) -> None:
    """PR curves, reliability plot, feature importance, score histogram, threshold table, JSON tables."""
    import matplotlib

    matplotlib.use("Agg")  # files only, never a display
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 5))
    for name, s in scores.items():
        if 0 < y.sum() < len(y):
            p, r, _ = precision_recall_curve(y, s)
            ax.plot(r, p, label=name)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title("precision-recall, test period")
    ax.legend()
    fig.savefig(out / "pr_curve.png", dpi=90)
    plt.close(fig)

    model_scores = scores["model"]
    rel = reliability_curve(y, model_scores, bins=10)
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--")
    ax.plot([b["mean_score"] for b in rel], [b["observed_rate"] for b in rel], marker="o")
    ax.set_xlabel("mean calibrated score")
    ax.set_ylabel("observed counterfeit rate")
    ax.set_title("reliability, test period")
    fig.savefig(out / "calibration.png", dpi=90)
    plt.close(fig)
    pd.DataFrame(rel).to_csv(out / "reliability.csv", index=False)

    gain = model.booster.feature_importance(importance_type="gain")
    imp = pd.DataFrame({"feature": model.feature_names, "gain": gain}).sort_values("gain", ascending=False)
    imp.to_csv(out / "feature_importance.csv", index=False)
    top = imp.head(25).iloc[::-1]
    fig, ax = plt.subplots(figsize=(7, max(3, 0.28 * len(top))))
    ax.barh(top["feature"], top["gain"])
    ax.set_title("feature importance (gain)")
    fig.tight_layout()
    fig.savefig(out / "feature_importance.png", dpi=90)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    bins = [float(b) for b in np.linspace(0, 1, 41)]
    ax.hist(model_scores[y == 0], bins=bins, alpha=0.6, label="genuine", log=True)
    ax.hist(model_scores[y == 1], bins=bins, alpha=0.6, label="counterfeit", log=True)
    for name in ("watch", "suspected"):
        ax.axvline(getattr(model.thresholds, name), color="red" if name == "suspected" else "orange", label=name)
    ax.set_xlabel("calibrated score")
    ax.legend()
    fig.savefig(out / "score_histogram.png", dpi=90)
    plt.close(fig)

    th = model.thresholds
    rows = []
    for cut in sorted({*np.round(np.linspace(0.05, 0.95, 19), 2), th.watch, th.suspected}):
        flagged = model_scores >= cut
        rows.append(
            {
                "threshold": cut,
                "flagged": int(flagged.sum()),
                "precision": float(y[flagged].mean()) if flagged.any() else float("nan"),
                "recall": float(y[flagged].sum() / max(y.sum(), 1)),
                "tier": "suspected" if cut == th.suspected else "watch" if cut == th.watch else "",
            }
        )
    pd.DataFrame(rows).to_csv(out / "threshold_table.csv", index=False)
    (out / "thresholds.json").write_text(json.dumps(th.to_dict(), indent=2, default=float))
    for name, table in tables.items():
        (out / f"{name}.json").write_text(json.dumps(table, indent=2, default=_json_default))


def _json_default(o: object) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, pd.Timestamp):
        return o.isoformat()
    return str(o)


def log_and_register(
    client: MlflowClient,
    settings: Settings,
    model: ShopRiskModel,
    input_example: pd.DataFrame,
    tags: dict[str, str],
) -> tuple[str, bool]:
    """Log the pyfunc model in the active run, register it; returns (version, became_champion).

    The first version of the registered model becomes ``champion`` (nothing to beat); later versions
    become ``challenger`` and reach ``champion`` only through ``dajia promote``'s gate.
    """
    with tempfile.TemporaryDirectory() as tmp:
        pkl = save_model_object(model, Path(tmp) / "shop_risk_model.pkl")
        signature = ModelSignature(inputs=input_schema(model), outputs=output_schema(model))
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=ShopRiskPyfunc(),
            artifacts={MODEL_ARTIFACT: str(pkl)},
            code_paths=[str(REPO_ROOT / p) for p in CODE_PACKAGES],
            signature=signature,
            input_example=input_example,
            pip_requirements=_pip_requirements(),
            registered_model_name=settings.model_name,
        )
    version = str(info.registered_model_version)
    for k, v in tags.items():
        client.set_model_version_tag(settings.model_name, version, k, v)
    champion = current_alias_version(client, settings.model_name, CHAMPION)
    if champion is None:
        client.set_registered_model_alias(settings.model_name, CHAMPION, version)
        client.set_model_version_tag(settings.model_name, version, "promotion", "first version: champion by default")
        return version, True
    client.set_registered_model_alias(settings.model_name, CHALLENGER, version)
    return version, False


def current_alias_version(client: MlflowClient, name: str, alias: str) -> str | None:
    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except mlflow.exceptions.MlflowException:
        return None


def _pip_requirements() -> list[str]:
    from importlib.metadata import version

    pkgs = [
        "mlflow",
        "lightgbm",
        "numpy",
        "pandas",
        "scipy",
        "scikit-learn",
        "pyarrow",
        "pydantic",
        "pydantic-settings",
        "typer",
        "rich",
    ]
    return [f"{p}=={version(p)}" for p in pkgs]


@contextmanager
def report_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as tmp:
        yield Path(tmp)
