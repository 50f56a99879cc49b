"""A shopkeeper's seller link: no account, the signed token in the path is the only credential.

JSON for apps under ``/v1/seller-links/{token}`` (the shop's cases and claims, ``…/claims/{id}/payment``,
``…/cases/{id}/refusal``, ``…/cases/{id}/appeal`` as multipart with a statement and files, and the appeal's
files as downloads) and one HTML page for people (``GET /seller/{token}``; its forms post back to
``/seller/{token}``). Same status conventions as the consumers' claim links: a forged link is 404, an
expired one 410, another shop's case or claim 403, an action done already 409. A request body above the
service's limit is 413 (the middleware), a file over the per-file limit 422, a type not accepted 415.

The page is autoescaped, carries no script (its CSP forbids any), and a POST from another origin is
refused. Appeal files are served only as downloads: ``application/octet-stream``, ``Content-Disposition:
attachment``, ``X-Content-Type-Options: nosniff`` and a sandboxing CSP.
"""

from __future__ import annotations

from typing import Annotated, Any

import jinja2
from fastapi import APIRouter, FastAPI, File, Form, Path, Request, UploadFile
from pydantic import BaseModel, Field
from starlette.datastructures import UploadFile as StarletteUpload
from starlette.responses import HTMLResponse, Response

from core.errors import DajiaError
from serving.deps import ServicesDep
from serving.errors import status_for
from serving.routes.sanctions import STRICT, IdemKey, _in_session, _present
from serving.schemas import ErrorBody, Id, StrictJsonRoute, Text

Token = Annotated[str, Path(min_length=10, max_length=400, pattern=r"^[A-Za-z0-9_\-\.]+$")]
MAX_STATEMENT = 4000

api = APIRouter(
    prefix="/v1/seller-links",
    tags=["sellers"],
    responses={code: {"model": ErrorBody} for code in (400, 403, 404, 409, 410, 413, 415, 422)},
    route_class=StrictJsonRoute,
)


class PaymentIn(BaseModel):
    model_config = STRICT
    payment_ref: Text = Field(min_length=1, max_length=200, description="the transfer's id")


class RefusalIn(BaseModel):
    model_config = STRICT
    reason: Text = Field(default="seller refuses to compensate", max_length=2000)


@api.get("/{token}", summary="the shop's cases and the claims it owes (no key: the seller link is the key)")
async def shop(services: ServicesDep, token: Token) -> Response:
    from sanctions.seller import view

    return _present(await _in_session(services, lambda s: view(s, token)))


@api.post("/{token}/claims/{claim_id}/payment", summary="the shopkeeper records paying one claim")
async def pay(
    services: ServicesDep,
    token: Token,
    claim_id: Annotated[Id, Path()],
    body: PaymentIn,
    idempotency_key: IdemKey = None,
) -> Response:
    from sanctions.seller import pay as pay_

    return _present(
        await _in_session(
            services, lambda s: pay_(s, token, claim_id, payment_ref=body.payment_ref, idempotency_key=idempotency_key)
        )
    )


@api.post("/{token}/cases/{case_id}/refusal", summary="the shopkeeper refuses to compensate: the shop is closed")
async def refuse(
    services: ServicesDep,
    token: Token,
    case_id: Annotated[Id, Path()],
    body: RefusalIn,
    idempotency_key: IdemKey = None,
) -> Response:
    from sanctions.seller import refuse as refuse_

    return _present(
        await _in_session(
            services, lambda s: refuse_(s, token, case_id, reason=body.reason, idempotency_key=idempotency_key)
        )
    )


async def read_files(uploads: list[Any]) -> list[Any]:
    """The uploads checked (``sanctions.attachments.check``): 422 over the size limit, 415 a type not accepted."""
    from sanctions.attachments import MAX_ATTACHMENT, check

    out = []
    for u in uploads:
        if not isinstance(u, StarletteUpload) or not u.filename:
            continue  # a file input left empty
        data = await u.read(MAX_ATTACHMENT + 1)
        out.append(check(u.filename, u.content_type or "", data, what="file"))
    return out


@api.post(
    "/{token}/cases/{case_id}/appeal",
    summary="the shopkeeper appeals a closure or a ban: a statement and up to 5 files (PNG, JPEG, PDF, text, CSV; "
    "5 MB each)",
)
async def appeal(
    services: ServicesDep,
    token: Token,
    case_id: Annotated[Id, Path()],
    statement: Annotated[Text, Form(min_length=1, max_length=MAX_STATEMENT)],
    files: Annotated[list[UploadFile] | None, File(description="the files that support the appeal")] = None,
    idempotency_key: IdemKey = None,
) -> Response:
    from sanctions.seller import appeal as appeal_
    from sanctions.seller import shop_of

    await _in_session(services, lambda s: shop_of(s, token))  # a forged or expired link is refused first
    checked = await read_files(list(files or []))
    return _present(
        await _in_session(
            services,
            lambda s: appeal_(s, token, case_id, statement=statement, files=checked, idempotency_key=idempotency_key),
        )
    )


