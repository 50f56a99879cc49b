"""The console's pages: thin handlers that authenticate, check CSRF, call a service, render a template.

Reads run on the service's plain engine in a worker thread; every change goes through the sanction
workflow's services (``sanctions.cases``, ``sanctions.campaigns``, ``sanctions.disclosure``) or the
console's own audited finding service, each in one transaction.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import jinja2
import sqlalchemy as sa
from fastapi import APIRouter, FastAPI, Request
from sqlalchemy.orm import Session
from starlette.datastructures import FormData
from starlette.responses import HTMLResponse, RedirectResponse, Response

from core.errors import DajiaError, NotFound
from serving.console.db import session_secret
from serving.console.security import (
    LOGIN_COOKIE,
    LOGIN_SECONDS,
    ROLES,
    SESSION_COOKIE,
    SESSION_SECONDS,
    Sessions,
    User,
    apply_headers,
    clear_cookie,
    csrf_ok,
    same_origin,
    set_cookie,
)
from serving.errors import status_for
from serving.services import Services

T = TypeVar("T")
HERE = Path(__file__).resolve().parent
router = APIRouter(prefix="/console", include_in_schema=False)


# --------------------------------------------------------------------------- state and rendering


@dataclass
class ConsoleState:
    sessions: Sessions
    market: Any
    drift: Any


_INIT_LOCK = threading.Lock()


def _state(services: Services) -> ConsoleState:
    st: ConsoleState | None = services.extra.get("console")
    if st is not None:
        return st
    with _INIT_LOCK:
        st = services.extra.get("console")
        if st is None:
            from serving.console.evidence import MarketIndex
            from serving.console.monitor import DriftCache

            st = ConsoleState(
                sessions=Sessions(
                    session_secret(services.engine), services.engine, services.options.auth_cache_seconds
                ),
                market=MarketIndex(services.marketplace) if services.marketplace is not None else None,
                drift=DriftCache(),
            )
            services.extra["console"] = st
    return st


async def state_of(request: Request) -> tuple[Services, ConsoleState]:
    services: Services = request.state.services
    st: ConsoleState | None = services.extra.get("console")
    if st is None:
        st = await asyncio.to_thread(_state, services)
    return services, st


def _fmt_time(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, datetime):
        return v.strftime("%Y-%m-%d %H:%M")
    return str(v)


def _fmt_score(v: Any) -> str:
    return "—" if v is None else f"{float(v):.3f}"


def _fmt_money(v: Any) -> str:
    return "—" if v is None else f"¥{float(v):,.2f}"


@lru_cache(maxsize=1)
def templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(HERE / "templates")),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["t"] = _fmt_time
    env.filters["score"] = _fmt_score
    env.filters["money"] = _fmt_money
    env.filters["pct"] = lambda v: "—" if v is None else f"{100 * float(v):.1f}%"
    return env


def render(name: str, status: int = 200, user: User | None = None, **ctx: Any) -> HTMLResponse:
    html = templates().get_template(name).render(user=user, **ctx)
    return apply_headers(HTMLResponse(html, status_code=status))


class ConsoleError(Exception):
    """Rendered as an HTML error page with the console's headers (not the API's JSON errors)."""

    def __init__(self, status: int, title: str, message: str, user: User | None = None) -> None:
        super().__init__(message)
        self.status, self.title, self.message, self.user = status, title, message, user


def refused(exc: DajiaError, title: str, user: User | None = None, *, missing: str = "Not found") -> ConsoleError:
    """A domain error as the console's HTML error page: its status from ``serving.errors``' one table
    (the API's), titled ``missing`` when that is 404 and ``title`` otherwise."""
    status = status_for(exc)
    return ConsoleError(status, missing if status == 404 else title, str(exc), user)


class SignInRequired(Exception):
    def __init__(self, next_path: str) -> None:
        self.next_path = next_path


async def _console_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ConsoleError)
    return render("error.html", status=exc.status, user=exc.user, title=exc.title, message=exc.message)


async def _sign_in_required(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SignInRequired)
    return apply_headers(RedirectResponse(f"/console/login?next={quote(exc.next_path)}", status_code=303))


async def current_user(request: Request, admin: bool = False) -> User:
    _, st = await state_of(request)
    user = await asyncio.to_thread(st.sessions.user, request)
    if user is None:
        raise SignInRequired(request.url.path)
    if admin and not user.is_admin:
        raise ConsoleError(403, "Admins only", "This page is for admins; your role is reviewer.", user)
    return user


