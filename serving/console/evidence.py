"""Everything the case page shows about a shop: the case, the shop, and the evidence around it.

The sanction store holds the case, its events and claims, and the storefront projection (shops,
listings frozen as evidence, orders). Complaints, test buys and reviews live in the marketplace the
service was started with (``dajia serve --data``); without one, the page says so instead of guessing.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.orm import Session

from core.errors import NotFound
from marketplace.schema import LINKAGE_FIELDS
from sanctions.cases import get_case
from sanctions.models import Case, Listing, Order, Shop
from sanctions.schemas import CaseView
from sanctions.workflow import TRANSITIONS, Action, CaseStatus
from serving.console.plots import PALETTE, Marker, Series, timeline_svg

#: actions a human takes from the case page, and the form each needs
DECISION_ACTIONS = {
    Action.CLOSE: "Close the shop (step 1: proven counterfeiter; needs proof)",
    Action.BAN: "Ban until compensated (step 2: suspected)",
    Action.DISMISS: "Dismiss (nothing to sanction)",
    Action.REJECT_APPEAL: "Reject the appeal (measure stays)",
    Action.REVERSE: "Uphold the appeal (reverse: shop restored, unpaid claims void)",
    Action.ESCALATE: "Escalate to closure (step 1: a claim is unpaid past its deadline)",
}
#: transitions a human may take in the table that the console has no single-case service for (none now;
#: kept so a new transition without a console form is explained on the page instead of silently missing)
NOT_FROM_CONSOLE: dict[Action, str] = {}


def allowed_actions(status: str, role: str) -> list[Action]:
    """The transitions of THE table a person of ``role`` may take from ``status`` (console-handled ones)."""
    out = []
    for (st, action), (_new, roles) in TRANSITIONS.items():
        if st.value == status and role in {r.value for r in roles} and action in DECISION_ACTIONS:
            out.append(action)
    order = list(DECISION_ACTIONS)
    return sorted(out, key=order.index)


class MarketIndex:
    """Row positions per shop of the marketplace's complaint and review tables, built once, lazily."""

    def __init__(self, mp: Any) -> None:
        self.mp = mp
        self._lock = threading.Lock()
        self._index: dict[str, dict[str, Any]] = {}
        self._brands: dict[str, float] | None = None

    def rows(self, table: str, shop_id: str) -> pd.DataFrame:
        frame: pd.DataFrame = getattr(self.mp, table)
        if table not in self._index:
            with self._lock:
                if table not in self._index:
                    self._index[table] = {str(k): v for k, v in frame.groupby("shop_id", sort=False).indices.items()}
        pos = self._index[table].get(shop_id)
        if pos is None:
            return frame.iloc[0:0]
        return frame.iloc[pos]

    def reference_prices(self) -> dict[str, float]:
        if self._brands is None:
            b = self.mp.brands
            self._brands = {str(k): float(v) for k, v in zip(b["brand"], b["reference_price"], strict=True)}
        return self._brands


class StoredMarketIndex:
    """The same lookups as :class:`MarketIndex` for a service started without the marketplace in memory
    (``dajia serve --data`` serves from the online feature store): a shop's complaints and reviews come
    from the history the store keeps for it (``features.online_store``, what its feature row was built
    from, refreshed by posted events), brand reference prices from the served model's fitted pipeline.
    A shop the store does not hold shows no complaints or reviews."""

    def __init__(self, services: Any) -> None:
        self.services = services

    def _runtime(self) -> Any:
        served = self.services.holder.current
        return None if served is None else served.runtime

    def rows(self, table: str, shop_id: str) -> pd.DataFrame:
        from features.pipeline import empty_frame

        runtime = self._runtime()
        mp = runtime.online_history([shop_id]) if runtime is not None else None
        if mp is None:
            return empty_frame(table)
        frame: pd.DataFrame = getattr(mp, table)
        return frame

    def reference_prices(self) -> dict[str, float]:
        runtime = self._runtime()
        pipeline = getattr(getattr(runtime, "model", None), "pipeline", None)
        for b in getattr(pipeline, "builders_", []):
            if hasattr(b, "brand_index_") and hasattr(b, "reference_price_"):
                return {str(k): float(v) for k, v in zip(b.brand_index_, b.reference_price_, strict=True)}
        return {}


@dataclass
class ListingRow:
    listing_id: str
    title: str
    brand: str | None
    price: float
    reference_price: float | None
    frozen: bool
    withdrawn: bool
    delisted: bool

    @property
    def price_ratio(self) -> float | None:
        if self.reference_price:
            return self.price / self.reference_price
        return None


@dataclass
class LinkedShop:
    shop_id: str
    name: str
    status: str
    fields: list[str]


@dataclass
class ShopEvidence:
    """What the store and the marketplace hold about one shop, for a case page or a shop check."""

    shop: dict[str, Any]
    listings: list[ListingRow]
    listings_total: int
    orders: int
    refunds: int
    buyers: int
    complaints: list[dict[str, Any]] = field(default_factory=list)
    test_buys: list[dict[str, Any]] = field(default_factory=list)
    reviews: list[dict[str, Any]] = field(default_factory=list)
    reviews_total: int = 0
    low_reviews: int = 0
    linked: list[LinkedShop] = field(default_factory=list)
    timeline_svg: str = ""
    marketplace_loaded: bool = False
    cases: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class CasePage:
    case: CaseView
    ev: ShopEvidence
    actions: list[Action] = field(default_factory=list)
    other_actions: dict[str, str] = field(default_factory=dict)


def _ts(v: Any) -> datetime | None:
    if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NaT:
        return None
    t = pd.Timestamp(v)
    if pd.isna(t):
        return None
    return t.to_pydatetime()


def _opt_str(v: Any) -> str | None:
    if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)):
        return None
    return str(v)