def download(name: str, data: bytes, sha256: str | None = None) -> Response:
    """A stored file as a download only: never rendered, never sniffed, sandboxed if opened anyway."""
    headers = {
        "Content-Disposition": f'attachment; filename="{name}"',
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Cache-Control": "no-store",
    }
    if sha256:
        headers["X-Content-SHA256"] = sha256
    return Response(data, media_type="application/octet-stream", headers=headers)


@api.get(
    "/{token}/cases/{case_id}/appeal-files/{file_id}",
    summary="a file of the shop's appeal, as a download",
    response_class=Response,
)
async def appeal_file(
    services: ServicesDep, token: Token, case_id: Annotated[Id, Path()], file_id: Annotated[Id, Path()]
) -> Response:
    import hashlib

    from sanctions.seller import appeal_file as file_

    name, _, data = await _in_session(services, lambda s: file_(s, token, case_id, file_id))
    return download(name, data, hashlib.sha256(data).hexdigest())


# --------------------------------------------------------------------------- the page for people

_PAGE = jinja2.Environment(autoescape=True).from_string(
    """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Your shop's cases</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:16px/1.5 system-ui,sans-serif;margin:0 auto;max-width:60rem;padding:1rem;overflow-wrap:anywhere}
section.case{border:1px solid #bbb;border-radius:6px;padding:.5rem 1rem;margin:1rem 0}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem}dt{font-weight:600}dd{margin:0}
ul.claims{list-style:none;padding:0}ul.claims li{border-top:1px solid #ddd;padding:.5rem 0}
label{display:block;font-weight:600;margin-top:.5rem}textarea,input[type=text]{width:100%;box-sizing:border-box}
button{margin-top:.5rem;padding:.4rem .8rem}#error{color:#a00;font-weight:600}#message{color:#060;font-weight:600}
blockquote{margin:.5rem 0;padding:.3rem .8rem;border-left:4px solid #888;background:#f4f4f4}
</style></head>
<body>
<h1>Your shop's cases</h1>
{% if message %}<p id="message" role="status">{{ message }}</p>{% endif %}
{% if error %}<p id="error" role="alert">{{ error }}</p>{% endif %}
{% if v %}
<dl>
<dt>Shop</dt><dd id="shop">{{ v.shop_name }} ({{ v.shop_id }})</dd>
<dt>Status</dt><dd id="shop-status">{{ v.shop_status }}</dd>
<dt>Still owed</dt><dd id="owed">{{ "%.2f"|format(v.owed) }} yuan</dd>
</dl>
{% for c in v.cases %}
<section class="case" id="case-{{ c.case_id }}" aria-labelledby="h-{{ c.case_id }}">
<h2 id="h-{{ c.case_id }}">Case {{ c.case_id }}: <span class="status">{{ c.status|replace("_", " ") }}</span></h2>
<dl>
<dt>Opened</dt><dd>{{ c.opened_at.strftime("%Y-%m-%d") }}</dd>
{% if c.public_reason %}<dt>Measure</dt><dd class="reason">{{ c.public_reason }}</dd>{% endif %}
{% if c.reasons %}<dt>Why it opened</dt>
<dd><ul>{% for r in c.reasons %}<li>{{ r }}</li>{% endfor %}</ul></dd>{% endif %}
</dl>
{% if c.claims %}
<h3>Claims ({{ "%.2f"|format(c.owed) }} yuan unpaid)</h3>
<ul class="claims">
{% for k in c.claims %}<li id="claim-{{ k.claim_id }}">
Claim {{ k.claim_id }}: buyer {{ k.buyer_id }}, orders {{ k.order_ids|join(", ") }}:
<strong>{{ "%.2f"|format(k.amount) }} yuan</strong> (refund {{ "%.2f"|format(k.refund) }} + compensation
{{ "%.2f"|format(k.punitive) }}), by {{ k.deadline_at.strftime("%Y-%m-%d") }}.
Status: <span class="claim-status">{{ k.status }}</span>{% if k.payment_ref %} (payment {{ k.payment_ref }}){% endif %}
{% if k.can_pay %}
<form method="post"><input type="hidden" name="action" value="pay">
<input type="hidden" name="claim_id" value="{{ k.claim_id }}">
<label for="ref-{{ k.claim_id }}">Payment reference (transfer id)</label>
<input type="text" id="ref-{{ k.claim_id }}" name="payment_ref" maxlength="200" required>
<button type="submit" id="pay-{{ k.claim_id }}">Record payment</button></form>
{% endif %}
</li>{% endfor %}
</ul>
{% endif %}
{% for a in c.appeals %}<blockquote class="appeal-statement">
<p>Your appeal of {{ a.at.strftime("%Y-%m-%d") }}:</p><p>{{ a.statement }}</p></blockquote>{% endfor %}
{% if c.appeal_files %}<ul class="appeal-files">{% for f in c.appeal_files %}
<li><a href="{{ base }}/cases/{{ c.case_id }}/appeal-files/{{ f.file_id }}" download>{{ f.filename }}</a>
({{ f.content_type }}, {{ "{:,}".format(f.size) }} bytes, sha256 {{ f.sha256[:16] }}…)</li>{% endfor %}</ul>{% endif %}
{% if c.can_appeal %}
<form method="post" enctype="multipart/form-data" class="appeal"><input type="hidden" name="action" value="appeal">
<input type="hidden" name="case_id" value="{{ c.case_id }}">
<label for="statement-{{ c.case_id }}">Your statement (why the measure is wrong)</label>
<textarea id="statement-{{ c.case_id }}" name="statement" rows="5" maxlength="{{ max_statement }}" required></textarea>
<label for="files-{{ c.case_id }}">Files that support it (PNG, JPEG, PDF, text or CSV; at most 5, 5 MB each)</label>
<input type="file" id="files-{{ c.case_id }}" name="files" multiple accept=".png,.jpg,.jpeg,.pdf,.txt,.csv">
<button type="submit" id="appeal-{{ c.case_id }}">File the appeal</button></form>
{% endif %}
{% if c.can_refuse %}
<form method="post"><input type="hidden" name="action" value="refuse">
<input type="hidden" name="case_id" value="{{ c.case_id }}">
<label for="refuse-reason-{{ c.case_id }}">Refuse to compensate (your shop will be closed)</label>
<input type="text" id="refuse-reason-{{ c.case_id }}" name="reason" maxlength="2000">
<button type="submit" id="refuse-{{ c.case_id }}">Refuse and close my shop</button></form>
{% endif %}
</section>
{% else %}<p>Your shop has no case.</p>{% endfor %}
{% endif %}
</body></html>"""
)

