"""The promotion gate: a version becomes ``champion`` only if it beats the champion on frozen data.

Both models are scored on the same frozen evaluation set (``training.frozen``). The candidate passes
when its PR-AUC and its precision@k are each at least the champion's minus ``TOLERANCE`` (0.005, the
noise level of these metrics on a few thousand labelled examples) and at least one of them is strictly
higher. ``--force`` skips the gate but needs a reason, recorded as a version tag and in the version's
description.
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import mlflow
import pandas as pd
from mlflow.tracking import MlflowClient

from core.errors import DajiaError, PromotionRefused
from core.settings import Settings
from models.model import ShopRiskModel
from models.pyfunc import risk_model_of
from training import frozen as fz
from training.tracking import CHALLENGER, CHAMPION, current_alias_version

TOLERANCE = 0.005
GATE_METRICS = ("pr_auc", "precision_at_k")


def load_version(settings: Settings, version: str) -> ShopRiskModel:
    """The ``ShopRiskModel`` inside a registered version (through the pyfunc loader)."""
    try:
        pyfunc = mlflow.pyfunc.load_model(f"models:/{settings.model_name}/{version}")
    except mlflow.exceptions.MlflowException as exc:
        raise DajiaError(f"cannot load {settings.model_name} version {version}: {exc.message}") from exc
    return risk_model_of(pyfunc)


def run_of_version(client: MlflowClient, name: str, version: str) -> str:
    try:
        mv = client.get_model_version(name, version)
    except mlflow.exceptions.MlflowException as exc:
        raise DajiaError(f"{name} has no version {version}") from exc
    if not mv.run_id:
        raise DajiaError(f"{name} version {version} was not logged from a run")
    return str(mv.run_id)


def frozen_run(client: MlflowClient, name: str, fallback_version: str) -> str:
    """The run whose evaluation set is the gate's reference (set once, kept)."""
    rm = client.get_registered_model(name)
    run_id = rm.tags.get(fz.TAG)
    if run_id:
        return str(run_id)
    run_id = run_of_version(client, name, fallback_version)
    client.set_registered_model_tag(name, fz.TAG, run_id)
    return run_id


@dataclass
class Comparison:
    candidate: str
    champion: str | None
    candidate_metrics: dict[str, float]
    champion_metrics: dict[str, float] | None
    passed: bool
    frozen_run: str

    def table(self) -> list[dict[str, Any]]:
        rows = []
        for m in (*GATE_METRICS, "roc_auc", "recall_at_90_precision", "brier"):
            rows.append(
                {
                    "metric": m,
                    "candidate": self.candidate_metrics.get(m),
                    "champion": None if self.champion_metrics is None else self.champion_metrics.get(m),
                }
            )
        return rows


def gate(candidate: dict[str, float], champion: dict[str, float]) -> bool:
    not_worse = all(candidate[m] >= champion[m] - TOLERANCE for m in GATE_METRICS)
    better = any(candidate[m] > champion[m] for m in GATE_METRICS)
    return not_worse and better


class FittedOnFrozenPeriod(DajiaError):
    """The candidate learnt from labels of the frozen evaluation period: no fair comparison there."""


def check_not_fitted_on(client: MlflowClient, name: str, version: str, spec: dict[str, Any]) -> None:
    """Refuse to compare a version on a frozen period whose labels it was fitted on.

    A model trained on a newer snapshot may have learnt from verdicts of the frozen evaluation period;
    scoring it there would flatter it. ``fit_label_end`` (a version tag) is when its fitting labels end."""
    fitted_until = client.get_model_version(name, version).tags.get("fit_label_end")
    start = spec.get("eval_start")
    if fitted_until and start and pd.Timestamp(fitted_until) > pd.Timestamp(start):
        raise FittedOnFrozenPeriod(
            f"version {version} was fitted on verdicts up to {fitted_until}, after the frozen evaluation set "
            f"starts ({start}): comparing there would flatter it. Promote with --force --reason, stating how it "
            "was evaluated instead."
        )


def compare(client: MlflowClient, settings: Settings, version: str) -> Comparison:
    name = settings.model_name
    champion = current_alias_version(client, name, CHAMPION)
    ref_run = frozen_run(client, name, champion or version)
    frozen = fz.load_frozen(ref_run)
    check_not_fitted_on(client, name, version, frozen.spec)
    mp = fz.frozen_marketplace(frozen) if frozen.spec["kind"] == "marketplace" else None
    cand_metrics = fz.frozen_metrics(load_version(settings, version), frozen, mp)
    if champion is None or champion == version:
        return Comparison(version, champion, cand_metrics, None, champion is None, ref_run)
    champ_metrics = fz.frozen_metrics(load_version(settings, champion), frozen, mp)
    return Comparison(version, champion, cand_metrics, champ_metrics, gate(cand_metrics, champ_metrics), ref_run)


def promote(
    client: MlflowClient, settings: Settings, version: str | None, force: bool = False, reason: str | None = None
) -> dict[str, Any]:
    """Make ``version`` (default: the challenger) champion through the gate, or refuse."""
    name = settings.model_name
    if version is None:
        version = current_alias_version(client, name, CHALLENGER)
        if version is None:
            raise DajiaError(f"{name} has no challenger; name a version with --version")
    run_of_version(client, name, version)  # exists?
    if force and not (reason and reason.strip()):
        raise DajiaError("--force needs --reason TEXT (it is recorded in the registry)")
    try:
        comparison = compare(client, settings, version)
    except FittedOnFrozenPeriod as exc:
        if not force:
            raise
        champion = current_alias_version(client, name, CHAMPION)
        comparison = Comparison(version, champion, {}, None, False, f"not compared: {exc}")
    result: dict[str, Any] = {
        "model": name,
        "version": version,
        "previous_champion": comparison.champion,
        "frozen_eval_run": comparison.frozen_run,
        "tolerance": TOLERANCE,
        "comparison": comparison.table(),
        "passed_gate": comparison.passed,
        "forced": False,
    }
    if comparison.champion == version:
        result["promoted"] = False
        result["note"] = "already champion"
        return result
    if not comparison.passed and not force:
        lines = [
            f"  {r['metric']}: candidate {_f(r['candidate'])} vs champion {_f(r['champion'])}"
            for r in comparison.table()
        ]
        raise PromotionRefused(
            f"version {version} does not beat champion version {comparison.champion} on the frozen evaluation "
            f"set (run {comparison.frozen_run}; needs PR-AUC and precision@k each ≥ champion − {TOLERANCE} and one "
            "higher):\n" + "\n".join(lines)
        )
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    if force and not comparison.passed:
        assert reason is not None
        who = getpass.getuser()
        client.set_model_version_tag(name, version, "forced_promotion_reason", reason)
        client.set_model_version_tag(name, version, "forced_promotion_by", who)
        client.set_model_version_tag(name, version, "forced_promotion_at", stamp)
        client.update_model_version(
            name, version, description=f"FORCED promotion to champion at {stamp} by {who}: {reason}"
        )
        result["forced"] = True
        result["reason"] = reason
    client.set_model_version_tag(name, version, "promoted_at", stamp)
    client.set_registered_model_alias(name, CHAMPION, version)
    if current_alias_version(client, name, CHALLENGER) == version:
        client.delete_registered_model_alias(name, CHALLENGER)
    result["promoted"] = True
    return result


def _f(v: float | None) -> str:
    return "-" if v is None else f"{v:.4f}"
