"""One loaded model version, ready for the hot path.

Built off the event loop when a version is loaded: the ``ShopRiskModel`` is unwrapped from its MLflow
pyfunc, LightGBM threads are pinned, and — when the service was pointed at a marketplace — every
shop's feature row is computed once through the model's own fitted pipeline (as of the snapshot)
and kept as one float64 matrix, so scoring a shop by id is a row lookup plus one booster call.

Reasons: only shops in the ``watch`` or ``suspected`` tier get them (the model's Saabas path
credits, about the cost of one more prediction), cached by feature digest, so a shop scored again
with the same features costs nothing extra.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from core.errors import DajiaError, NotFound
from marketplace.tables import scoring_time
from models.model import ShopRiskModel
from models.ranking import ScoreRanking
from models.thresholds import EXPLAINED_TIERS

if TYPE_CHECKING:
    from features.pipeline import ShopFeaturePipeline
_REASON_CACHE_SIZE = 200_000


def load_model_dir(path: Path) -> ShopRiskModel:
    """Load the pyfunc model from a local folder and return its ``ShopRiskModel``."""
    import mlflow.pyfunc

    from models.pyfunc import risk_model_of

    # suppress_warnings: skips MLflow's comparison of the model's pip requirements with every installed
    # distribution (file reading at start-up; the service's environment is pinned by pyproject.toml)
    return risk_model_of(mlflow.pyfunc.load_model(str(path), suppress_warnings=True))


class InputMismatch(DajiaError):
    """The request's input does not fit the served model: ``errors`` are (location, problem) pairs."""

    def __init__(self, message: str, errors: list[tuple[tuple[str | int, ...], str]]) -> None:
        super().__init__(message)
        self.errors = errors


def _few(names: list[str], n: int = 10) -> str:
    more = f" and {len(names) - n} more" if len(names) > n else ""
    return ", ".join(names[:n]) + more


def digest_rows(X: NDArray[np.float64]) -> list[str]:
    """A short sha256 of each feature row's bytes (what the prediction log records)."""
    a = np.ascontiguousarray(X, dtype=np.float64)
    return [hashlib.sha256(a[i].tobytes()).hexdigest()[:32] for i in range(len(a))]


