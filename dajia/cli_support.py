"""Small helpers the ``dajia`` sanction commands share: the store session, actors, evidence, scores."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
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


def actor(actor_id: str, role: str, simulated: bool = False) -> Actor:
    try:
        return Actor(actor_id, Role(role), simulated)
    except ValueError as exc:
        raise DajiaError(f"--role must be one of {', '.join(r.value for r in Role)}, got {role!r}") from exc


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


def read_scores(path: Path) -> Iterator[ScoredShop]:
    """Scored shops from a Parquet or CSV file (columns: shop_id, score, tier, model_name,
    model_version, suspected_threshold, and optionally reasons as a list or ' | '-joined text)."""
    if not path.exists():
        raise DajiaError(f"scores file {path} does not exist")
    frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, dtype={"model_version": str})
    missing = [c for c in SCORE_COLUMNS if c not in frame.columns]
    if missing:
        raise DajiaError(f"scores file {path}: columns missing: {missing}")
    bad_tier = frame.loc[~frame["tier"].isin(TIERS), "shop_id"].tolist()
    if bad_tier:
        raise DajiaError(
            f"scores file {path}, column 'tier': values must be one of {TIERS}; rows with shop_id {bad_tier[:5]}"
        )
    yield from scored_from_frame(frame)
