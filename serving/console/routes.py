"""The console's pages: thin handlers that authenticate, check CSRF, call a service, render a template.

Reads run on the service's plain engine in a worker thread; every change goes through the sanction
workflow's services (``sanctions.cases``, ``sanctions.campaigns``, ``sanctions.disclosure``) or the
console's own audited finding service, each in one transaction.
"""

from __future__ import annotations

import asyncio
import inspect
import secrets
import threading
from collections.abc import Awaitable, Callable
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

from core.db import MAX_ID, storable_text
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
            from serving.console.evidence import MarketIndex, StoredMarketIndex
            from serving.console.monitor import DriftCache

            market: Any = MarketIndex(services.marketplace) if services.marketplace is not None else None
            if market is None:  # dajia serve --data: the online store's histories
                market = StoredMarketIndex(services)
            st = ConsoleState(
                sessions=Sessions(session_secret(services.engine), services.engine),
                market=market,
                drift=DriftCache(on_report=services.metrics.set_drift),
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
        await form.close()  # an uploaded file's temporary file too
        raise ConsoleError(
            403,
            "Form rejected",
            "The form's security token is missing or does not match your session. Reload the page and submit it again.",
            user,
        )
    return form


def field(form: FormData, name: str, limit: int = 2000) -> str:
    v = form.get(name)
    return storable(v.strip()[:limit], name) if isinstance(v, str) else ""


def storable(value: str, name: str) -> str:
    """``value`` unless it holds what no database can store (NUL): then a 422 page naming the field."""
    why = storable_text(value)
    if why is not None:
        raise ConsoleError(422, "Form rejected", f"The field {name!r} {why}.")
    return value


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

    return Actor(user.actor_id, Role(user.role), via=user.via)


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
    token, _user = await asyncio.to_thread(st.sessions.issue, key.key_id, key.name, key.role.value)
    resp = redirect(nxt)
    set_cookie(resp, request, SESSION_COOKIE, token, SESSION_SECONDS)
    clear_cookie(resp, LOGIN_COOKIE)
    return resp


@router.post("/logout")
async def logout(request: Request) -> Response:
    user = await current_user(request)
    await checked_form(request, user)
    _, st = await state_of(request)
    await asyncio.to_thread(st.sessions.end, request)
    resp = redirect("/console/login")
    clear_cookie(resp, SESSION_COOKIE)
    return resp


@router.get("/static/{name}")
async def static(name: str) -> Response:
    files = {"console.css": "text/css; charset=utf-8", "console.js": "text/javascript; charset=utf-8"}
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

    def load(s: Session) -> tuple[Any, dict[str, str]]:
        from serving.console.team import people

        conn = s.connection()
        return load_queue(conn, f, _now(), actor_id=user.actor_id), people(conn)

    page, names = await read(services, load)
    return render(
        "queue.html",
        user=user,
        f=f,
        page=page,
        ages=AGES,
        statuses=list(STATUS_CHOICES),
        names=names,
        idem=secrets.token_urlsafe(16),
        notice=notice(request, "notice"),
        select=request.query_params.get("select") == "1",
    )


def _case_id(raw: str, what: str = "case") -> int:
    """An id from the address, or a 404 page: not a number, or beyond what the database holds."""
    try:
        value = int(raw) if len(raw) <= 20 else 0
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_ID:
        raise ConsoleError(404, f"No such {what}", f"There is no {what} {raw[:40]!r}.")
    return value


async def _case_page(request: Request, user: User, case_id: int, status: int = 200, **extra: Any) -> Response:
    from sanctions.evidence import compare
    from sanctions.schemas import PROOF_KINDS
    from serving.console.evidence import DECISION_ACTIONS, load_case_page
    from serving.console.team import case_extras, people

    services, st = await state_of(request)

    def load(s: Session) -> tuple[Any, dict[str, Any], dict[str, str], dict[str, str], Any]:
        page = load_case_page(s, case_id, user.role, st.market)
        frozen = compare(s, case_id)
        conn = s.connection()
        return page, case_extras(conn, case_id, _now()), people(conn), people(conn, everyone=True), frozen

    try:
        page, team, names, who, frozen = await read(services, load)
    except NotFound as exc:
        raise refused(exc, "No such case", user, missing="No such case") from exc
    ctx: dict[str, Any] = {"conflict": None, "error": None, "done": None, "form": {}, "team_notice": None}
    ctx.update(extra)
    ctx["cited"] = await asyncio.to_thread(_cited_reasons, services, str(page.case.shop_id))
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
        team=team,
        timeline=_timeline(page.case.events, team["items"]),
        names=names,
        who=who,
        today=_now().date().isoformat(),
        **ctx,
    )


