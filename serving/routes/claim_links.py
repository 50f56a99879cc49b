"""A consumer's claim link: no account, the signed token in the path is the only credential.

JSON for apps (``GET /v1/claim-links/{token}``, ``POST …/confirmation``, ``POST …/dispute``) and one
HTML page for people (``GET /claim/{token}``, its two buttons post back to ``/claim/{token}``). An
expired link is 410, a forged one 404, a spent one (claim already confirmed) 409, each with a
sentence that says so. The page is autoescaped, carries no script, and a POST from another origin
is refused.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import jinja2
from fastapi import APIRouter, FastAPI, Form, Path, Request
from starlette.responses import HTMLResponse, Response

from core.errors import DajiaError
from serving.deps import ServicesDep
from serving.errors import status_for
from serving.routes.sanctions import _in_session, _present
from serving.schemas import ErrorBody

Token = Annotated[str, Path(min_length=10, max_length=400, pattern=r"^[A-Za-z0-9_\-\.]+$")]

api = APIRouter(
    prefix="/v1/claim-links",
    tags=["consumers"],
    responses={code: {"model": ErrorBody} for code in (400, 403, 404, 409, 410)},
)


@api.get("/{token}", summary="the claim a consumer's link names: shop, amount, status (no key: the link is the key)")
async def claim(services: ServicesDep, token: Token) -> Response:
    from sanctions.consumer import view

    return _present(await _in_session(services, lambda s: view(s, token)))


@api.post("/{token}/confirmation", summary="the consumer confirms receiving the payment (the link is spent)")
async def confirm(services: ServicesDep, token: Token) -> Response:
    from sanctions.consumer import confirm as confirm_

    return _present(await _in_session(services, lambda s: confirm_(s, token)))


@api.post("/{token}/dispute", summary="the consumer says the recorded payment did not arrive")
async def dispute(services: ServicesDep, token: Token) -> Response:
    from sanctions.consumer import dispute as dispute_

    return _present(await _in_session(services, lambda s: dispute_(s, token)))


_PAGE = jinja2.Environment(autoescape=True).from_string(
    """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Your compensation claim</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body>
<h1>Your compensation claim</h1>
{% if message %}<p id="message" role="status">{{ message }}</p>{% endif %}
{% if error %}<p id="error" role="alert">{{ error }}</p>{% endif %}
{% if c %}
<dl>
<dt>Shop</dt><dd id="shop">{{ c.shop_name }} ({{ c.shop_id }})</dd>
<dt>Amount owed</dt><dd id="amount">{{ "%.2f"|format(c.amount) }} yuan
 (refund {{ "%.2f"|format(c.refund) }} + compensation {{ "%.2f"|format(c.punitive) }})</dd>
<dt>Deadline</dt><dd>{{ c.deadline_at.strftime("%Y-%m-%d") }}</dd>
<dt>Status</dt><dd id="status">{{ c.status }}</dd>
{% if c.payment_ref %}<dt>Payment reference</dt><dd>{{ c.payment_ref }}</dd>{% endif %}
</dl>
{% if c.can_confirm %}
<form method="post"><input type="hidden" name="action" value="confirm">
<button id="confirm" type="submit">I received the payment</button></form>
<form method="post"><input type="hidden" name="action" value="dispute">
<button id="dispute" type="submit">The payment did not arrive</button></form>
{% elif c.status == "owed" %}<p>The shop has not recorded a payment yet.</p>{% endif %}
{% endif %}
</body></html>"""
)

pages = APIRouter(include_in_schema=False)


def _html(status: int, **ctx: Any) -> HTMLResponse:
    return HTMLResponse(_PAGE.render(**ctx), status_code=status, headers={"Cache-Control": "no-store"})


async def _page(
    services: Any, token: str, status: int = 200, message: str | None = None, error: str | None = None
) -> HTMLResponse:
    """The claim's page (``error``: why the action just tried was refused, shown above the claim)."""
    from sanctions.consumer import view

    try:
        c = await _in_session(services, lambda s: view(s, token))
    except DajiaError as exc:
        return _html(status_for(exc), error=str(exc), c=None, message=message)
    return _html(status, c=c, message=message, error=error)


@pages.get("/claim/{token}")
async def claim_page(services: ServicesDep, token: Token) -> HTMLResponse:
    return await _page(services, token)


@pages.post("/claim/{token}")
async def claim_page_action(
    request: Request,
    services: ServicesDep,
    token: Token,
    action: Annotated[Literal["confirm", "dispute"], Form()],
) -> HTMLResponse:
    from sanctions.consumer import confirm as confirm_
    from sanctions.consumer import dispute as dispute_

    origin = request.headers.get("origin")
    if origin and origin != f"{request.url.scheme}://{request.url.netloc}":
        return _html(403, error="refused: this form was sent from another site", c=None, message=None)
    act = confirm_ if action == "confirm" else dispute_
    try:
        await _in_session(services, lambda s: act(s, token))
    except DajiaError as exc:
        return await _page(services, token, status_for(exc), error=str(exc))
    done = "Thank you: your confirmation is recorded." if action == "confirm" else "Your dispute is recorded."
    return await _page(services, token, message=done)


def mount(app: FastAPI) -> None:
    app.include_router(api)
    app.include_router(pages)
