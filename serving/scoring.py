"""The scoring use case: features → score, tier, reasons → prediction log → optional routing.

Routes call :func:`score_request`; nothing here knows about HTTP. Small requests run on the event
loop (a single-row booster call is ~0.1 ms; a thread hop would cost more); large ones and anything
that builds features from raw records run in a worker thread so the loop keeps serving.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from fastapi.exceptions import RequestValidationError
from numpy.typing import NDArray

from core.errors import DajiaError, NotFound
from serving.auth import ApiKey
from serving.metrics import observe_many
from serving.model_holder import Served
from serving.record_columns import RecordColumns
from serving.runtime import ModelRuntime
from serving.schemas import ScoreRequest
from serving.services import Services

#: batches up to this size are scored on the event loop
INLINE_ROWS = 32


def too_large(field: str, size: int, limit: int) -> RequestValidationError:
    msg = f"{field} holds {size} shops; the limit is {limit} per request (settings.max_batch)"
    return RequestValidationError([{"loc": ("body", field), "msg": msg, "type": "too_long"}])


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _as_of(value: datetime | None) -> pd.Timestamp:
    if value is None:
        return pd.Timestamp(_now())
    ts = pd.Timestamp(value)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts


@dataclass(frozen=True)
class InlineRecords:
    """A request with inline records that passed the column-wise check (``columns_of``): the body's
    JSON text, the records' contract columns, and the request's options."""

    body_json: bytes
    columns: RecordColumns
    as_of: datetime | None = None
    route: bool = False
    top: int = 3
    shop_ids: None = None


#: what a scoring request can be: by id or with records validated as ``ShopRecord`` objects
#: (``ScoreRequest``), or with records checked column by column (``InlineRecords``)
ScoreInput = ScoreRequest | InlineRecords


#: what a by-id result says about its online row (``ModelRuntime.features_for_ids``); None otherwise
FeatureInfo = list[dict[str, Any]] | None


def _features(runtime: ModelRuntime, req: ScoreInput) -> tuple[list[str], NDArray[np.float64], list[str]]:
    """(shop ids, feature rows, digests) for the request (:func:`_features_with_info` without the info)."""
    ids, X, digests, _ = _features_with_info(runtime, req)
    return ids, X, digests


def _features_with_info(
    runtime: ModelRuntime, req: ScoreInput
) -> tuple[list[str], NDArray[np.float64], list[str], FeatureInfo]:
    """(shop ids, feature rows, digests, online-row info) for the request, by id (from the online
    store), from records or from feature rows."""
    from serving.runtime import digest_rows

    if isinstance(req, ScoreRequest) and req.rows is not None:
        runtime.check_input("rows")
        ids, X = runtime.features_for_rows(req.rows)
        return ids, X, digest_rows(X), None
    runtime.check_input("shop_ids" if req.shop_ids is not None else "records")
    if req.shop_ids is not None:
        X, info = runtime.features_for_ids(req.shop_ids)
        return list(req.shop_ids), X, digest_rows(X), info

    if isinstance(req, InlineRecords):
        ids, X = runtime.features_for_columns(
            req.columns, lambda: ScoreRequest.model_validate_json(req.body_json).records or [], _as_of(req.as_of)
        )
    else:
        assert req.records is not None
        ids, X = runtime.features_for_records(req.records, _as_of(req.as_of))
    return ids, X, digest_rows(X), None


def _compute(
    runtime: ModelRuntime, req: ScoreInput
) -> tuple[list[str], list[str], NDArray[np.float64], list[str], list[list[str]], NDArray[np.float64], FeatureInfo]:
    ids, X, digests, info = _features_with_info(runtime, req)
    scores, tiers = runtime.score(X)
    reasons = runtime.reasons(X, tiers, digests, top=req.top)
    return ids, digests, scores, tiers, reasons, X, info


def _feature_row(runtime: ModelRuntime, x: NDArray[np.float64]) -> dict[str, float | None]:
    """One shop's feature values by name (the evidence snapshot keeps what the score was computed from)."""
    return {n: (None if v != v else float(v)) for n, v in zip(runtime.feature_names, x.tolist(), strict=True)}