def _cited_reasons(services: Services, shop_id: str) -> list[dict[str, Any]] | None:
    """The served model's reasons for the shop now, each with the evidence it cites (``models.evidence``);
    None without a model, a marketplace, or the shop in it, or when the shop is in the low tier."""
    served = services.holder.current
    if served is None:
        return None
    runtime = served.runtime
    stored = runtime.online_rows([shop_id])
    if shop_id not in stored:
        return None
    from markupsafe import Markup, escape

    X = runtime.matrix([stored[shop_id]])
    _, tiers = runtime.score(X)
    reasons = runtime.reason_details([shop_id], X, tiers, 3)[0]
    for r in reasons or []:
        for e in r["evidence"]:  # the words that drove a text score, marked: escaped first, then <mark>
            e["html"] = Markup(str(escape(e["text"])).replace("«", "<mark>").replace("»", "</mark>"))
    return reasons


def _timeline(events: list[Any], items: list[Any]) -> list[dict[str, Any]]:
    """The case's events and the console's notes and attachments in one list, oldest first."""
    rows = [{"at": e.at, "kind": "event", "e": e} for e in events]
    rows += [{"at": i.at, "kind": i.kind, "i": i} for i in items]
    return sorted(rows, key=lambda r: r["at"])


@router.get("/cases/{case_id}")
async def case(request: Request, case_id: str) -> Response:
    user = await current_user(request)
    done = request.query_params.get("done", "")[:40] or None
    return await _case_page(request, user, _case_id(case_id), done=done, team_notice=notice(request, "notice"))


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
    held = await _held_by_other(services, cid, user)
    if held is not None:
        return await _case_page(request, user, cid, 409, form=kept, conflict=held)

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
    await _release_after_decision(services, user, cid)
    return redirect(f"/console/cases/{cid}?done={quote(result.action + ':' + result.new_status)}")


# --------------------------------------------------------------------------- the team: claims, next case, notes


async def _held_by_other(services: Services, case_id: int, user: User) -> str | None:
    """Why ``user`` may not decide ``case_id`` now (someone else holds it), or None."""
    from serving.console.team import holder, people

    def load(s: Session) -> str | None:
        conn = s.connection()
        h = holder(conn, case_id, _now())
        if h is None or h.actor_id == user.actor_id:
            return None
        who = people(conn).get(h.actor_id, h.actor_id)
        return f"{who} has claimed case {case_id} until {h.expires_at:%H:%M} UTC; your decision was not recorded"

    return await read(services, load)


async def _release_after_decision(services: Services, user: User, case_id: int) -> None:
    from serving.console.team import release

    await write(services, lambda s: release(s, _actor(user), case_id, audit=False))


def _team_error(exc: DajiaError, user: User, what: str) -> ConsoleError:
    return refused(exc, what, user, missing="No such case")


@router.post("/next")
async def next_case(request: Request) -> Response:
    """Claim the next waiting case in this person's queue order (their filters) and open it."""
    from serving.console.queue import QueueFilter, _where
    from serving.console.team import next_case as take_next

    user = await current_user(request)
    form = await checked_form(request, user)
    services, _ = await state_of(request)
    f = QueueFilter.parse(form)
    f = QueueFilter(tier=f.tier, category=f.category, age=f.age, model_version=f.model_version, q=f.q, tag=f.tag)
    now = _now()
    where = _where(f, now)
    leaving = field(form, "current", 20)
    skip = int(leaving) if leaving.isdigit() else None
    cid = await write(services, lambda s: take_next(s, _actor(user), where, now=now, skip=skip))
    if cid is None:
        return redirect(f"/console/queue?{f.query()}&notice=empty" if f.query() else "/console/queue?notice=empty")
    return redirect(f"/console/cases/{cid}")