async def checked_form(request: Request, user: User) -> FormData:
    """The POSTed form, refused unless it carries the session's CSRF token and comes from this origin."""
    form = await request.form()
    token = form.get("csrf_token")
    if not same_origin(request) or not csrf_ok(user, token if isinstance(token, str) else None):
        raise ConsoleError(
            403,
            "Form rejected",
            "The form's security token is missing or does not match your session. Reload the page and submit it again.",
            user,
        )
    return form


def field(form: FormData, name: str, limit: int = 2000) -> str:
    v = form.get(name)
    return v.strip()[:limit] if isinstance(v, str) else ""


async def read(services: Services, fn: Callable[[Session], T]) -> T:
    """A read on the service's plain engine (no write lock on SQLite), in a worker thread."""

    def work() -> T:
        with Session(services.engine) as session:
            return fn(session)

    return await asyncio.to_thread(work)


async def write(services: Services, fn: Callable[[Session], T]) -> T:
    """A change through the sanction store's sessions (one unit of work inside ``fn``)."""
    if services.sanctions is None:
        raise ConsoleError(503, "Workflow unavailable", "The sanction workflow is not configured in this service.")

    def work() -> T:
        with services.sanctions.sessions() as session:
            return fn(session)

    return await asyncio.to_thread(work)


def _actor(user: User) -> Any:
    from sanctions.workflow import Actor, Role

    return Actor(user.actor_id, Role(user.role))


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def redirect(url: str) -> Response:
    return apply_headers(RedirectResponse(url, status_code=303))


def notice(request: Request, name: str) -> str | None:
    """The short notice a redirect left in the query string (``?saved=...``), if any."""
    return request.query_params.get(name, "")[:64] or None


# --------------------------------------------------------------------------- sign-in


@router.get("")
@router.get("/")
async def home(request: Request) -> Response:
    await current_user(request)
    return redirect("/console/queue")


def _safe_next(value: str) -> str:
    return value if value.startswith("/console/") and "//" not in value and "\\" not in value else "/console/queue"


@router.get("/login")
async def login_form(request: Request) -> Response:
    _, st = await state_of(request)
    token, cookie = st.sessions.login_token()
    resp = render("login.html", token=token, next=_safe_next(request.query_params.get("next", "")), error=None)
    set_cookie(resp, request, LOGIN_COOKIE, cookie, LOGIN_SECONDS)
    return resp


@router.post("/login")
async def login(request: Request) -> Response:
    services, st = await state_of(request)
    form = await request.form()
    nxt = _safe_next(field(form, "next", 300))

    def again(status: int, error: str) -> Response:
        token, cookie = st.sessions.login_token()
        resp = render("login.html", status=status, token=token, next=nxt, error=error)
        set_cookie(resp, request, LOGIN_COOKIE, cookie, LOGIN_SECONDS)
        return resp

    if not same_origin(request) or not st.sessions.check_login_token(request, field(form, "csrf_token", 200)):
        return again(403, "The sign-in form expired or was not sent from this page. Please try again.")
    key = await asyncio.to_thread(services.keys.authenticate, field(form, "api_key", 200))
    if key is None:
        return again(401, "Unknown or revoked API key.")
    if key.role.value not in ROLES:
        return again(403, f"A {key.role.value} key cannot sign in to the console; use a reviewer or admin key.")
    token, _user = st.sessions.issue(key.key_id, key.name, key.role.value)
    resp = redirect(nxt)
    set_cookie(resp, request, SESSION_COOKIE, token, SESSION_SECONDS)
    clear_cookie(resp, LOGIN_COOKIE)
    return resp


@router.post("/logout")
async def logout(request: Request) -> Response:
    user = await current_user(request)
    await checked_form(request, user)
    resp = redirect("/console/login")
    clear_cookie(resp, SESSION_COOKIE)
    return resp


@router.get("/static/{name}")
async def static(name: str) -> Response:
    files = {"console.css": "text/css; charset=utf-8"}
    if name not in files:
        raise ConsoleError(404, "Not found", "No such file.")
    resp = Response((HERE / "static" / name).read_bytes(), media_type=files[name])
    return apply_headers(resp, {"Cache-Control": "private, max-age=300"})