def _routable(
    runtime: ModelRuntime,
    req: ScoreInput,
    ids: list[str],
    scores: list[float],
    tiers: list[str],
    reasons: list[list[str]],
    X: NDArray[np.float64] | None = None,
) -> list[tuple[str, float, str, list[str], str, dict[str, float | None] | None]]:
    """(shop, score, tier, reasons, source, feature values) to route. By id, the marketplace's data.
    With inline records, a shop the marketplace knows is routed on the marketplace's data, never on the caller's records
    (which may be invented: an honest shop must not be frozen on them); only a shop it does not know is
    routed on the caller's records, and the case says so (source ``inline``)."""
    if req.shop_ids is not None:  # X: the rows scored, read from the online store (or the marketplace in memory)
        return [
            (ids[i], scores[i], tiers[i], reasons[i], "marketplace", None if X is None else _feature_row(runtime, X[i]))
            for i, t in enumerate(tiers)
            if t == "suspected"
        ]
    stored = runtime.online_rows(ids)
    known = [i for i, sid in enumerate(ids) if sid in stored]
    items: list[tuple[str, float, str, list[str], str, dict[str, float | None] | None]] = [
        (ids[i], scores[i], tiers[i], reasons[i], "inline", None if X is None else _feature_row(runtime, X[i]))
        for i, t in enumerate(tiers)
        if t == "suspected" and ids[i] not in stored
    ]
    if known:
        from serving.runtime import digest_rows

        X = runtime.matrix([stored[ids[i]] for i in known])
        m_scores, m_tiers = runtime.score(X)
        m_reasons = runtime.reasons(X, m_tiers, digest_rows(X))
        for k, i in enumerate(known):
            if m_tiers[k] == "suspected":
                items.append(
                    (ids[i], float(m_scores[k]), m_tiers[k], m_reasons[k], "marketplace", _feature_row(runtime, X[k]))
                )
    return items


def _shadow(runtime: ModelRuntime, req: ScoreInput) -> tuple[list[str], list[str], NDArray[np.float64], list[str]]:
    ids, X, digests = _features(runtime, req)
    scores, tiers = runtime.score(X)
    return ids, digests, scores, tiers


def check_batch(req: ScoreRequest, limit: int) -> None:
    if req.shop_ids is not None and len(req.shop_ids) > limit:
        raise too_large("shop_ids", len(req.shop_ids), limit)
    if req.records is not None and len(req.records) > limit:
        raise too_large("records", len(req.records), limit)
    if req.rows is not None and len(req.rows) > limit:
        raise too_large("rows", len(req.rows), limit)


