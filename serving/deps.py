"""Request dependencies, declared once with ``Annotated`` and reused by every route."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import APIKeyHeader

from serving.auth import ApiKey, Role
from serving.model_holder import Served
from serving.services import Services

api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="an API key created with `dajia keys create`"
)


async def get_services(request: Request) -> Services:
    services: Services = request.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


SCORING_ROLES = frozenset({Role.scorer, Role.admin})


def authorise(services: Services, secret: str | None, allowed: frozenset[Role]) -> ApiKey:
    """401 without a valid key, 403 when its role is not in ``allowed``."""
    if not secret:
        raise HTTPException(401, "an API key is required (header X-API-Key)", headers={"WWW-Authenticate": "ApiKey"})
    key = services.keys.authenticate(secret)
    if key is None:
        raise HTTPException(401, "unknown or revoked API key", headers={"WWW-Authenticate": "ApiKey"})
    if key.role not in allowed:
        names = ", ".join(sorted(r.value for r in allowed))
        raise HTTPException(403, f"this key's role {key.role.value!r} may not do this (needs: {names})")
    return key


def require(*roles: Role) -> Callable[[Request, str | None], Awaitable[ApiKey]]:
    """A dependency that authenticates the caller's key and checks it carries one of ``roles``."""
    allowed = frozenset(roles)

    async def _check(request: Request, secret: Annotated[str | None, Security(api_key_header)]) -> ApiKey:
        return authorise(request.state.services, secret, allowed)

    return _check


ScorerKey = Annotated[ApiKey, Depends(require(Role.scorer, Role.admin))]
ReviewerKey = Annotated[ApiKey, Depends(require(Role.reviewer, Role.admin))]
AdminKey = Annotated[ApiKey, Depends(require(Role.admin))]


async def get_served(services: ServicesDep) -> Served:
    served = services.holder.current
    if served is None:
        raise HTTPException(503, "no model loaded yet; see /readyz")
    return served


ServedDep = Annotated[Served, Depends(get_served)]
