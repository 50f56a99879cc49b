"""The public pages people read (no key): the announcement, the closed shops (search, paging) and how
affected buyers are compensated. HTML, laid out for phones and desktops; the JSON beside them stays
under ``/v1/public``. Rendered by ``sanctions.public`` from ``sanctions/templates``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Path, Query
from starlette.responses import HTMLResponse, RedirectResponse, Response

from core.errors import NotFound
from serving.deps import ServicesDep
from serving.routes.sanctions import _in_session

pages = APIRouter(prefix="/public", include_in_schema=False)


def _missing(text: str) -> HTMLResponse:
    body = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1"><title>Not found</title></head>'
        f'<body><p>{text}</p><p><a href="/public/closed-shops">Closed shops</a> · '
        '<a href="/public/compensation">How buyers are compensated</a></p></body></html>'
    )
    return HTMLResponse(body, status_code=404)


def _page(published: Any) -> HTMLResponse:
    """The announcement's frozen facts in today's page (its stored HTML keeps the layout of its day)."""
    from sanctions.campaigns import render_announcement_html

    return HTMLResponse(render_announcement_html(published.announcement, published.published_at))


@pages.get("")
async def index() -> Response:
    return RedirectResponse("/public/announcement", status_code=307)


@pages.get("/announcement")
async def latest_announcement(services: ServicesDep) -> Response:
    from sanctions.public import announcements

    published = await _in_session(services, announcements)
    if not published:
        return _missing("No announcement has been published yet. 尚未发布公告。")
    return _page(published[0])


@pages.get("/announcements/{campaign_id}")
async def one_announcement(services: ServicesDep, campaign_id: Annotated[int, Path(ge=1, le=2**62)]) -> Response:
    from sanctions.public import announcement

    try:
        found = await _in_session(services, lambda s: announcement(s, campaign_id))
    except NotFound:
        return _missing(f"No published announcement {campaign_id}. 没有第 {campaign_id} 期公告。")
    return _page(found)


@pages.get("/closed-shops")
async def closed_shops(
    services: ServicesDep,
    q: Annotated[str, Query(max_length=200)] = "",
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
) -> Response:
    from sanctions.public import closed_shops_page

    return HTMLResponse(await _in_session(services, lambda s: closed_shops_page(s, q=q, page=page)))


@pages.get("/compensation")
async def compensation(services: ServicesDep) -> Response:
    from sanctions.public import compensation_page

    st = services.settings
    return HTMLResponse(
        compensation_page(
            st.compensation_multiplier,
            st.compensation_minimum,
            st.affected_window_days,
            st.compensation_deadline_days,
        )
    )


def mount(app: FastAPI) -> None:
    app.include_router(pages)