@router.post("/cases/{case_id}/team/{what}")
async def case_team(request: Request, case_id: str, what: str) -> Response:
    """Claim, release, assign (admins), tag, untag, snooze, note: each audited, back to the case page."""
    from serving.console.team import add_note, claim, release, set_tag, snooze

    user = await current_user(request)
    form = await checked_form(request, user)
    services, _ = await state_of(request)
    cid = _case_id(case_id)
    actor = _actor(user)
    idem = field(form, "idempotency_key", 100)
    key = f"console:{user.key_id}:{idem}" if idem else None
    if what == "note":
        body = field(form, "body", 5000)

        def work(s: Session) -> Any:
            return add_note(s, actor, cid, body, key=key)
    elif what == "claim":

        def work(s: Session) -> Any:
            return claim(s, actor, cid)
    elif what == "assign":
        assignee = field(form, "assignee", 80)
        if not user.is_admin:
            raise ConsoleError(403, "Admins only", "Only an admin assigns cases to someone else.", user)

        def work(s: Session) -> Any:
            return claim(s, actor, cid, assignee=assignee)
    elif what == "release":

        def work(s: Session) -> Any:
            return release(s, actor, cid)
    elif what in ("tag", "untag"):
        tag = field(form, "tag", 60)

        def work(s: Session) -> Any:
            return set_tag(s, actor, cid, tag, remove=what == "untag")
    elif what == "snooze":
        raw = field(form, "until", 20)
        try:
            until = datetime.fromisoformat(raw) if raw else None
        except ValueError:
            return await _case_page(request, user, cid, 400, error=f"'{raw}' is not a date (YYYY-MM-DD).")

        def work(s: Session) -> Any:
            return snooze(s, actor, cid, until)
    else:
        raise ConsoleError(404, "Not found", f"No case action '{what[:40]}'.", user)
    try:
        await write(services, work)
    except DajiaError as exc:
        status = status_for(exc)
        if status == 404:
            raise refused(exc, "No such case", user, missing="No such case") from exc
        kept = {"note": field(form, "body", 5000)}
        outcome = {"conflict": str(exc)} if status == 409 else {"error": str(exc)}
        return await _case_page(request, user, cid, status, form=kept, **outcome)
    return redirect(f"/console/cases/{cid}?notice={what}")


@router.post("/cases/{case_id}/attachments")
async def add_attachment(request: Request, case_id: str) -> Response:
    from starlette.datastructures import UploadFile

    from serving.console.team import MAX_ATTACHMENT
    from serving.console.team import add_attachment as attach

    user = await current_user(request)
    cid = _case_id(case_id)
    length = int(request.headers.get("content-length") or 0)
    if length > MAX_ATTACHMENT + 64 * 1024:
        return await _case_page(
            request, user, cid, 413, error=f"The file is over the limit of {MAX_ATTACHMENT:,} bytes."
        )
    form = await checked_form(request, user)
    services, _ = await state_of(request)
    upload = form.get("file")
    filename = upload.filename or "" if isinstance(upload, UploadFile) else ""
    ctype = upload.content_type or "" if isinstance(upload, UploadFile) else ""
    data = await upload.read(MAX_ATTACHMENT + 1) if isinstance(upload, UploadFile) else b""
    await form.close()
    if not filename:
        return await _case_page(request, user, cid, 400, error="Choose a file to attach.")
    idem = field(form, "idempotency_key", 100)
    key = f"console:{user.key_id}:{idem}" if idem else None
    try:
        await write(services, lambda s: attach(s, _actor(user), cid, filename, ctype, data, key=key))
    except DajiaError as exc:
        if status_for(exc) == 404:
            raise refused(exc, "No such case", user, missing="No such case") from exc
        return await _case_page(request, user, cid, status_for(exc), error=str(exc))
    return redirect(f"/console/cases/{cid}?notice=attachment")


@router.get("/cases/{case_id}/attachments/{attachment_id}")
async def get_attachment(request: Request, case_id: str, attachment_id: str) -> Response:
    """An attachment, served only as a download: opaque type, attachment disposition, sandboxed."""
    from serving.console.team import attachment

    user = await current_user(request)
    services, _ = await state_of(request)
    cid, aid = _case_id(case_id), _case_id(attachment_id)
    try:
        name, data = await read(services, lambda s: attachment(s.connection(), cid, aid))
    except NotFound as exc:
        raise refused(exc, "No such attachment", user, missing="No such attachment") from exc
    resp = Response(data, media_type="application/octet-stream")
    return apply_headers(
        resp,
        {
            "Content-Disposition": f'attachment; filename="{name}"',
            "Content-Security-Policy": "default-src 'none'; sandbox",
        },
    )