def linked_shops(session: Session, shop: Shop, limit: int = 50) -> list[LinkedShop]:
    """Other shops sharing an identifier (phone, e-mail, ID hash, bank account, device, address)."""
    found: dict[str, LinkedShop] = {}
    for name in LINKAGE_FIELDS:
        value = getattr(shop, name)
        if not value:
            continue
        col = getattr(Shop, name)
        rows = session.execute(
            sa.select(Shop.shop_id, Shop.name, Shop.status)
            .where(col == value, Shop.shop_id != shop.shop_id)
            .limit(limit)
        ).all()
        for sid, sname, status in rows:
            found.setdefault(sid, LinkedShop(sid, sname, status, [])).fields.append(name)
    return sorted(found.values(), key=lambda s: (s.status != "closed", s.shop_id))[:limit]


def load_shop_evidence(
    session: Session, shop_id: str, market: MarketIndex | None, markers: list[Marker] | None = None
) -> ShopEvidence:
    """The shop, its listings against brand prices, activity, complaints, test buys, reviews, links, timeline."""
    shop = session.get(Shop, shop_id)
    if shop is None:
        raise NotFound(f"shop '{shop_id}' does not exist")
    shop_info = {
        "shop_id": shop.shop_id,
        "name": shop.name,
        "category": shop.category,
        "status": shop.status,
        "opened_at": shop.opened_at,
        "shopkeeper_id": shop.shopkeeper_id,
        "business_registration": shop.business_registration,
        "business_phone": shop.business_phone,
        "business_email": shop.business_email,
    }
    listings_total = int(
        session.execute(sa.select(sa.func.count()).where(Listing.shop_id == shop.shop_id)).scalar_one()
    )
    refs = market.reference_prices() if market is not None else {}
    listings = [
        ListingRow(
            listing_id=li.listing_id,
            title=li.title,
            brand=li.brand,
            price=float(li.price),
            reference_price=refs.get(li.brand) if li.brand else None,
            frozen=bool(li.frozen),
            withdrawn=bool(li.withdrawn),
            delisted=li.delisted_at is not None,
        )
        for li in session.execute(
            sa.select(Listing).where(Listing.shop_id == shop.shop_id).order_by(Listing.price.desc()).limit(100)
        ).scalars()
    ]
    # put the most suspicious prices first: branded listings far below the brand's reference price
    listings.sort(key=lambda r: (r.price_ratio is None, r.price_ratio if r.price_ratio is not None else 0.0))
    order_rows = session.execute(
        sa.select(Order.ordered_at, Order.refunded_at, Order.buyer_id).where(Order.shop_id == shop.shop_id)
    ).all()
    ordered = [r.ordered_at for r in order_rows]
    refunded = [r.refunded_at for r in order_rows if r.refunded_at is not None]
    ev = ShopEvidence(
        shop=shop_info,
        listings=listings,
        listings_total=listings_total,
        orders=len(ordered),
        refunds=len(refunded),
        buyers=len({r.buyer_id for r in order_rows}),
        linked=linked_shops(session, shop),
        marketplace_loaded=market is not None,
    )
    ev.cases = [
        {"case_id": cid, "status": st, "opened_at": at}
        for cid, st, at in session.execute(
            sa.select(Case.case_id, Case.status, Case.opened_at)
            .where(Case.shop_id == shop.shop_id)
            .order_by(Case.case_id.desc())
        )
    ]
    complaint_times: list[datetime] = []
    review_times: list[datetime] = []
    if market is not None:
        comp = market.rows("complaints", shop.shop_id).sort_values("filed_at", ascending=False)
        for r in comp.itertuples(index=False):
            item = {
                "complaint_id": str(r.complaint_id),
                "filed_at": _ts(r.filed_at),
                "kind": str(r.kind),
                "source": str(r.source),
                "order_id": _opt_str(r.order_id),
            }
            (ev.test_buys if item["source"] == "test_buy" else ev.complaints).append(item)
            t = _ts(r.filed_at)
            if t is not None:
                complaint_times.append(t)
        rev = market.rows("reviews", shop.shop_id)
        ev.reviews_total = len(rev)
        ev.low_reviews = int((rev["rating"] <= 2).sum()) if len(rev) else 0
        for r in rev.sort_values(["rating", "created_at"], ascending=[True, False]).head(20).itertuples(index=False):
            ev.reviews.append({"created_at": _ts(r.created_at), "rating": int(str(r.rating)), "text": str(r.text)})
        review_times = [t for t in (_ts(v) for v in rev["created_at"]) if t is not None]
    series = [
        Series("orders", ordered, PALETTE[0]),
        Series("refunds", refunded, PALETTE[2]),
    ]
    if market is not None:
        series += [Series("complaints", complaint_times, PALETTE[1]), Series("reviews", review_times, PALETTE[3])]
    ev.timeline_svg = timeline_svg(
        series, markers or [], title=f"Orders, refunds, complaints and reviews of {shop.name}"
    )
    return ev


def load_case_page(session: Session, case_id: int, role: str, market: MarketIndex | None) -> CasePage:
    """The case with its events and claims, and the shop's evidence (raises NotFound for no such case)."""
    case = get_case(session, case_id)
    markers = [Marker("case opened", case.opened_at)]
    if case.decided_at is not None:
        markers.append(Marker("decided", case.decided_at))
    page = CasePage(case=case, ev=load_shop_evidence(session, case.shop_id, market, markers))
    page.actions = allowed_actions(case.status, role)
    for (st, action), (_new, roles) in TRANSITIONS.items():
        if st == CaseStatus(case.status) and role in {r.value for r in roles} and action in NOT_FROM_CONSOLE:
            page.other_actions[action.value] = NOT_FROM_CONSOLE[action]
    return page
