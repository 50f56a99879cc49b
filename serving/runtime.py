"""One loaded model version, ready for the hot path.

Built off the event loop when a version is loaded: the ``ShopRiskModel`` is unwrapped from its MLflow
pyfunc and LightGBM threads are pinned. Scoring a shop by id reads its feature row from the online
feature store (``features.online_store``: one row by primary key, materialised by the sweep and
refreshed by ingested events) and checks it was built for this model's pipeline (its digest) and is not
older than ``settings.online_max_age_hours``; the service holds no marketplace in memory for it.

When the service was given a marketplace object (in-process use, tests), its shops are materialised
into the store at load and their rows also kept as one matrix (``X``/``index``) for the console's
monitor; ``dajia serve --data DIR`` materialises a folder partition by partition instead
(:func:`materialise_partitions`, skipped when the store already holds it for this pipeline).

Reasons: only shops in the ``watch`` or ``suspected`` tier get them (the model's Saabas path
credits, about the cost of one more prediction), cached by feature digest, so a shop scored again
with the same features costs nothing extra.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from core.errors import DajiaError, NotFound
from features.online_store import OnlineRow, OnlineStore, materialise, now_us, pipeline_digest, us_ts
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


def rows_unavailable(message: str, missing: list[str], other_version: list[str]) -> NotFound:
    """The ``NotFound`` (404) for shops scored by id whose online row is missing or was built for another
    pipeline (model version); ``missing`` and ``other_version`` name them (the metrics count them)."""
    exc = NotFound(message)
    exc.missing = missing  # type: ignore[attr-defined]
    exc.other_version = other_version  # type: ignore[attr-defined]
    return exc


#: a row's freshness as the response reports it
FRESH, STALE = "fresh", "stale"
_EPOCH = datetime(1970, 1, 1)


def iso_us(us: int) -> str:
    """Microseconds since the epoch (UTC) as RFC 3339 with its zone (``Z``), as the OpenAPI date-time says."""
    return (_EPOCH + timedelta(microseconds=us)).isoformat() + "Z"


def materialise_partitions(
    store: OnlineStore, pipeline: Any, parts: Any, log: Callable[[str], None] | None = None
) -> int:
    """Materialise every shop of a partitioned marketplace (``dajia.scaleout.partition``) into ``store``,
    one partition in memory at a time; nothing when the store already holds this marketplace
    (its fingerprint) for this pipeline. Returns the rows written."""
    digest = pipeline_digest(pipeline)
    key = f"materialised:{digest}"
    if store.meta(key) == parts.fingerprint:
        return 0
    as_of = scoring_time(parts.snapshot_at)
    written = 0
    for i in range(parts.n_partitions):
        mp, ids = parts.load(i)
        written += materialise(store, pipeline, mp, as_of, [str(s) for s in ids])
        del mp
        if log is not None:
            log(f"online store: partition {i + 1}/{parts.n_partitions} materialised ({written:,} shops)")
    store.set_meta(key, parts.fingerprint)
    return written


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
        self,
        model: ShopRiskModel,
        name: str,
        version: str,
        marketplace: Any = None,
        threads: int = 1,
        store: OnlineStore | None = None,
        max_age_hours: float = 0.0,
        source: Any = None,
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
        self.store = store
        self.max_age_us = int(max_age_hours * 3600 * 1e6)
        self.pipeline_digest: str | None = None
        #: columns of a stored row (the pipeline's output order) in the model's order; None: the same
        self._order: NDArray[np.intp] | None = None
        pipeline = model.pipeline
        if pipeline is not None:
            self.pipeline_digest = pipeline_digest(pipeline)
            out = [str(n) for n in pipeline.get_feature_names_out()]
            if out != self.feature_names:
                pos = {n: i for i, n in enumerate(out)}
                self._order = np.asarray([pos[n] for n in self.feature_names], dtype=np.intp)
        if marketplace is not None and pipeline is not None:
            self.as_of = scoring_time(marketplace.snapshot_at)
            full = pipeline.transform(marketplace, self.as_of)
            frame = full[self.feature_names]
            self.X = np.ascontiguousarray(frame.to_numpy(dtype=np.float64))
            self.index = {str(s): i for i, s in enumerate(frame.index)}
            self.digests = digest_rows(self.X)
            # the same marketplace object is materialised once per pipeline in this process (the champion
            # and a shadow of the same pipeline, reloads), never into nothing
            key, held = f"materialised:{self.pipeline_digest}", f"memory:{os.getpid()}:{id(marketplace)}"
            if store is not None and store.meta(key) != held:
                materialise(store, pipeline, marketplace, self.as_of, list(self.index), features=full)
                store.set_meta(key, held)
        elif source is not None and store is not None and pipeline is not None:
            materialise_partitions(store, pipeline, source)
        self._online_count: tuple[float, int] | None = None
        #: where a score stands (rank, percentile): among the loaded marketplace's shops scored once here (one
        #: sort per model version), else among the model's population sample; None for an old model without one
        self.ranking: ScoreRanking | None = model.ranking()
        if len(self.index):
            self.ranking = ScoreRanking(self.model.predict_proba(self.X), list(self.index), source="marketplace")

    @classmethod
    def from_dir(
        cls,
        path: Path,
        name: str,
        version: str,
        marketplace: Any = None,
        threads: int = 1,
        store: OnlineStore | None = None,
        max_age_hours: float = 0.0,
        source: Any = None,
    ) -> ModelRuntime:
        return cls(load_model_dir(path), name, version, marketplace, threads, store, max_age_hours, source)

    # -- the online store -----------------------------------------------------------------------------
    def online_shops(self, max_age_seconds: float = 30.0) -> int:
        """Shops the online store holds rows of for this model's pipeline (``/readyz``): a count over the
        store, so not at start-up (it grows with the shops) but on demand, kept ``max_age_seconds``."""
        if self.store is None or self.pipeline_digest is None:
            return 0
        now = time.monotonic()
        hit = self._online_count
        if hit is None or now - hit[0] > max_age_seconds:
            hit = self._online_count = (now, self.store.count(self.pipeline_digest))
        return hit[1]

    def online_rows(self, shop_ids: list[str]) -> dict[str, OnlineRow]:
        """The stored rows of ``shop_ids`` built for this model's pipeline (others are left out)."""
        if self.store is None or self.pipeline_digest is None:
            return {}
        digest = self.pipeline_digest
        return {s: r for s, r in self.store.get_many(shop_ids).items() if r.pipeline == digest}

    def matrix(self, rows: list[OnlineRow]) -> NDArray[np.float64]:
        """Stored rows as one matrix in the model's column order."""
        X = np.stack([r.values for r in rows]) if len(rows) > 1 else rows[0].values.reshape(1, -1)
        if self._order is not None:
            X = X[:, self._order]
        return np.ascontiguousarray(X, dtype=np.float64)

    def features_for_ids(self, shop_ids: list[str]) -> tuple[NDArray[np.float64], list[dict[str, Any]]]:
        """Feature rows of shops by id from the online store, and per shop what the row is (status fresh
        or stale, as-of, refreshed-at, pipeline). A ``NotFound`` (:func:`rows_unavailable`) names the shops
        without a row built for this model's pipeline: they are never scored from nothing."""
        if self.store is None or self.pipeline_digest is None:
            raise NotFound("scoring by id needs the online feature store and a model with a feature pipeline")
        found = self.store.get_many(shop_ids)
        digest = self.pipeline_digest
        rows: list[OnlineRow] = []
        missing: list[str] = []
        other: list[str] = []
        for s in shop_ids:
            r = found.get(s)
            if r is None:
                missing.append(s)
            elif r.pipeline != digest:
                other.append(s)
            else:
                rows.append(r)
        if missing or other:
            raise rows_unavailable(self._unavailable(missing, other, found), missing, other)
        now = now_us()
        limit = self.max_age_us
        info = [
            {
                "source": "online",
                "status": STALE if limit and now - r.refreshed_us > limit else FRESH,
                "as_of": iso_us(r.as_of_us),
                "refreshed_at": iso_us(r.refreshed_us),
                "pipeline": r.pipeline,
            }
            for r in rows
        ]
        return self.matrix(rows), info

    def _unavailable(self, missing: list[str], other: list[str], found: dict[str, OnlineRow]) -> str:
        parts = []
        if missing:
            shown = ", ".join(repr(m) for m in missing[:10])
            more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
            parts.append(f"unknown shop id(s) {shown}{more}: the online feature store holds no row for them")
        if other:
            shown = ", ".join(f"{o!r} (pipeline {found[o].pipeline})" for o in other[:10])
            parts.append(
                f"shop(s) {shown} have rows built for another model version than the champion's "
                f"(pipeline {self.pipeline_digest})"
            )
        return "; ".join(parts) + (
            "; run dajia sweep with the champion (or post the shop's events) to materialise them, "
            "or send the shops as records"
        )

    def online_history(self, shop_ids: list[str]) -> Any:
        """A marketplace of the stored histories of ``shop_ids`` (for evidence), or None."""
        if self.store is None:
            return None
        hist = self.store.history(shop_ids)
        if not hist:
            return None
        from features.pipeline import marketplace_from_frames
        from marketplace.records import records_to_frames

        return marketplace_from_frames(records_to_frames(list(hist.values())), pd.Timestamp.now())

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
        if not want:
            return out
        from models.evidence import EvidenceFinder, explain_with_evidence

        as_of = self.as_of
        if self.marketplace is not None and as_of is not None:
            with self._lock:
                if self._finder is None:
                    self._finder = EvidenceFinder(self.model, self.marketplace)
                finder = self._finder
        else:  # no marketplace in memory: the evidence of the stored histories of these shops
            wanted = [ids[i] for i in want]
            mp = self.online_history(wanted)
            rows = self.online_rows(wanted)
            if mp is None or not rows:
                return out
            as_of = us_ts(max(r.as_of_us for r in rows.values()))
            finder = EvidenceFinder(self.model, mp)
        frame = pd.DataFrame(X[want], columns=self.feature_names, index=[ids[i] for i in want])
        for i, reasons in zip(want, explain_with_evidence(self.model, finder, frame, as_of, top), strict=True):
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