@router.get("/cases/{case_id}/appeal-files/{file_id}")
async def get_appeal_file(request: Request, case_id: str, file_id: str) -> Response:
    """A file the seller attached to an appeal, served only as a download (as the console's own attachments)."""
    from sanctions.cases import appeal_file

    user = await current_user(request)
    services, _ = await state_of(request)
    cid, fid = _case_id(case_id), _case_id(file_id)
    try:
        name, _, data = await read(services, lambda s: appeal_file(s, cid, fid))
    except NotFound as exc:
        raise refused(exc, "No such file", user, missing="No such file") from exc
    resp = Response(data, media_type="application/octet-stream")
    return apply_headers(
        resp,
        {
            "Content-Disposition": f'attachment; filename="{name}"',
            "Content-Security-Policy": "default-src 'none'; sandbox",
        },
    )


@router.post("/bulk")
async def bulk(request: Request) -> Response:
    """One action on the ticked cases, each decided and audited on its own; a summary of the outcomes."""
    from sanctions.cases import decide as decide_case
    from serving.console.team import claim, set_tag

    user = await current_user(request)
    form = await checked_form(request, user)
    services, _ = await state_of(request)
    action = field(form, "bulk_action", 16)
    reason = field(form, "reason", 2000)
    tag = field(form, "tag", 60)
    assignee = field(form, "assignee", 80)
    idem = field(form, "idempotency_key", 100)
    picked: list[tuple[int, int]] = []
    for raw in form.getlist("case"):
        cid_s, _, ver_s = str(raw).partition(":")
        if cid_s.isdigit() and ver_s.isdigit():
            picked.append((int(cid_s), int(ver_s)))
    picked = picked[:500]
    if not picked:
        raise ConsoleError(400, "Nothing selected", "Tick at least one case for a bulk action.", user)
    if action not in ("dismiss", "tag", "assign"):
        raise ConsoleError(400, "Unknown action", f"'{action}' is not a bulk action (dismiss, tag, assign).", user)
    if action == "dismiss" and not reason:
        raise ConsoleError(400, "Reason missing", "Give a reason for dismissing the ticked cases.", user)
    if action == "assign" and not user.is_admin:
        raise ConsoleError(403, "Admins only", "Only an admin assigns cases to someone else.", user)
    actor = _actor(user)
    results: list[tuple[int, str, str]] = []

    def one(s: Session, cid: int, version: int, key: str | None) -> Any:
        if action == "dismiss":
            return decide_case(s, cid, "dismiss", actor, reason=reason, expected_version=version, idempotency_key=key)
        if action == "tag":
            return set_tag(s, actor, cid, tag)
        return claim(s, actor, cid, assignee=assignee)

    for cid, version in picked:
        key = f"console:{user.key_id}:{idem}:{cid}" if idem else None
        if action == "dismiss":
            held = await _held_by_other(services, cid, user)
            if held is not None:
                results.append((cid, "conflict", held))
                continue

        def work(s: Session, cid: int = cid, version: int = version, key: str | None = key) -> Any:
            return one(s, cid, version, key)

        try:
            await write(services, work)
        except DajiaError as exc:
            results.append((cid, "conflict" if status_for(exc) == 409 else "refused", str(exc)))
            continue
        if action == "dismiss":
            await _release_after_decision(services, user, cid)
        results.append((cid, "done", ""))
    ok = sum(1 for r in results if r[1] == "done")
    return render(
        "bulk.html",
        user=user,
        action=action,
        results=results,
        ok=ok,
        failed=len(results) - ok,
    )


