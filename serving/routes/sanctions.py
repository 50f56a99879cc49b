"""The sanction workflow over HTTP: reviewer/admin routes and the public read-only ones.

Thin: parse, authorise (the key's role becomes the workflow actor's role; the workflow checks it
again), call the ``sanctions`` service in a worker thread with its own session, present its view.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from enum import Enum
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, FastAPI, Header, Path, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session
from starlette.responses import Response

from core.errors import DajiaError
from sanctions.schemas import EVIDENCE_KINDS
from serving.auth import ApiKey
from serving.deps import AdminKey, ReviewerKey, ScorerKey, ServicesDep
from serving.responses import OrjsonResponse
from serving.schemas import ErrorBody, Id, StrictJsonRoute, Text
from serving.services import Services

T = TypeVar("T")

CaseId = Annotated[Id, Path()]
CampaignId = Annotated[Id, Path()]
IdemKey = Annotated[str | None, Header(alias="Idempotency-Key", min_length=1, max_length=200)]
_ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorBody} for code in (400, 401, 403, 404, 409, 422)}


def _actor(key: ApiKey) -> Any:
    """The key's person acting in the key's role, the key named as the credential."""
    return key.actor()


async def _in_session(services: Services, fn: Callable[[Session], T]) -> T:
    if services.sanctions is None:
        raise DajiaError("the sanction workflow is not configured in this service")

    def work() -> T:
        with services.sanctions.sessions() as session:
            return fn(session)

    return await asyncio.to_thread(work)


def _present(value: Any) -> Response:
    if isinstance(value, list):
        return OrjsonResponse([v.model_dump(mode="json") if isinstance(v, BaseModel) else v for v in value])
    if isinstance(value, BaseModel):
        return OrjsonResponse(value.model_dump(mode="json"))
    return OrjsonResponse(value)


#: the workflow's evidence kinds, published as an enum in the schema
EvidenceKind = Enum("EvidenceKind", {k: k for k in EVIDENCE_KINDS}, type=str)  # type: ignore[misc]


#: request bodies take JSON's own types only: no "yes" for true, no "12" for 12
STRICT = ConfigDict(extra="forbid", strict=True)


class EvidenceIn(BaseModel):
    model_config = STRICT
    #: a JSON string naming the kind (strict mode would want an enum instance, which JSON cannot send)
    kind: EvidenceKind = Field(strict=False)
    ref: Text = Field(default="", max_length=500)
    detail: Text = Field(default="", max_length=2000)


class DecisionIn(BaseModel):
    model_config = STRICT
    action: Literal["close", "ban", "dismiss"]
    reason: Text = Field(min_length=1, max_length=2000)
    evidence: list[EvidenceIn] = Field(default_factory=list, max_length=100)
    suspect_listing_ids: list[Annotated[Text, Field(min_length=1, max_length=64)]] | None = Field(
        default=None, max_length=10_000
    )
    expected_version: Id | None = None


class AppealDecisionIn(BaseModel):
    model_config = STRICT
    uphold: bool
    reason: Text = Field(min_length=1, max_length=2000)
    evidence: list[EvidenceIn] = Field(default_factory=list, max_length=100)
    expected_version: Id | None = None


class CampaignIn(BaseModel):
    model_config = STRICT
    title: Text = Field(min_length=1, max_length=300)
    case_ids: list[Id] | None = Field(default=None, max_length=100_000)


def _evidence(items: list[EvidenceIn]) -> list[Any]:
    from sanctions.schemas import Evidence

    try:
        return [Evidence(kind=e.kind.value, ref=e.ref, detail=e.detail) for e in items]
    except ValueError as exc:
        raise DajiaError(f"evidence: {exc}") from exc


class ScoredIn(BaseModel):
    """One line of a sweep's scores file (``dajia.sweep.SCORES_SCHEMA``)."""

    model_config = STRICT
    shop_id: Text = Field(min_length=1, max_length=64)
    score: float = Field(ge=0.0, le=1.0)
    tier: Literal["low", "watch", "suspected"]
    model_name: Text = Field(min_length=1, max_length=200)
    model_version: Text = Field(min_length=1, max_length=64)
    suspected_threshold: float = Field(ge=0.0, le=1.0)
    reasons: list[Annotated[Text, Field(max_length=500)]] = Field(default_factory=list, max_length=20)


