"""The frozen evaluation set: the data every promotion compares champion and candidate on.

Each training run stores its test set as run artifacts under ``frozen_eval/``:

* ``spec.json`` — kind (``table`` or ``marketplace``), the capacity ``k``, the data source and digest,
  and for marketplaces the evaluation period start;
* ``table`` kind: ``features.parquet`` (feature columns + ``__label__``) — models are scored on it directly;
* ``marketplace`` kind: ``examples.parquet`` (shop_id, as_of, label) — each model builds its own
  features with its own fitted pipeline from the marketplace folder, whose digest must still match.

The registered model's tag ``frozen_eval_run`` names the run whose set is the gate's reference; it is set
when the first champion is made and kept across promotions so every comparison uses the same data.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from numpy.typing import NDArray

from core.errors import DajiaError
from marketplace.schema import GROUND_TRUTH_FILE
from models.model import ShopRiskModel
from training.metrics import binary_metrics

LABEL = "__label__"
ARTIFACT_DIR = "frozen_eval"
TAG = "frozen_eval_run"


@dataclass
class FrozenEval:
    spec: dict[str, Any]
    features: pd.DataFrame | None = None
    examples: pd.DataFrame | None = None

    def write(self, folder: Path) -> Path:
        out = folder / ARTIFACT_DIR
        out.mkdir(parents=True, exist_ok=True)
        (out / "spec.json").write_text(json.dumps(self.spec, indent=2, default=str))
        if self.features is not None:
            self.features.to_parquet(out / "features.parquet")
        if self.examples is not None:
            self.examples.to_parquet(out / "examples.parquet")
        return out


def load_frozen(run_id: str) -> FrozenEval:
    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=ARTIFACT_DIR, dst_path=tmp))
        except Exception as exc:
            raise DajiaError(f"run {run_id} has no frozen evaluation set ({ARTIFACT_DIR}/): {exc}") from exc
        spec = json.loads((local / "spec.json").read_text())
        feats = pd.read_parquet(local / "features.parquet") if (local / "features.parquet").exists() else None
        ex = pd.read_parquet(local / "examples.parquet") if (local / "examples.parquet").exists() else None
    return FrozenEval(spec=spec, features=feats, examples=ex)


def frozen_marketplace(frozen: FrozenEval) -> Any:
    """The marketplace a frozen set refers to, after checking it is unchanged (digest)."""
    from marketplace.loader import load_marketplace
    from training.tracking import file_digest

    data_dir = Path(frozen.spec["data_dir"])
    files = marketplace_files(data_dir) if data_dir.exists() else []
    if not files:
        raise DajiaError(f"the frozen evaluation set's marketplace {data_dir} is gone; cannot compare")
    if file_digest(files) != frozen.spec["digest"].split("+")[0]:
        raise DajiaError(f"the marketplace {data_dir} changed since the evaluation set was frozen (digest differs)")
    return load_marketplace(data_dir, frozen.spec.get("snapshot_at"))


def marketplace_files(folder: Path) -> list[Path]:
    """The contract tables' files of a marketplace folder (Parquet or CSV; not the ground truth), sorted:
    what the data digest covers."""
    return sorted(p for p in [*folder.glob("*.parquet"), *folder.glob("*.csv")] if p.name != GROUND_TRUTH_FILE)


def score_frozen(
    model: ShopRiskModel, frozen: FrozenEval, mp: Any | None = None
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(labels, calibrated scores) of ``model`` on the frozen set (labels NaN where unlabelled).

    ``mp``: the frozen set's marketplace when the caller already loaded it (``frozen_marketplace``)."""
    if frozen.spec["kind"] == "table":
        assert frozen.features is not None
        missing = [c for c in model.feature_names if c not in frozen.features.columns]
        if missing:
            raise DajiaError(f"the frozen evaluation table lacks model features {missing[:5]}: not comparable")
        y = frozen.features[LABEL].to_numpy(dtype=np.float64)
        return y, model.predict_proba(frozen.features[model.feature_names])
    assert frozen.examples is not None
    if model.pipeline is None:
        raise DajiaError("a feature-table model cannot be evaluated on a marketplace evaluation set")
    if mp is None:
        mp = frozen_marketplace(frozen)
    ex = frozen.examples.reset_index(drop=True)
    X = model.pipeline.transform_examples(mp, ex[["shop_id", "as_of"]], oof=False)
    return ex["label"].to_numpy(dtype=np.float64), model.predict_proba(X[model.feature_names])


def frozen_metrics(model: ShopRiskModel, frozen: FrozenEval, mp: Any | None = None) -> dict[str, float]:
    y, s = score_frozen(model, frozen, mp)
    if frozen.spec["kind"] == "table":
        return binary_metrics(y, s, int(frozen.spec.get("k", 100)))
    from training.evaluation import verdict_metrics

    assert frozen.examples is not None
    frame = frozen.examples.reset_index(drop=True).assign(score=s)
    frame["as_of"] = pd.to_datetime(frame["as_of"])
    capacity = {pd.Timestamp(k): float(v) for k, v in frozen.spec["capacity"].items()}
    return verdict_metrics(frame, "score", capacity, probabilities=True)