@router.get("/shops/{shop_id}")
async def shop(request: Request, shop_id: str) -> Response:
    """One shop's evidence without a case: what a reviewer checks for the audit sample."""
    from serving.console.db import VERDICTS, findings
    from serving.console.evidence import load_shop_evidence

    user = await current_user(request)
    services, st = await state_of(request)
    sid = storable(shop_id[:64], "shop_id")

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
        scores = services.settings.home / "scores.parquet"
        return draw_sample(conn, 20, scores), miss_estimate(conn), recent_findings(conn, 20)

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
    from serving.console.plots import PALETTE, histogram_svg, sparkline_svg, trend_svg

    user = await current_user(request)
    services, st = await state_of(request)
    served = services.holder.current
    drift = None
    drift_error = None
    chart = ""
    trend = ""
    sparks: dict[str, str] = {}
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

    def load(s: Session) -> tuple[Any, Any, Any, list[Any]]:
        from serving.console.drift_history import history
        from serving.console.sample import miss_estimate

        conn = s.connection()
        points = history(conn, served.runtime.name, served.runtime.version) if served is not None else []
        return agreement_by_version(conn), precision_tables(conn), miss_estimate(conn), points

    agreement, (by_tier, by_band), est, points = await read(services, load)
    if points:
        # the five features that moved most over the logged sweeps (the latest sweep's order breaks ties)
        names = sorted(points[-1].features, key=lambda n: -max(p.features.get(n, 0.0) for p in points))
        top = names[:5]
        trend = trend_svg(
            [p.as_of for p in points],
            [("score", [p.score_psi for p in points], PALETTE[0])]
            + [(n, [p.features.get(n, 0.0) for p in points], PALETTE[1 + i % 5]) for i, n in enumerate(top)],
            title="PSI against the training population, per logged sweep",
        )
        if drift is not None:
            sparks = {
                d.name: sparkline_svg([p.features.get(d.name, 0.0) for p in points], d.name)
                for d in drift.features[:25]
            }
    return render(
        "monitor.html",
        user=user,
        served=served,
        drift=drift,
        drift_error=drift_error,
        chart=chart,
        trend=trend,
        sweeps=len(points),
        sparks=sparks,
        agreement=agreement,
        by_tier=by_tier,
        by_band=by_band,
        est=est,
    )


@router.get("/dashboard")
async def dashboard(request: Request) -> Response:
    """Queue size and age, decisions per day and per reviewer, agreement with the model over time."""
    from serving.console.dashboard import load_dashboard
    from serving.console.plots import PALETTE, bars_svg
    from serving.console.team import people

    user = await current_user(request)
    services, _ = await state_of(request)

    def load(s: Session) -> tuple[Any, dict[str, str]]:
        conn = s.connection()
        return load_dashboard(conn, _now()), people(conn)

    d, names = await read(services, load)
    charts = {
        "ages": bars_svg([a for a, _ in d.ages], [n for _, n in d.ages], title="Waiting cases by age"),
        "days": bars_svg(
            [k for k, _ in d.days], [n for _, n in d.days], title=f"Decisions per day, last {d.window_days} days"
        ),
        "weeks": bars_svg(
            [w for w, _, _ in d.weeks],
            [share or 0.0 for _, _, share in d.weeks],
            title="Share of score-opened cases sanctioned (agreement with the model) per week",
            colour=PALETTE[1],
            percent=True,
        ),
    }
    return render("dashboard.html", user=user, d=d, names=names, charts=charts)


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
    cid = _case_id(campaign_id, "campaign")

    def load(s: Session) -> tuple[Any, dict[str, Any] | None]:
        view = get_campaign(s, cid)
        return view, (_campaign_preview(s, cid) if view.status in ("draft", "approved") else None)

    try:
        view, preview = await read(services, load)
    except NotFound as exc:
        raise refused(exc, "No such campaign", user, missing="No such campaign") from exc
    return render("campaign.html", user=user, c=view, preview=preview, idem=secrets.token_urlsafe(16))