pages = APIRouter(include_in_schema=False)
#: the page runs no script and loads nothing: only its own inline style, forms back to itself
_PAGE_CSP = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"


def _html(status: int, **ctx: Any) -> HTMLResponse:
    return HTMLResponse(
        _PAGE.render(max_statement=MAX_STATEMENT, **ctx),
        status_code=status,
        headers={"Cache-Control": "no-store", "Content-Security-Policy": _PAGE_CSP},
    )


async def _page(
    services: Any, token: str, status: int = 200, message: str | None = None, error: str | None = None
) -> HTMLResponse:
    """The shop's page (``error``: why the action just tried was refused, shown above the cases)."""
    from sanctions.seller import view

    base = f"/v1/seller-links/{token}"
    try:
        v = await _in_session(services, lambda s: view(s, token))
    except DajiaError as exc:
        return _html(status_for(exc), error=str(exc), v=None, message=message, base=base)
    return _html(status, v=v, message=message, error=error, base=base)


@pages.get("/seller/{token}")
async def seller_page(services: ServicesDep, token: Token) -> HTMLResponse:
    return await _page(services, token)


def _int(form: Any, name: str) -> int:
    raw = form.get(name)
    if not isinstance(raw, str) or not raw.isdigit() or len(raw) > 9:
        raise DajiaError(f"{name}: a number is needed")
    return int(raw)


def _text(form: Any, name: str, limit: int) -> str:
    from core.db import storable_text

    raw = form.get(name)
    value = raw if isinstance(raw, str) else ""
    if len(value) > limit:
        raise DajiaError(f"{name}: at most {limit} characters")
    problem = storable_text(value)
    if problem is not None:
        raise DajiaError(f"{name}: {problem}")
    return value


@pages.post("/seller/{token}")
async def seller_page_action(request: Request, services: ServicesDep, token: Token) -> HTMLResponse:
    from sanctions import seller

    origin = request.headers.get("origin")
    if origin and origin != f"{request.url.scheme}://{request.url.netloc}":
        return _html(403, error="refused: this form was sent from another site", v=None, message=None, base="")
    try:
        form = await request.form(max_files=10, max_fields=20)
    except Exception as exc:  # a malformed body (multipart or urlencoded)
        return await _page(services, token, 400, error=f"the form could not be read: {exc}")
    try:
        action = form.get("action")
        if action == "pay":
            claim_id, ref = _int(form, "claim_id"), _text(form, "payment_ref", 200).strip()
            await _in_session(services, lambda s: seller.pay(s, token, claim_id, payment_ref=ref))
            done = f"Payment of claim {claim_id} recorded; the buyer is asked to confirm it."
        elif action == "refuse":
            case_id, reason = _int(form, "case_id"), _text(form, "reason", 2000)
            await _in_session(services, lambda s: seller.refuse(s, token, case_id, reason=reason))
            done = f"Your refusal is recorded: case {case_id} is closed."
        elif action == "appeal":
            case_id, statement = _int(form, "case_id"), _text(form, "statement", MAX_STATEMENT)
            await _in_session(services, lambda s: seller.shop_of(s, token))
            checked = await read_files(form.getlist("files"))
            await _in_session(services, lambda s: seller.appeal(s, token, case_id, statement=statement, files=checked))
            done = f"Your appeal of case {case_id} is filed ({len(checked)} file(s)); a reviewer will decide it."
        else:
            raise DajiaError("action: one of pay, refuse, appeal")
    except DajiaError as exc:
        return await _page(services, token, status_for(exc), error=str(exc))
    finally:
        await form.close()
    return await _page(services, token, message=done)


def mount(app: FastAPI) -> None:
    app.include_router(api)
    app.include_router(pages)
