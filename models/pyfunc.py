"""The MLflow pyfunc wrapper: one logged model = the whole fitted ``ShopRiskModel``.

Input (a DataFrame, what ``mlflow models serve`` gets as ``dataframe_records``):

* a model trained from a marketplace takes **raw shop records** in the data-contract shape: the shop
  table's columns (timestamps as ISO strings) plus one JSON-string column per child list
  (``listings``, ``listing_edits``, ``orders``, ``complaints``, ``reviews``, ``authorisations``: each a JSON
  array of that table's rows), and an optional ``as_of`` column (ISO time; default: now, UTC). JSON
  strings rather than MLflow's Object/Array types because every MLflow client and ``mlflow models
  serve`` pass a string column through untouched, while nested types are cast field by field.
* a model trained with ``--table`` takes the feature columns.

Output: ``shop_id`` (records only), ``score`` (calibrated probability), ``tier`` and ``reasons`` (a list of
sentences, filled for watch/suspected shops; see ``models.reasons`` for why only those).
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlflow.pyfunc import PyFuncModel, PythonModel, PythonModelContext
from mlflow.types.schema import Array, ColSpec, Schema

from marketplace.schema import SHOPS
from models.model import ShopRiskModel

#: JSON-string columns holding each shop's child rows
CHILD_COLUMNS = ("listings", "listing_edits", "orders", "complaints", "reviews", "authorisations")
MODEL_ARTIFACT = "shop_risk_model"


def save_model_object(model: ShopRiskModel, path: Path) -> Path:
    with open(path, "wb") as fh:
        pickle.dump(model, fh, protocol=pickle.HIGHEST_PROTOCOL)
    return path


def load_model_object(path: str | Path) -> ShopRiskModel:
    with open(path, "rb") as fh:
        model = pickle.load(fh)
    if not isinstance(model, ShopRiskModel):
        raise TypeError(f"{path} does not hold a ShopRiskModel")
    return model


def input_schema(model: ShopRiskModel) -> Schema:
    if model.pipeline is None:
        return Schema([ColSpec("double", n) for n in model.feature_names])
    cols: list[Any] = [ColSpec("string", c.name, required=not c.nullable) for c in SHOPS.columns]
    cols += [ColSpec("string", c, required=False) for c in CHILD_COLUMNS]
    cols.append(ColSpec("string", "as_of", required=False))
    return Schema(cols)


def output_schema(model: ShopRiskModel) -> Schema:
    cols: list[Any] = [ColSpec("double", "score"), ColSpec("string", "tier"), ColSpec(Array("string"), "reasons")]
    if model.pipeline is not None:
        cols.insert(0, ColSpec("string", "shop_id"))
    return Schema(cols)


def records_frame(records: list[dict[str, Any]], as_of: pd.Timestamp | None = None) -> pd.DataFrame:
    """Turn data-contract shop dicts (with child lists) into the model's input frame."""
    rows = []
    for r in records:
        row: dict[str, Any] = {}
        for col in SHOPS.columns:
            v = r.get(col.name)
            row[col.name] = v.isoformat() if isinstance(v, pd.Timestamp) else (None if v is None else str(v))
        for child in CHILD_COLUMNS:
            row[child] = json.dumps(r.get(child) or [], default=_json_default, ensure_ascii=False)
        if as_of is not None:
            row["as_of"] = pd.Timestamp(as_of).isoformat()
        rows.append(row)
    return pd.DataFrame(rows)


def _json_default(o: object) -> Any:
    if isinstance(o, pd.Timestamp):
        return None if pd.isna(o) else o.isoformat()
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _is_missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA or v is pd.NaT


def frame_to_records(frame: pd.DataFrame) -> tuple[list[Any], list[pd.Timestamp]]:
    """Rows of the input frame → ``ShopRecord`` objects and each row's as-of time."""
    from marketplace.records import ShopRecord

    now = pd.Timestamp.now(tz="UTC").tz_localize(None)
    records: list[Any] = []
    as_ofs: list[pd.Timestamp] = []
    for i, row in enumerate(frame.to_dict(orient="records")):
        data: dict[str, Any] = {}
        for col in SHOPS.columns:
            v = row.get(col.name)
            data[col.name] = None if _is_missing(v) else v
        for child in CHILD_COLUMNS:
            v = row.get(child)
            if _is_missing(v) or v == "":
                data[child] = []
            elif isinstance(v, str):
                try:
                    data[child] = json.loads(v)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"row {i}, column {child!r}: not a JSON array: {exc}") from exc
            else:
                data[child] = list(v) if isinstance(v, list | tuple | np.ndarray) else []
        records.append(ShopRecord.model_validate(data))
        a: Any = row.get("as_of")
        ts = now if _is_missing(a) or a == "" else pd.Timestamp(a)
        if ts.tzinfo is not None:
            ts = ts.tz_convert("UTC").tz_localize(None)
        as_ofs.append(ts)
    return records, as_ofs


class ShopRiskPyfunc(PythonModel):
    """``mlflow.pyfunc`` face of a ``ShopRiskModel`` (loaded from the pickled artifact)."""

    model: ShopRiskModel

    def load_context(self, context: PythonModelContext) -> None:
        from core.settings import get_settings

        self.model = load_model_object(context.artifacts[MODEL_ARTIFACT])
        self.model.set_threads(get_settings().lightgbm_threads)

    def predict(
        self, context: PythonModelContext, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        model = self.model
        if not isinstance(model_input, pd.DataFrame):
            model_input = pd.DataFrame(model_input)
        if model.pipeline is None:
            out = model.score_and_explain(model_input)
            return out.reset_index(drop=True)
        records, as_ofs = frame_to_records(model_input)
        parts = []
        order = pd.Series(range(len(records)))
        for as_of, idx in order.groupby(pd.Series(as_ofs)).groups.items():
            sel = [records[i] for i in idx]
            scored = model.score_records(sel, pd.Timestamp(str(as_of)))
            scored = scored.reset_index(names="shop_id")
            scored.index = list(idx)
            parts.append(scored)
        out = pd.concat(parts).sort_index() if parts else pd.DataFrame(columns=["shop_id", "score", "tier", "reasons"])
        return out[["shop_id", "score", "tier", "reasons"]].reset_index(drop=True)


def risk_model_of(loaded: PyFuncModel) -> ShopRiskModel:
    """The ``ShopRiskModel`` inside a loaded MLflow pyfunc model (what serving and promotion score with)."""
    inner = loaded.unwrap_python_model()
    if not isinstance(inner, ShopRiskPyfunc):
        raise TypeError(f"the MLflow model holds a {type(inner).__name__}, not a ShopRiskPyfunc")
    return inner.model
