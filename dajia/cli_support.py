"""Small helpers the ``dajia`` sanction commands share: the store session, actors, evidence, scores."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
from pydantic import ValidationError
from sqlalchemy.orm import Session

from core.errors import DajiaError
from dajia.db import open_store
from sanctions.schemas import Evidence
from sanctions.scored import TIERS, ScoredShop, scored_from_frame
from sanctions.workflow import Actor, Role


@contextmanager
def store_session() -> Iterator[Session]:
    """A session on the store named by the settings (DATABASE_URL or the SQLite file under DAJIA_HOME)."""
    from core.settings import get_settings

    engine = open_store(get_settings().resolved_database_url)
    try:
        with Session(engine, expire_on_commit=False) as session:
            yield session
    finally:
        engine.dispose()


def os_user() -> str:
    """The operating-system user running the command (recorded beside the person in every entry)."""
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name (a container without the user in /etc/passwd)
        return "unknown"


def actor(session: Session, actor_id: str, role: str, simulated: bool = False) -> Actor:
    """The CLI's actor: a reviewer or admin must be a registered person holding that role (``dajia people
    add``), refused otherwise; every actor names the OS user as its credential (``cli:<user>``)."""
    try:
        parsed = Role(role)
    except ValueError as exc:
        raise DajiaError(f"--role must be one of {', '.join(r.value for r in Role)}, got {role!r}") from exc
    via = f"cli:{os_user()}"
    if parsed in (Role.REVIEWER, Role.ADMIN):
        from sanctions.people import staff_actor

        return staff_actor(session, actor_id, parsed.value, via=via, simulated=simulated)
    return Actor(actor_id, parsed, simulated, via=via)


def shopkeeper_of(session: Session, shop_id: str) -> str | None:
    """The id of the shop's keeper (a ``K…`` id): the actor a seller's commands need."""
    from sqlalchemy import select

    from sanctions.models import Shop

    return session.scalar(select(Shop.shopkeeper_id).where(Shop.shop_id == shop_id))


def seller(session: Session, actor_id: str, *, case_id: int | None = None, claim_id: int | None = None) -> Actor:
    """The shopkeeper acting for the shop of ``case_id`` (or ``claim_id``). An ``--actor`` that is not
    that shop's keeper is refused here with what is expected (the ``K…`` shopkeeper id, and which one);
    an unknown case or claim is left to the workflow, which names it."""
    from sqlalchemy import select

    from sanctions.models import Case, Claim

    if claim_id is not None:
        shop_id = session.scalar(select(Claim.shop_id).where(Claim.claim_id == claim_id))
        what = f"claim {claim_id}"
    else:
        shop_id = session.scalar(select(Case.shop_id).where(Case.case_id == case_id))
        what = f"case {case_id}"
    keeper = shopkeeper_of(session, shop_id) if shop_id is not None else None
    if keeper is not None and actor_id != keeper:
        given = f"--actor {actor_id!r}" + (" is the shop's id, not its keeper's" if actor_id == shop_id else "")
        raise DajiaError(
            f"{given}: a seller acts with the shopkeeper's id (a K… id); {what} is of shop {shop_id}, "
            f"whose shopkeeper is {keeper} (`dajia cases show` and the console's case page list it)"
        )
    return actor(session, actor_id, "seller")


def evidence(items: Sequence[str]) -> list[Evidence]:
    """``kind:ref[:detail]`` strings into Evidence, with a clear error naming the bad item."""
    out = []
    for item in items:
        kind, _, rest = item.partition(":")
        ref, _, detail = rest.partition(":")
        try:
            out.append(Evidence(kind=kind, ref=ref, detail=detail))
        except ValidationError as exc:
            msg = exc.errors()[0]["msg"]
            raise DajiaError(f"--evidence {item!r}: {msg}") from exc
    return out


SCORE_COLUMNS = ("shop_id", "score", "tier", "model_name", "model_version", "suspected_threshold")


def read_scores(path: Path | str) -> Iterator[ScoredShop]:
    """Scored shops from a Parquet or CSV file, or a sweep's folder of part files (refused without its
    ``_SUCCESS`` marker); a local path or any fsspec URL (columns: shop_id, score, tier, model_name,
    model_version, suspected_threshold, and optionally reasons as a list or ' | '-joined text)."""
    from dajia.scaleout.outputs import IncompleteOutput, require_complete

    try:
        loc = require_complete(str(path))
    except IncompleteOutput as exc:
        raise DajiaError(f"scores file {exc}") from None
    if str(path).endswith(".csv"):
        with loc.fs.open(loc.root, "rb") as fh:
            frame = pd.read_csv(fh, dtype={"model_version": str})
    else:
        frame = pq.read_table(loc.root, filesystem=loc.fs).to_pandas()
    missing = [c for c in SCORE_COLUMNS if c not in frame.columns]
    if missing:
        raise DajiaError(f"scores file {path}: columns missing: {missing}")
    bad_tier = frame.loc[~frame["tier"].isin(TIERS), "shop_id"].tolist()
    if bad_tier:
        raise DajiaError(
            f"scores file {path}, column 'tier': values must be one of {TIERS}; rows with shop_id {bad_tier[:5]}"
        )
    yield from scored_from_frame(frame)