class ModelRuntime:
    """Score, tier and reasons for feature rows, plus the cached feature rows of the marketplace's shops."""

    def __init__(
        self, model: ShopRiskModel, name: str, version: str, marketplace: Any = None, threads: int = 1
    ) -> None:
        self.model = model
        self.name = name
        self.version = version
        model.set_threads(threads)
        self.feature_names: list[str] = list(model.feature_names)
        self.watch = float(model.thresholds.watch)
        self.suspected = float(model.thresholds.suspected)
        self._reasons: OrderedDict[str, list[str]] = OrderedDict()
        self._lock = threading.Lock()
        self.index: dict[str, int] = {}
        self.X = np.zeros((0, len(self.feature_names)))
        self.digests: list[str] = []
        self.as_of: pd.Timestamp | None = None
        self.marketplace = marketplace
        self._finder: Any = None
        #: what POST /v1/scores accepts for this model (``/readyz`` says it)
        self.inputs: tuple[str, ...] = ("shop_ids", "records") if model.pipeline is not None else ("rows",)
        if marketplace is not None and model.pipeline is not None:
            self.as_of = scoring_time(marketplace.snapshot_at)
            frame = model.pipeline.transform(marketplace, self.as_of)
            frame = frame[self.feature_names]
            self.X = np.ascontiguousarray(frame.to_numpy(dtype=np.float64))
            self.index = {str(s): i for i, s in enumerate(frame.index)}
            self.digests = digest_rows(self.X)
        #: where a score stands (rank, percentile): among the loaded marketplace's shops scored once here (one
        #: sort per model version), else among the model's population sample; None for an old model without one
        self.ranking: ScoreRanking | None = model.ranking()
        if len(self.index):
            self.ranking = ScoreRanking(self.model.predict_proba(self.X), list(self.index), source="marketplace")

    @classmethod
    def from_dir(cls, path: Path, name: str, version: str, marketplace: Any = None, threads: int = 1) -> ModelRuntime:
        return cls(load_model_dir(path), name, version, marketplace, threads)

    # -- features -----------------------------------------------------------------------------------
    def rows_for_ids(self, shop_ids: list[str]) -> NDArray[np.int64]:
        """Row numbers of the shops in the cached matrix; NotFound names the unknown ids."""
        index = self.index
        rows = [index.get(s, -1) for s in shop_ids]
        if -1 in rows:
            missing = [s for s, r in zip(shop_ids, rows, strict=True) if r < 0]
            where = "the marketplace this service was started with" if index else "(no marketplace loaded: use records)"
            shown = ", ".join(repr(m) for m in missing[:10])
            more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
            raise NotFound(f"unknown shop id(s) {shown}{more} in {where}")
        return np.asarray(rows, dtype=np.int64)

    def features_for_rows(self, rows: list[Any]) -> tuple[list[str], NDArray[np.float64]]:
        """Feature rows given as ``{name: number | None}`` (``serving.schemas.FeatureRow``) as one matrix
        in the model's column order; ``InputMismatch`` names the missing and unknown columns per row."""
        names = self.feature_names
        expected = set(names)
        problems: list[tuple[int, str]] = []
        for i, row in enumerate(rows):
            given = set(row.features)
            missing, unknown = sorted(expected - given), sorted(given - expected)
            if missing:
                problems.append((i, f"missing feature(s) {_few(missing)}"))
            if unknown:
                problems.append((i, f"unknown feature(s) {_few(unknown)}"))
        if problems:
            raise InputMismatch(
                f"the champion ({self.name} version {self.version}) expects rows with exactly its "
                f"{len(names)} features: {_few(names, 50)}",
                [(("body", "rows", i, "features"), p) for i, p in problems[:50]],
            )
        X = np.array([[np.nan if (v := r.features[n]) is None else v for n in names] for r in rows], dtype=np.float64)
        return [str(r.shop_id) for r in rows], np.ascontiguousarray(X)

    def check_input(self, kind: str) -> None:
        """``InputMismatch`` unless this model accepts ``kind`` (shop_ids, records or rows)."""
        if kind in self.inputs:
            return
        if self.inputs == ("rows",):
            want = f"rows of its {len(self.feature_names)} features ({_few(self.feature_names)}); see /readyz"
            why = "it was trained from a feature table"
        else:
            want = "shop_ids or records in the data-contract shape"
            why = "it builds its features from marketplace data"
        raise InputMismatch(
            f"the champion ({self.name} version {self.version}) cannot score {kind}: {why}; it expects {want}",
            [(("body", kind), f"this champion expects {' or '.join(self.inputs)}")],
        )

    def reason_details(
        self, ids: list[str], X: NDArray[np.float64], tiers: list[str], top: int
    ) -> list[list[dict[str, Any]] | None]:
        """Structured reasons with the evidence they cite (``models.evidence``) for the watch and suspected
        rows of shops of the loaded marketplace; None for the others. Off the hot path: asked for per request."""
        out: list[list[dict[str, Any]] | None] = [None] * len(ids)
        want = [i for i, t in enumerate(tiers) if t in EXPLAINED_TIERS]
        if not want or self.marketplace is None or self.as_of is None:
            return out
        from models.evidence import EvidenceFinder, explain_with_evidence

        with self._lock:
            if self._finder is None:
                self._finder = EvidenceFinder(self.model, self.marketplace)
            finder = self._finder
        frame = pd.DataFrame(X[want], columns=self.feature_names, index=[ids[i] for i in want])
        for i, reasons in zip(want, explain_with_evidence(self.model, finder, frame, self.as_of, top), strict=True):
            out[i] = [r.as_dict() for r in reasons]
        return out

    def _pipeline(self) -> ShopFeaturePipeline:
        pipeline = self.model.pipeline
        if pipeline is None:
            raise NotFound("this model was trained from a feature table and cannot score raw records")
        return pipeline

    def _rows(self, frame: pd.DataFrame, ids: list[str]) -> NDArray[np.float64]:
        """The model's feature columns of ``frame`` for ``ids``, in that order."""
        return np.ascontiguousarray(frame[self.feature_names].loc[ids].to_numpy(dtype=np.float64))

    def features_for_records(self, records: list[Any], as_of: pd.Timestamp) -> tuple[list[str], NDArray[np.float64]]:
        """Feature rows of inline records through the same fitted pipeline (shop ids in record order)."""
        frame = self._pipeline().transform_records(records, as_of)
        ids = [str(r.shop_id) for r in records]
        return ids, self._rows(frame, ids)

    def features_for_columns(
        self, cols: Any, records: Callable[[], list[Any]], as_of: pd.Timestamp
    ) -> tuple[list[str], NDArray[np.float64]]:
        """Feature rows of inline records already checked and built as contract columns (``cols``, from
        ``serving.record_columns.columns_of``) through the same fitted pipeline's ``transform``. ``records``
        gives the records as ``ShopRecord`` objects, for a model whose feature code predates the columns."""
        pipeline = self._pipeline()
        try:
            from features.online import tables_from_columns
        except ImportError:  # the feature code shipped with this model predates the column path
            return self.features_for_records(records(), as_of)
        frame = pipeline.transform(tables_from_columns(cols.columns, cols.rows), as_of)
        ids = cols.columns["shops"]["shop_id"].tolist()
        return ids, self._rows(frame, ids)

    # -- scoring ------------------------------------------------------------------------------------
    def score(self, X: NDArray[np.float64]) -> tuple[NDArray[np.float64], list[str]]:
        scores = np.asarray(self.model.predict_proba(X), dtype=np.float64)
        tier_of = self.model.thresholds.tier_of  # the model's rule, one call per score (no numpy per row)
        tiers = [tier_of(v) for v in scores.tolist()]
        return scores, tiers

    def reasons(self, X: NDArray[np.float64], tiers: list[str], digests: list[str], top: int = 3) -> list[list[str]]:
        """Reasons for rows in the watch or suspected tier (empty for low), cached by feature digest."""
        out: list[list[str]] = [[] for _ in tiers]
        todo: list[int] = []
        cache = self._reasons
        for i, (tier, d) in enumerate(zip(tiers, digests, strict=True)):
            if tier in EXPLAINED_TIERS:
                hit = cache.get(d)
                if hit is None:
                    todo.append(i)
                else:
                    out[i] = hit
        if todo:
            fresh = self.model.explain(X[todo], top=top)
            with self._lock:
                for i, r in zip(todo, fresh, strict=True):
                    out[i] = r
                    cache[digests[i]] = r
                while len(cache) > _REASON_CACHE_SIZE:
                    cache.popitem(last=False)
        return out