class RoutingIn(BaseModel):
    model_config = STRICT
    scores: list[ScoredIn] = Field(min_length=1, max_length=100_000)
    tier: Literal["watch", "suspected"] = "suspected"


cases = APIRouter(prefix="/v1/cases", tags=["cases"], responses=_ERRORS, route_class=StrictJsonRoute)


@cases.post("/routing", summary="route a sweep's scores into cases (scorer or admin); re-running is a no-op")
async def route(services: ServicesDep, key: ScorerKey, body: RoutingIn) -> Response:
    from sanctions.routing import route_scored
    from sanctions.scored import ScoredShop

    # a scorer action whatever the key (an actor id keeps one role in the workflow), as for /v1/scores
    actor = key.actor("scorer")
    scored = [ScoredShop(**item.model_dump()) for item in body.scores]
    return _present(await _in_session(services, lambda s: route_scored(s, scored, actor=actor, tier=body.tier)))


@cases.get("", summary="cases, riskiest open first (reviewer or admin)")
async def list_cases(
    services: ServicesDep,
    key: ReviewerKey,
    status: Annotated[Text | None, Query(max_length=32)] = None,
    shop_id: Annotated[Text | None, Query(min_length=1, max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> Response:
    from sanctions.cases import list_cases as list_cases_
    from sanctions.workflow import CaseStatus

    if status is not None and status not in {s.value for s in CaseStatus}:
        raise DajiaError(f"unknown status {status!r}; one of {', '.join(s.value for s in CaseStatus)}")
    return _present(
        await _in_session(
            services, lambda s: list_cases_(s, status=status, shop_id=shop_id, limit=limit, offset=offset)
        )
    )


@cases.get("/{case_id}", summary="one case with its events and claims (reviewer or admin)")
async def get_case(services: ServicesDep, key: ReviewerKey, case_id: CaseId) -> Response:
    from sanctions.cases import get_case as get_case_

    return _present(await _in_session(services, lambda s: get_case_(s, case_id)))


@cases.post("/{case_id}/decisions", summary="decide an open case: close, ban or dismiss (reviewer or admin)")
async def decide(
    services: ServicesDep, key: ReviewerKey, case_id: CaseId, body: DecisionIn, idempotency_key: IdemKey = None
) -> Response:
    from sanctions.cases import decide as decide_

    actor, evidence = _actor(key), _evidence(body.evidence)
    return _present(
        await _in_session(
            services,
            lambda s: decide_(
                s,
                case_id,
                body.action,
                actor,
                reason=body.reason,
                evidence=evidence,
                suspect_listing_ids=body.suspect_listing_ids,
                expected_version=body.expected_version,
                idempotency_key=idempotency_key,
            ),
        )
    )


@cases.post("/{case_id}/appeal-decisions", summary="decide a seller's appeal (reviewer or admin)")
async def decide_appeal(
    services: ServicesDep, key: ReviewerKey, case_id: CaseId, body: AppealDecisionIn, idempotency_key: IdemKey = None
) -> Response:
    from sanctions.cases import decide_appeal as decide_appeal_

    actor, evidence = _actor(key), _evidence(body.evidence)
    return _present(
        await _in_session(
            services,
            lambda s: decide_appeal_(
                s,
                case_id,
                body.uphold,
                actor,
                reason=body.reason,
                evidence=evidence,
                expected_version=body.expected_version,
                idempotency_key=idempotency_key,
            ),
        )
    )


@cases.get(
    "/{case_id}/appeal-files/{file_id}",
    summary="a file the seller attached to the case's appeal, as a download (reviewer or admin)",
    response_class=Response,
)
async def appeal_file(services: ServicesDep, key: ReviewerKey, case_id: CaseId, file_id: CaseId) -> Response:
    import hashlib

    from sanctions.cases import appeal_file as file_
    from serving.routes.seller_links import download

    name, _, data = await _in_session(services, lambda s: file_(s, case_id, file_id))
    return download(name, data, hashlib.sha256(data).hexdigest())


campaigns = APIRouter(prefix="/v1/campaigns", tags=["campaigns"], responses=_ERRORS, route_class=StrictJsonRoute)


@campaigns.get("", summary="campaigns (reviewer or admin)")
async def list_campaigns(services: ServicesDep, key: ReviewerKey) -> Response:
    from sanctions.campaigns import list_campaigns as list_campaigns_

    return _present(await _in_session(services, list_campaigns_))


@campaigns.get("/{campaign_id}", summary="one campaign (reviewer or admin)")
async def get_campaign(services: ServicesDep, key: ReviewerKey, campaign_id: CampaignId) -> Response:
    from sanctions.campaigns import get_campaign as get_campaign_

    return _present(await _in_session(services, lambda s: get_campaign_(s, campaign_id)))


@campaigns.post("", summary="draft a campaign over decided cases (reviewer or admin)")
async def create_campaign(
    services: ServicesDep, key: ReviewerKey, body: CampaignIn, idempotency_key: IdemKey = None
) -> Response:
    from sanctions.campaigns import create_campaign as create_campaign_

    actor = _actor(key)
    return _present(
        await _in_session(
            services,
            lambda s: create_campaign_(
                s, actor, title=body.title, case_ids=body.case_ids, idempotency_key=idempotency_key
            ),
        )
    )


@campaigns.post(
    "/{campaign_id}/approval", summary="approve a draft campaign (a second admin, not its drafter: four eyes)"
)
async def approve_campaign(
    services: ServicesDep, key: AdminKey, campaign_id: CampaignId, idempotency_key: IdemKey = None
) -> Response:
    from sanctions.campaigns import approve_campaign as approve_

    actor = _actor(key)
    return _present(
        await _in_session(services, lambda s: approve_(s, campaign_id, actor, idempotency_key=idempotency_key))
    )


@campaigns.post("/{campaign_id}/publication", summary="publish an approved campaign (admin)")
async def publish_campaign(
    services: ServicesDep, key: AdminKey, campaign_id: CampaignId, idempotency_key: IdemKey = None
) -> Response:
    from sanctions.campaigns import publish_campaign as publish_

    actor = _actor(key)
    return _present(
        await _in_session(services, lambda s: publish_(s, campaign_id, actor, idempotency_key=idempotency_key))
    )


disclosures = APIRouter(prefix="/v1/disclosures", tags=["disclosures"], responses=_ERRORS, route_class=StrictJsonRoute)
policies = APIRouter(
    prefix="/v1/disclosure-policies", tags=["disclosures"], responses=_ERRORS, route_class=StrictJsonRoute
)


class PolicyIn(BaseModel):
    model_config = STRICT
    name: Text = Field(min_length=1, max_length=200)
    personal_fields: list[Annotated[Text, Field(max_length=32)]] = Field(default_factory=list, max_length=10)
    legal_basis: Text = Field(min_length=1, max_length=4000)
    case_ids: list[Id] | None = Field(default=None, max_length=100_000)


class DisclosureProposalIn(BaseModel):
    model_config = STRICT
    basis: Text = Field(min_length=1, max_length=2000)
    case_ids: list[Id] | None = Field(default=None, max_length=10_000)
    policy: Text | None = Field(default=None, min_length=1, max_length=200)


class DisclosureApprovalIn(BaseModel):
    model_config = STRICT
    case_ids: list[Id] | None = Field(default=None, max_length=10_000)


@policies.post(
    "",
    summary="a disclosure policy: personal fields, legal basis, the cases it is for (admin; one naming personal "
    "fields is used only once a second admin approves it)",
)
async def create_policy(services: ServicesDep, key: AdminKey, body: PolicyIn) -> Response:
    from sanctions.disclosure import create_policy as create_policy_

    actor = _actor(key)
    return _present(
        await _in_session(
            services,
            lambda s: create_policy_(
                s,
                actor,
                name=body.name,
                personal_fields=body.personal_fields,
                legal_basis=body.legal_basis,
                case_ids=body.case_ids,
            ),
        )
    )


@policies.post(
    "/{name}/approval", summary="approve a policy that reveals personal fields (a second admin, not its author)"
)
async def approve_policy(services: ServicesDep, key: AdminKey, name: Annotated[Text, Path(max_length=200)]) -> Response:
    from sanctions.disclosure import approve_policy as approve_policy_

    actor = _actor(key)
    return _present(await _in_session(services, lambda s: approve_policy_(s, name, actor)))


@disclosures.post("/proposals", summary="draft entries of closed shops for the public list (admin)")
async def propose_disclosures(
    services: ServicesDep, key: AdminKey, body: DisclosureProposalIn, idempotency_key: IdemKey = None
) -> Response:
    from sanctions.disclosure import propose_disclosures as propose

    actor = _actor(key)
    return _present(
        await _in_session(
            services,
            lambda s: propose(
                s, actor, basis=body.basis, case_ids=body.case_ids, policy=body.policy, idempotency_key=idempotency_key
            ),
        )
    )


@disclosures.post("/approval", summary="publish proposed entries (a second admin, not their drafter: four eyes)")
async def approve_disclosures(
    services: ServicesDep, key: AdminKey, body: DisclosureApprovalIn, idempotency_key: IdemKey = None
) -> Response:
    from sanctions.disclosure import approve_disclosures as approve

    actor = _actor(key)
    return _present(
        await _in_session(
            services, lambda s: approve(s, actor, case_ids=body.case_ids, idempotency_key=idempotency_key)
        )
    )


public = APIRouter(prefix="/v1/public", tags=["public"], responses={404: {"model": ErrorBody}})


@public.get("/announcements", summary="published crackdown announcements (no key needed)")
async def announcements(services: ServicesDep) -> Response:
    from sanctions.public import announcements as announcements_

    return _present(await _in_session(services, announcements_))


@public.get("/announcements/{campaign_id}", summary="one published announcement (no key needed)")
async def announcement(services: ServicesDep, campaign_id: CampaignId) -> Response:
    from sanctions.public import announcement as announcement_

    return _present(await _in_session(services, lambda s: announcement_(s, campaign_id)))


@public.get("/corrections", summary="public corrections of measures reversed on appeal (no key needed)")
async def corrections(services: ServicesDep) -> Response:
    from sanctions.public import corrections as corrections_

    return _present(await _in_session(services, corrections_))


@public.get("/closed-shops", summary="the disclosed list of closed shops, personal fields masked (no key needed)")
async def closed_shops(
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> Response:
    from sanctions.public import closed_shops as closed_shops_

    return _present(await _in_session(services, lambda s: closed_shops_(s, limit=limit, offset=offset)))


storefront = APIRouter(
    prefix="/v1/storefront", tags=["storefront"], responses={400: {"model": ErrorBody}, 404: {"model": ErrorBody}}
)


@storefront.get("/shops/{shop_id}", summary="a shop as the storefront shows it: state, purchasable, listings (no key)")
async def storefront_shop(
    services: ServicesDep, shop_id: Annotated[str, Path(min_length=1, max_length=64)]
) -> Response:
    from sanctions.storefront import storefront_shop as shop_

    return _present(await _in_session(services, lambda s: shop_(s, shop_id)))


@storefront.get("/changes", summary="every storefront visibility change after a cursor, oldest first (no key)")
async def storefront_changes(
    services: ServicesDep,
    after: Annotated[str | None, Query(max_length=20, description="the 'next' of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
) -> Response:
    from sanctions.storefront import changes

    return _present(await _in_session(services, lambda s: changes(s, after=after, limit=limit)))


def mount(app: FastAPI) -> None:
    from serving.routes import claim_links, seller_links

    claim_links.mount(app)
    seller_links.mount(app)
    app.include_router(cases)
    app.include_router(storefront)
    app.include_router(campaigns)
    app.include_router(disclosures)
    app.include_router(policies)
    app.include_router(public)