async def score_request(
    services: Services, served: Served, key: ApiKey, req: ScoreInput, request_id: str
) -> dict[str, Any]:
    """Score, log durably, route if asked; the response body as plain data."""
    if req.route and services.sanctions is None:
        raise DajiaError("routing is not available: the sanction workflow is not configured in this service")
    if req.route and req.shop_ids is None and services.sanctions is not None:
        # inline records: each shop must be one the store knows, or routing would silently open nothing
        if isinstance(req, InlineRecords):
            ids = [str(v) for v in req.columns.columns["shops"]["shop_id"].tolist()]
        else:
            ids = [r.shop_id for r in req.records or []]
        unknown = await asyncio.to_thread(services.sanctions.unknown_shops, ids)
        if unknown:
            raise NotFound(
                f"route: {len(unknown)} shop(s) unknown to the sanction store, e.g. {unknown[0]!r}; a case needs "
                "a shop the store holds (import the marketplace), or score without route"
            )
    runtime: ModelRuntime = served.runtime
    on_loop = req.shop_ids is not None and len(req.shop_ids) <= INLINE_ROWS
    try:
        if on_loop:
            ids, digests, scores, tiers, reasons, X, info = _compute(runtime, req)
        else:
            ids, digests, scores, tiers, reasons, X, info = await asyncio.to_thread(_compute, runtime, req)
    except NotFound as exc:
        missing, other = getattr(exc, "missing", None), getattr(exc, "other_version", None)
        if missing is not None or other is not None:  # shops by id without a row for this model
            services.metrics.observe_online_unavailable(len(missing or ()), len(other or ()))
        raise
    if info is not None:
        services.metrics.observe_online(info)

    now = _now()
    score_list = scores.tolist()
    rows: list[dict[str, Any]] = [
        {
            "logged_at": now,
            "request_id": request_id,
            "key_id": key.key_id,
            "shop_id": sid,
            "model_name": served.name,
            "model_version": served.version,
            "feature_digest": d,
            "score": s,
            "tier": t,
            "reasons": r,
            "shadow": False,
        }
        for sid, d, s, t, r in zip(ids, digests, score_list, tiers, reasons, strict=True)
    ]
    shadow = services.holder.shadow
    if shadow is not None:
        try:
            if on_loop:
                s_ids, s_dig, s_scores, s_tiers = _shadow(shadow.runtime, req)
            else:
                s_ids, s_dig, s_scores, s_tiers = await asyncio.to_thread(_shadow, shadow.runtime, req)
        except DajiaError:
            s_ids = []  # the challenger cannot score these shops; the champion's answer stands
        else:
            s_list = s_scores.tolist()
            observe_many(services.metrics.shadow_scores, s_list)
            for sid, d, s, t in zip(s_ids, s_dig, s_list, s_tiers, strict=True):
                rows.append(
                    {
                        "logged_at": now,
                        "request_id": request_id,
                        "key_id": key.key_id,
                        "shop_id": sid,
                        "model_name": shadow.name,
                        "model_version": shadow.version,
                        "feature_digest": d,
                        "score": s,
                        "tier": t,
                        "reasons": [],
                        "shadow": True,
                    }
                )
    await services.log.append(rows)

    cases: dict[str, dict[str, Any]] = {}
    if req.route and services.sanctions is not None:
        # suspected shops are routed; every shop of the request gets its open case back, however opened
        items = _routable(runtime, req, ids, score_list, tiers, reasons, X)
        cases = await asyncio.to_thread(services.sanctions.route, items, served, runtime.suspected, key, ids)

    services.metrics.observe_scores(tiers, score_list)
    ranking = runtime.ranking
    ranks: list[int] | list[None] = [None] * len(ids)
    pcts: list[float] | list[None] = [None] * len(ids)
    reference: dict[str, Any] | None = None
    if ranking is not None:
        ranks, pcts = ranking.rank(scores, ids)
        reference = {"source": ranking.source, "shops": ranking.size}
    details: list[Any] = [None] * len(ids)
    if isinstance(req, ScoreRequest) and req.evidence and req.shop_ids is not None:
        details = await asyncio.to_thread(runtime.reason_details, ids, X, tiers, req.top)
    feature_info: list[Any] = info if info is not None else [None] * len(ids)
    results = []
    for sid, s, rk, pc, t, r, rd, fi in zip(
        ids, score_list, ranks, pcts, tiers, reasons, details, feature_info, strict=True
    ):
        results.append(
            {
                "shop_id": sid,
                "score": s,
                "rank": rk,
                "percentile": pc,
                "tier": t,
                "reasons": r,
                "model_name": served.name,
                "model_version": served.version,
                "request_id": request_id,
                "case": cases.get(sid),
                **({"reason_details": rd} if rd is not None else {}),
                **({"features": fi} if fi is not None else {}),
            }
        )
    model = {"name": served.name, "version": served.version}
    return {"request_id": request_id, "model": model, "reference": reference, "results": results}