# --------------------------------------------------------------------------- queue and cases


@router.get("/queue")
async def queue(request: Request) -> Response:
    from serving.console.queue import AGES, STATUS_CHOICES, QueueFilter, load_queue

    user = await current_user(request)
    services, _ = await state_of(request)
    f = QueueFilter.parse(request.query_params)
    page = await read(services, lambda s: load_queue(s.connection(), f, _now()))
    return render("queue.html", user=user, f=f, page=page, ages=AGES, statuses=list(STATUS_CHOICES))


def _case_id(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= 2**62:
        raise ConsoleError(404, "No such case", f"There is no case {raw[:40]!r}.")
    return value


async def _case_page(request: Request, user: User, case_id: int, status: int = 200, **extra: Any) -> Response:
    from sanctions.evidence import compare
    from sanctions.schemas import PROOF_KINDS
    from serving.console.evidence import DECISION_ACTIONS, load_case_page

    services, st = await state_of(request)
    try:
        page, frozen = await read(
            services, lambda s: (load_case_page(s, case_id, user.role, st.market), compare(s, case_id))
        )
    except NotFound as exc:
        raise refused(exc, "No such case", user, missing="No such case") from exc
    ctx: dict[str, Any] = {"conflict": None, "error": None, "done": None, "form": {}}
    ctx.update(extra)
    return render(
        "case.html",
        status=status,
        user=user,
        p=page,
        c=page.case,
        frozen=frozen,
        labels={a.value: t for a, t in DECISION_ACTIONS.items()},
        proof_kinds=PROOF_KINDS,
        idem=secrets.token_urlsafe(16),
        **ctx,
    )


@router.get("/cases/{case_id}")
async def case(request: Request, case_id: str) -> Response:
    user = await current_user(request)
    done = request.query_params.get("done", "")[:40] or None
    return await _case_page(request, user, _case_id(case_id), done=done)


@router.post("/cases/{case_id}/decision")
async def decide(request: Request, case_id: str) -> Response:
    from sanctions.cases import decide as decide_case
    from sanctions.cases import decide_appeal, escalate_case
    from sanctions.schemas import PROOF_KINDS, Evidence
    from serving.console.evidence import DECISION_ACTIONS

    user = await current_user(request)
    form = await checked_form(request, user)
    cid = _case_id(case_id)
    services, _ = await state_of(request)
    action = field(form, "action", 32)
    reason = field(form, "reason", 2000)
    kind = field(form, "evidence_kind", 48)
    ref = field(form, "evidence_ref", 500)
    idem = field(form, "idempotency_key", 100) or None
    # ban: when the form listed the shop's listings, only those left ticked are suspect
    suspects: list[str] | None = None
    if action == "ban" and field(form, "suspects_shown", 8):
        suspects = [v[:64] for v in form.getlist("suspect_listing") if isinstance(v, str) and v][:10_000]
        if not suspects:
            return await _case_page(request, user, cid, 400, error="Tick at least one suspect listing to ban.")
    kept = {"action": action, "reason": reason, "evidence_kind": kind, "evidence_ref": ref}
    try:
        expected = int(field(form, "expected_version", 12))
    except ValueError:
        return await _case_page(request, user, cid, 400, error="The form lost the case version; reload the page.")
    if action not in {a.value for a in DECISION_ACTIONS}:
        return await _case_page(request, user, cid, 400, error=f"'{action}' is not a decision.", form=kept)
    if not reason:
        return await _case_page(request, user, cid, 400, error="Give a reason for the decision.", form=kept)
    evidence = []
    if kind:
        if kind not in PROOF_KINDS and kind not in ("consumer_reports", "other"):
            return await _case_page(request, user, cid, 400, error=f"Unknown evidence kind '{kind}'.", form=kept)
        evidence.append(Evidence(kind=kind, ref=ref, detail=reason[:2000]))
    actor = _actor(user)
    key = f"console:{user.key_id}:{idem}" if idem else None

    def work(s: Session) -> Any:
        if action == "escalate":
            return escalate_case(s, cid, actor, reason=reason, expected_version=expected, idempotency_key=key)
        if action in ("reverse", "reject_appeal"):
            return decide_appeal(
                s, cid, action == "reverse", actor, reason=reason, evidence=evidence,
                expected_version=expected, idempotency_key=key,
            )  # fmt: skip
        return decide_case(
            s, cid, action, actor, reason=reason, evidence=evidence, suspect_listing_ids=suspects,
            expected_version=expected, idempotency_key=key,
        )  # fmt: skip

    try:
        result = await write(services, work)
    except DajiaError as exc:
        status = status_for(exc)
        if status == 404:
            raise refused(exc, "No such case", user, missing="No such case") from exc
        # a conflict (someone moved the case, or the move is not allowed from where it is now) shows the
        # case as it is now; any other refusal is an error next to the form
        outcome = {"conflict": str(exc)} if status == 409 else {"error": str(exc)}
        return await _case_page(request, user, cid, status, form=kept, **outcome)
    return redirect(f"/console/cases/{cid}?done={quote(result.action + ':' + result.new_status)}")


@router.get("/shops/{shop_id}")
async def shop(request: Request, shop_id: str) -> Response:
    """One shop's evidence without a case: what a reviewer checks for the audit sample."""
    from serving.console.db import VERDICTS, findings
    from serving.console.evidence import load_shop_evidence

    user = await current_user(request)
    services, st = await state_of(request)
    sid = shop_id[:64]

    def load(s: Session) -> tuple[Any, Any, list[Any]]:
        ev = load_shop_evidence(s, sid, st.market)
        latest = services.log.query(shop_id=sid, limit=1, shadow=False)
        prior = s.execute(sa.select(findings).where(findings.c.shop_id == sid).order_by(findings.c.finding_id)).all()
        return ev, (latest[0] if latest else None), list(prior)

    try:
        ev, latest, prior = await read(services, load)
    except NotFound as exc:
        raise refused(exc, "No such shop", user, missing="No such shop") from exc
    return render(
        "shop.html",
        user=user,
        ev=ev,
        latest=latest,
        findings=prior,
        verdicts=VERDICTS,
        idem=secrets.token_urlsafe(16),
    )


# --------------------------------------------------------------------------- audit sample


@router.get("/audit-sample")
async def audit_sample(request: Request) -> Response:
    from serving.console.db import VERDICTS
    from serving.console.sample import draw_sample, miss_estimate, recent_findings

    user = await current_user(request)
    services, _ = await state_of(request)

    def load(s: Session) -> tuple[Any, Any, Any]:
        conn = s.connection()
        return draw_sample(conn, 20), miss_estimate(conn), recent_findings(conn, 20)

    sample, est, recent = await read(services, load)
    return render(
        "sample.html",
        user=user,
        sample=sample,
        est=est,
        recent=recent,
        verdicts=VERDICTS,
        idem=secrets.token_urlsafe(16),
        saved=notice(request, "saved"),
        error=None,
    )


@router.post("/audit-sample/findings")
async def add_finding(request: Request) -> Response:
    from serving.console.sample import record_finding

    user = await current_user(request)
    form = await checked_form(request, user)
    services, _ = await state_of(request)
    shop_id = field(form, "shop_id", 64)
    verdict = field(form, "verdict", 16)
    note = field(form, "note", 2000)
    idem = field(form, "idempotency_key", 100)
    key = f"console:{user.key_id}:{idem}:{shop_id}" if idem else None
    try:
        await write(services, lambda s: record_finding(s, _actor(user), shop_id, verdict, note, idempotency_key=key))
    except DajiaError as exc:
        raise refused(exc, "Finding not saved", user, missing="No such shop") from exc
    return redirect(f"/console/audit-sample?saved={quote(shop_id)}")


@router.get("/audit-sample/verdicts.csv")
async def export_findings(request: Request) -> Response:
    from serving.console.sample import export_verdicts

    await current_user(request)
    services, _ = await state_of(request)
    frame = await asyncio.to_thread(export_verdicts, services.engine)
    out = frame.assign(decided_at=frame["decided_at"].dt.strftime("%Y-%m-%dT%H:%M:%S"))
    resp = Response(out.to_csv(index=False), media_type="text/csv; charset=utf-8")
    return apply_headers(resp, {"Content-Disposition": 'attachment; filename="console-verdicts.csv"'})


# --------------------------------------------------------------------------- model monitor


@router.get("/monitor")
async def monitor(request: Request) -> Response:
    from serving.console.monitor import agreement_by_version, precision_tables
    from serving.console.plots import PALETTE, histogram_svg

    user = await current_user(request)
    services, st = await state_of(request)
    served = services.holder.current
    drift = None
    drift_error = None
    chart = ""
    if served is not None:
        try:
            drift = await asyncio.to_thread(st.drift.get, served.runtime, services.marketplace)
        except Exception as exc:  # the rest of the page stays useful
            drift_error = f"{type(exc).__name__}: {exc}"
        if drift is not None and drift.score.psi is not None:
            chart = histogram_svg(
                [k / 10 for k in range(11)],
                [
                    (f"training ({drift.score.reference_as_of})", drift.score.ref_tenths, PALETTE[5]),
                    ("now", drift.score.now_tenths, PALETTE[0]),
                ],
                title="Share of shops per score band: training vs now",
            )

    def load(s: Session) -> tuple[Any, Any, Any]:
        from serving.console.sample import miss_estimate

        conn = s.connection()
        return agreement_by_version(conn), precision_tables(conn), miss_estimate(conn)

    agreement, (by_tier, by_band), est = await read(services, load)
    return render(
        "monitor.html",
        user=user,
        served=served,
        drift=drift,
        drift_error=drift_error,
        chart=chart,
        agreement=agreement,
        by_tier=by_tier,
        by_band=by_band,
        est=est,
    )


# --------------------------------------------------------------------------- admin: campaigns, disclosure


@router.get("/admin/campaigns")
async def campaigns(request: Request) -> Response:
    from sanctions.campaigns import ANNOUNCEABLE, list_campaigns
    from sanctions.models import CampaignCase, Case

    user = await current_user(request, admin=True)
    services, _ = await state_of(request)

    def load(s: Session) -> tuple[Any, int]:
        taken = sa.select(CampaignCase.case_id)
        ready = s.execute(
            sa.select(sa.func.count()).where(
                Case.status.in_([x.value for x in ANNOUNCEABLE]), Case.case_id.not_in(taken)
            )
        ).scalar_one()
        return list_campaigns(s), int(ready)

    items, ready = await read(services, load)
    return render(
        "campaigns.html",
        user=user,
        campaigns=list(reversed(items)),
        ready=ready,
        idem=secrets.token_urlsafe(16),
        done=notice(request, "done"),
        withdrawn=request.query_params.get("withdrawn") == "1",
    )


@router.get("/admin/campaigns/{campaign_id}")
async def campaign(request: Request, campaign_id: str) -> Response:
    from sanctions.campaigns import get_campaign

    user = await current_user(request, admin=True)
    services, _ = await state_of(request)
    cid = _case_id(campaign_id)
    try:
        view = await read(services, lambda s: get_campaign(s, cid))
    except NotFound as exc:
        raise refused(exc, "No such campaign", user, missing="No such campaign") from exc
    return render("campaign.html", user=user, c=view, idem=secrets.token_urlsafe(16))


@router.post("/admin/campaigns")
async def create_campaign(request: Request) -> Response:
    from sanctions.campaigns import create_campaign as create

    user = await current_user(request, admin=True)
    form = await checked_form(request, user)
    services, _ = await state_of(request)
    title = field(form, "title", 300)
    idem = field(form, "idempotency_key", 100)
    key = f"console:{user.key_id}:{idem}" if idem else None
    try:
        view = await write(services, lambda s: create(s, _actor(user), title=title, idempotency_key=key))
    except DajiaError as exc:
        raise refused(exc, "Not prepared", user) from exc
    return redirect(f"/console/admin/campaigns/{view.campaign_id}")


@router.post("/admin/campaigns/{campaign_id}/{step}")
async def campaign_step(request: Request, campaign_id: str, step: str) -> Response:
    from sanctions.campaigns import approve_campaign, publish_campaign

    user = await current_user(request, admin=True)
    await checked_form(request, user)
    services, _ = await state_of(request)
    cid = _case_id(campaign_id)
    steps = {"approve": approve_campaign, "publish": publish_campaign}
    if step not in steps:
        raise ConsoleError(404, "Not found", f"No campaign step '{step[:40]}'.", user)
    fn = steps[step]
    try:
        await write(services, lambda s: fn(s, cid, _actor(user)))
    except DajiaError as exc:
        raise refused(exc, f"Cannot {step}", user, missing="No such campaign") from exc
    return redirect(f"/console/admin/campaigns/{cid}")


@router.get("/admin/disclosures")
async def disclosures(request: Request) -> Response:
    from sanctions.models import Case, Disclosure, DisclosurePolicy

    user = await current_user(request, admin=True)
    services, _ = await state_of(request)

    def load(s: Session) -> tuple[Any, Any, int, dict[str, int]]:
        rows = s.execute(sa.select(Disclosure).order_by(Disclosure.disclosure_id.desc()).limit(200)).scalars().all()
        policies = s.execute(sa.select(DisclosurePolicy).order_by(DisclosurePolicy.name)).scalars().all()
        disclosed = sa.select(Disclosure.case_id)
        pending = s.execute(
            sa.select(sa.func.count()).where(Case.status == "closed", Case.case_id.not_in(disclosed))
        ).scalar_one()
        drafters = s.execute(
            sa.select(Disclosure.drafted_by, sa.func.count())
            .where(Disclosure.status == "proposed")
            .group_by(Disclosure.drafted_by)
        ).all()
        return list(rows), list(policies), int(pending), {str(d): int(n) for d, n in drafters}

    rows, policies, pending, proposed = await read(services, load)
    return render(
        "disclosures.html",
        user=user,
        rows=rows,
        policies=policies,
        pending=pending,
        proposed=proposed,
        me=_actor(user).actor_id,
        idem=secrets.token_urlsafe(16),
        done=notice(request, "done"),
        proposed_now=notice(request, "proposed"),
        withdrawn=request.query_params.get("withdrawn") == "1",
    )


@router.post("/admin/disclosures")
async def propose_disclosures(request: Request) -> Response:
    """An admin drafts entries of closed shops; a second admin approves them (four eyes)."""
    from sanctions.disclosure import propose_disclosures as propose

    user = await current_user(request, admin=True)
    form = await checked_form(request, user)
    services, _ = await state_of(request)
    basis = field(form, "basis", 2000)
    policy = field(form, "policy", 200) or None
    idem = field(form, "idempotency_key", 100)
    key = f"console:{user.key_id}:{idem}" if idem else None
    try:
        result = await write(
            services, lambda s: propose(s, _actor(user), basis=basis, policy=policy, idempotency_key=key)
        )
    except DajiaError as exc:
        raise refused(exc, "Not proposed", user) from exc
    return redirect(f"/console/admin/disclosures?proposed={len(result.proposed)}")


@router.post("/admin/disclosures/approve")
async def approve_disclosures(request: Request) -> Response:
    """A second admin, who drafted none of them, puts the proposed entries on the public list."""
    from sanctions.disclosure import approve_disclosures as approve

    user = await current_user(request, admin=True)
    form = await checked_form(request, user)
    services, _ = await state_of(request)
    idem = field(form, "idempotency_key", 100)
    key = f"console:{user.key_id}:{idem}" if idem else None
    try:
        result = await write(services, lambda s: approve(s, _actor(user), idempotency_key=key))
    except DajiaError as exc:
        raise refused(exc, "Not published", user) from exc
    return redirect(f"/console/admin/disclosures?done={len(result.published)}")


@router.post("/admin/disclosures/{disclosure_id}/withdraw")
async def withdraw_disclosure(request: Request, disclosure_id: int) -> Response:
    """An admin takes an entry off the public list, with a recorded reason."""
    from sanctions.disclosure import withdraw_disclosure as withdraw

    user = await current_user(request, admin=True)
    form = await checked_form(request, user)
    services, _ = await state_of(request)
    reason = field(form, "reason", 2000)
    idem = field(form, "idempotency_key", 100)
    key = f"console:{user.key_id}:{idem}" if idem else None
    try:
        await write(services, lambda s: withdraw(s, disclosure_id, _actor(user), reason=reason, idempotency_key=key))
    except DajiaError as exc:
        raise refused(exc, "Not withdrawn", user, missing="No such entry") from exc
    return redirect("/console/admin/disclosures?withdrawn=1")


@router.get("/{rest:path}")
async def not_found(request: Request, rest: str) -> Response:
    """Any other console address: an HTML 404 with the console's headers (registered last)."""
    raise ConsoleError(404, "Not found", f"There is no console page /console/{rest[:80]}.")


def mount(app: FastAPI) -> None:
    """Serve the console under ``/console`` (called once by ``serving.app.create_app``)."""
    app.include_router(router)
    app.add_exception_handler(ConsoleError, _console_error)
    app.add_exception_handler(SignInRequired, _sign_in_required)
