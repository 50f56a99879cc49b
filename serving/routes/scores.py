"""``POST /v1/scores``: the hot path for trust-and-safety systems."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from serving.deps import ScorerCall
from serving.errors import request_id_of
from serving.responses import OrjsonResponse
from serving.schemas import ErrorBody, ScoreRequest, ScoreResponse
from serving.scoring import check_batch, score_request

router = APIRouter(prefix="/v1", tags=["scoring"])


@router.post(
    "/scores",
    response_model=ScoreResponse,
    summary="score shops by id or from inline records",
    description=(
        "Give exactly one of `shop_ids` (shops of the marketplace the service was started with) or `records` "
        "(shops in the data-contract shape). At most `settings.max_batch` shops per request (default 1,000; "
        "more gets 422 naming the field). Each result carries the calibrated score, the tier, up to `top` "
        "reasons in words for watch and suspected shops, the model name and version and the request id. "
        "Every score is in the prediction log before the response is sent. With `route: true`, shops in the "
        "suspected tier open (or update) a case in the sanction workflow; repeating the call does not open a "
        "second case."
    ),
    responses={
        400: {"model": ErrorBody, "description": "the body is not JSON, or the request is refused"},
        401: {"model": ErrorBody},
        403: {"model": ErrorBody},
        404: {"model": ErrorBody, "description": "unknown shop id"},
        413: {"model": ErrorBody, "description": "body larger than the limit"},
        422: {"model": ErrorBody, "description": "invalid field; `errors[].path` names each one"},
        503: {"model": ErrorBody, "description": "no model loaded yet (see /readyz)"},
    },
)
async def create_scores(body: ScoreRequest, request: Request, call: ScorerCall) -> Response:
    check_batch(body, call.services.settings.max_batch)
    result = await score_request(call.services, call.served, call.key, body, request_id_of(request))
    return OrjsonResponse(result)