def _campaign_preview(s: Session, campaign_id: int) -> dict[str, Any]:
    """What publishing would send, computed without writing: the announcement's facts as of now and the
    warning one seller would get (the same builders ``publish_campaign`` uses)."""
    from sanctions.campaigns import WARNING_TEXT, build_announcement
    from sanctions.models import Campaign, CampaignCase, Shop

    row = s.get(Campaign, campaign_id)
    assert row is not None
    ids = list(s.execute(sa.select(CampaignCase.case_id).where(CampaignCase.campaign_id == campaign_id)).scalars())
    sellers = sa.select(Shop.shop_id, Shop.shopkeeper_id).where(Shop.status != "closed")
    first = s.execute(sellers.order_by(Shop.shop_id).limit(1)).first()
    count = s.execute(sa.select(sa.func.count()).select_from(sellers.subquery())).scalar_one()
    return {
        "a": build_announcement(s, row, ids),
        "warning": WARNING_TEXT.format(campaign_id=campaign_id, title=row.title),
        "warning_to": (str(first.shopkeeper_id), str(first.shop_id)) if first else None,
        "sellers": int(count),
    }


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
    cid = _case_id(campaign_id, "campaign")
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

    q = request.query_params.get("q", "").strip()[:100]
    try:
        page_no = max(1, min(int(request.query_params.get("page", "1")), 1_000_000))
    except ValueError:
        page_no = 1
    per_page = 50
    total_rows = 0

    def load(s: Session) -> tuple[Any, Any, int, dict[str, int]]:
        nonlocal total_rows
        from sanctions.models import Shop
        from serving.console.queue import search_condition

        which = sa.select(Disclosure.disclosure_id).join(Case, Case.case_id == Disclosure.case_id)
        which = which.join(Shop, Shop.shop_id == Case.shop_id)
        if q:
            which = which.where(search_condition(q))
        total_rows = int(s.execute(sa.select(sa.func.count()).select_from(which.subquery())).scalar_one())
        ids = which.order_by(Disclosure.disclosure_id.desc()).limit(per_page).offset((page_no - 1) * per_page)
        rows = (
            s.execute(
                sa.select(Disclosure).where(Disclosure.disclosure_id.in_(ids)).order_by(Disclosure.disclosure_id.desc())
            )
            .scalars()
            .all()
        )
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
        q=q,
        page=page_no,
        pages=max(1, -(-total_rows // per_page)),
        total=total_rows,
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
async def withdraw_disclosure(request: Request, disclosure_id: str) -> Response:
    """An admin takes an entry off the public list, with a recorded reason."""
    from sanctions.disclosure import withdraw_disclosure as withdraw

    user = await current_user(request, admin=True)
    form = await checked_form(request, user)
    services, _ = await state_of(request)
    did = _case_id(disclosure_id, "entry")
    reason = field(form, "reason", 2000)
    idem = field(form, "idempotency_key", 100)
    key = f"console:{user.key_id}:{idem}" if idem else None
    try:
        await write(services, lambda s: withdraw(s, did, _actor(user), reason=reason, idempotency_key=key))
    except DajiaError as exc:
        raise refused(exc, "Not withdrawn", user, missing="No such entry") from exc
    return redirect("/console/admin/disclosures?withdrawn=1")


@router.get("/{rest:path}")
async def not_found(request: Request, rest: str) -> Response:
    """Any other console address: an HTML 404 with the console's headers (registered last)."""
    raise ConsoleError(404, "Not found", f"There is no console page /console/{rest[:80]}.")


def _as_page(handler: Callable[[Request, Any], Response | Awaitable[Response]]) -> Any:
    """The app's handler for an exception, answering console addresses with an HTML error page of the
    same status and headers (a database that is down: 503 with ``Retry-After``) instead of JSON."""

    async def page(request: Request, exc: Exception) -> Response:
        answer = handler(request, exc)
        if inspect.isawaitable(answer):
            answer = await answer
        if not request.url.path.startswith("/console"):
            return answer
        message = "The database cannot be reached right now. Try again in a moment; nothing was changed."
        resp = render("error.html", status=answer.status_code, title="Service unavailable", message=message)
        if "retry-after" in answer.headers:
            resp.headers["Retry-After"] = answer.headers["retry-after"]
        return resp

    return page


def mount(app: FastAPI) -> None:
    """Serve the console under ``/console`` (called once by ``serving.app.create_app``, after the app's
    error handlers, whose database errors it answers as HTML pages on console addresses)."""
    app.include_router(router)
    app.add_exception_handler(ConsoleError, _console_error)
    app.add_exception_handler(SignInRequired, _sign_in_required)
    for kind in (sa.exc.DBAPIError, sa.exc.TimeoutError):
        app.add_exception_handler(kind, _as_page(app.exception_handlers[kind]))
