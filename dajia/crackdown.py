"""The main job: a whole crackdown on a synthetic marketplace, end to end.

generate → train and register → promote through the gate → sweep every shop → route suspected
shops into cases (and catch ban evasion) → simulated reviewers, sellers, consumers and an admin
(``dajia.simulation``) → campaign announcement and warnings → disclosure of closed shops →
audit chain verified → summary.

A run lives in one folder (``runs/crackdown-<time>`` by default) that holds everything it made:
``data/`` (the marketplace), ``dajia.db`` (the sanction store), ``mlruns/`` (the MLflow store),
``scores.parquet`` (+ the shop partitions in ``data/_partitions/``), ``published/`` (announcement, warnings,
disclosure list), ``state.json``
(steps done) and ``summary.json``. Re-running with ``--out`` on the same folder resumes after
the last finished step; a folder made with other parameters is refused, so two runs never mix.
A resumed run ends with the results of an unbroken run of the same seed: every random draw of the
simulated people is seeded by (seed, step, item) (``dajia.simulation.Seeds``), and the items a step
works on (and the ban-evasion detection) are fixed in ``state.json`` when the step first starts, so a
step killed part-way works through the same list again, replaying what it did by idempotency key.
With ``DATABASE_URL`` / ``MLFLOW_TRACKING_URI`` set, those stores are used instead and must not
hold another run's cases (checked).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core import atomic
from core.errors import DajiaError
from core.settings import Settings
from dajia.simulation import (
    ADMIN,
    SECOND_ADMIN,
    Seeds,
    SimulationRates,
    appealable_cases,
    appeals,
    banned_cases,
    decide_cases,
    open_cases,
    settle_claims,
)

STEPS = (
    "generate",
    "train",
    "promote",
    "sweep",
    "route",
    "decide",
    "evasion",
    "compensate",
    "appeals",
    "campaign",
    "disclose",
    "deliver",
    "verify",
)

#: a step reports progress as (done, total)
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class CrackdownConfig:
    shops: int = 20_000
    seed: int = 7
    capacity_per_day: int = 50
    rates: SimulationRates = field(default_factory=SimulationRates)
    #: the crackdown's simulated clock starts this many days before the marketplace's snapshot: the
    #: sweep scores as of then, reviewers decide a day later, appeals and disclosure follow within the
    #: compensation deadline + 11 days. Every decision then lies inside the marketplace's time and labels
    #: the next training (``dajia train --feedback``); dated after the snapshot it would label nothing.
    lead_days: int = 45

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class RunFolder:
    """The folder of one crackdown run and its ``state.json`` (config and finished steps)."""

    def __init__(self, root: Path):
        self.root = root.resolve()
        self.state_path = self.root / "state.json"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def scores(self) -> Path:
        return self.root / "scores.parquet"

    @property
    def published(self) -> Path:
        return self.root / "published"

    def load_state(self) -> dict[str, Any]:
        if not self.state_path.exists():
            return {}
        return dict(json.loads(self.state_path.read_text(encoding="utf-8")))

    def save_state(self, state: dict[str, Any]) -> None:
        """Replace state.json atomically (temporary + fsync + rename): a kill or a full disk leaves the
        previous state, never a truncated one (a full disk raises ``DiskFull``)."""
        atomic.write_text(self.state_path, json.dumps(state, indent=2, default=str))

    def claim(self, config: CrackdownConfig) -> dict[str, Any]:
        """Start a new run here, or resume the run this folder already holds (same config only). A path
        that is a file, or a folder that cannot be made or written, is a ``DajiaError`` naming it."""
        if self.root.exists() and not self.root.is_dir():
            raise DajiaError(f"--out {self.root}: is a file, not a folder; choose a new folder")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DajiaError(f"--out {self.root}: cannot create the folder ({exc.strerror or exc})") from None
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise DajiaError(f"--out {self.root}: the folder is not writable")
        try:
            state = self.load_state()
        except (OSError, ValueError) as exc:
            raise DajiaError(f"--out {self.root}: cannot read state.json ({exc})") from None
        if not state:
            if any(self.root.iterdir()):
                raise DajiaError(f"--out {self.root}: folder is not empty and holds no crackdown run; choose a new one")
            state = {"config": config.to_dict(), "done": {}, "started_at": datetime.now().isoformat()}
            self.save_state(state)
            return state
        if state.get("config") != json.loads(json.dumps(config.to_dict())):
            raise DajiaError(
                f"--out {self.root} holds a crackdown run made with other parameters ({state.get('config')}); "
                "resume it with the same parameters or choose a new folder"
            )
        return state


def store_footprint(session: Session) -> dict[str, int]:
    """Row counts of everything a workflow change writes, the sum of case versions and the frozen
    listings: equal before and after a re-run that changed nothing."""
    from sanctions.models import AuditEntry, Case, CaseEvent, Claim, Listing, OutboxMessage, StorefrontChange

    n = {
        str(t.__tablename__): int(session.execute(select(func.count()).select_from(t)).scalar_one())
        for t in (Case, CaseEvent, Claim, OutboxMessage, AuditEntry, StorefrontChange)
    }
    n["case_versions"] = int(session.execute(select(func.coalesce(func.sum(Case.version), 0))).scalar_one())
    n["frozen_listings"] = int(session.execute(select(func.count()).where(Listing.frozen.is_(True))).scalar_one())
    session.rollback()
    return n


def write_public_outputs(session: Session, out: Path, campaign_id: int) -> int:
    """Render every public output of the run into ``out`` from the store as it is now (so a reversal
    since is reflected: the announcement as corrected, the disclosure list without withdrawn entries,
    the corrections, the storefront feed); returns the storefront feed's length."""
    from sanctions.public import announcement, closed_shops, corrections

    current = announcement(session, campaign_id)
    atomic.write_text(out / "announcement.html", current.html)
    atomic.write_text(
        out / "announcement.json", json.dumps(current.announcement, indent=2, ensure_ascii=False, default=str)
    )
    entries = [e.model_dump(mode="json") for e in closed_shops(session, limit=1_000_000)]
    atomic.write_text(out / "closed-shops.json", json.dumps(entries, indent=2, ensure_ascii=False))
    fixes = [c.model_dump(mode="json") for c in corrections(session)]
    atomic.write_text(out / "corrections.json", json.dumps(fixes, indent=2, ensure_ascii=False))
    return export_storefront_changes(session, out / "storefront-changes.jsonl")


def export_storefront_changes(session: Session, path: Path) -> int:
    """The whole storefront feed as JSON lines (one visibility change a line, in feed order); returns the count."""
    from sanctions.storefront import changes

    lines: list[str] = []
    after = ""
    while page := changes(session, after=after, limit=5000).changes:
        lines += [json.dumps(c.model_dump(mode="json"), ensure_ascii=False) for c in page]
        after = page[-1].cursor
    atomic.write_text(path, "".join(line + "\n" for line in lines))
    return len(lines)


def run_settings(base: Settings, folder: RunFolder) -> Settings:
    """The run's settings: its own home folder; DATABASE_URL / MLFLOW_TRACKING_URI still win."""
    return base.model_copy(update={"home": folder.root})


@contextmanager
def _session(settings: Settings) -> Iterator[Session]:
    from dajia.db import open_store

    engine = open_store(settings.resolved_database_url)
    try:
        with Session(engine, expire_on_commit=False) as session:
            yield session
    finally:
        engine.dispose()


class Crackdown:
    """Runs the steps in order, skipping those a resumed run already finished."""

    def __init__(
        self,
        settings: Settings,
        folder: RunFolder,
        config: CrackdownConfig,
        step_progress: Callable[[str], Progress] | None = None,
        announce: Callable[[str, dict[str, Any]], None] | None = None,
    ):
        self.settings = settings
        self.folder = folder
        self.config = config
        self.state = folder.claim(config)
        self._progress = step_progress
        self._announce = announce

    # -- the run ------------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        for step in STEPS:
            if step in self.state["done"]:
                continue
            t0 = time.perf_counter()
            result = getattr(self, f"step_{step}")()
            result["seconds"] = round(time.perf_counter() - t0, 2)
            self.state["done"][step] = result
            self.folder.save_state(self.state)
            if self._announce is not None:
                self._announce(step, result)
        summary = self.summary()
        atomic.write_text(
            self.folder.root / "summary.json", json.dumps(summary, indent=2, ensure_ascii=False, default=str)
        )
        return summary

    def _p(self, step: str) -> Progress | None:
        return self._progress(step) if self._progress is not None else None

    def _done(self, step: str) -> dict[str, Any]:
        return dict(self.state["done"][step])

    @cached_property
    def _snapshot(self) -> datetime:
        """The marketplace's snapshot time (naive UTC), read once a run (after ``generate``)."""
        from marketplace.loader import read_snapshot_at

        ts = pd.Timestamp(read_snapshot_at(self.folder.data))  # type: ignore[arg-type]
        if ts.tzinfo is not None:
            ts = ts.tz_convert("UTC").tz_localize(None)
        return ts.to_pydatetime()

    def _day(self, days: int) -> datetime:
        """``days`` after the crackdown began (``lead_days`` before the snapshot): a step's simulated clock."""
        last = self.config.lead_days - self.settings.compensation_deadline_days - 11
        if last < 1:
            raise DajiaError(
                f"lead_days {self.config.lead_days} is too short: the disclosure, compensation deadline "
                f"({self.settings.compensation_deadline_days} days) + 11 days after the sweep, "
                "must come before the snapshot"
            )
        return self._snapshot + timedelta(days=days - self.config.lead_days)

    @cached_property
    def _truth(self) -> pd.DataFrame:
        """The generator's ground truth, read once a run (the steps only read it)."""
        from marketplace.schema import GROUND_TRUTH_FILE

        return pd.read_parquet(self.folder.data / GROUND_TRUTH_FILE)

    def _seeds(self, step: str) -> Seeds:
        """The step's random draws: one generator per item from (seed, step, item), not one stream."""
        return Seeds(self.config.seed, step)

    def _once(self, key: str, work: Callable[[], Any]) -> Any:
        """``work()``'s (JSON) result, computed the first time a step gets here and kept in state.json: a
        step killed part-way and resumed works through the same items (the store has moved on since)."""
        plans = self.state.setdefault("plans", {})
        if key not in plans:
            plans[key] = work()
            self.folder.save_state(self.state)
        return plans[key]

    # -- steps --------------------------------------------------------------------------------------
    def step_generate(self) -> dict[str, Any]:
        from marketplace.generator import generate
        from marketplace.synth.config import GeneratorConfig

        summary = generate(GeneratorConfig(shops=self.config.shops, seed=self.config.seed), self.folder.data)
        return {k: summary[k] for k in ("counts", "archetypes", "counterfeit_rate") if k in summary}

    def step_train(self) -> dict[str, Any]:
        from training.marketplace_run import run_marketplace

        with _session(self.settings) as session:  # the store must not hold another run's cases
            from sanctions.models import Case

            n = session.execute(select(func.count()).select_from(Case)).scalar_one()
            if n:
                raise DajiaError(
                    f"the sanction store {self.settings.resolved_database_url} already holds {n} cases of "
                    "another run; point DATABASE_URL at an empty database or unset it"
                )
        result = run_marketplace(
            self.settings, self.folder.data, seed=self.config.seed, capacity_per_day=self.config.capacity_per_day
        )
        return result

    def step_promote(self) -> dict[str, Any]:
        from training.promotion import promote
        from training.tracking import setup_mlflow

        version = str(self._done("train")["version"])
        client = setup_mlflow(self.settings)
        return promote(client, self.settings, version)

    def step_sweep(self) -> dict[str, Any]:
        """Score every shop with the champion: the same streamed sweep as ``dajia sweep`` (no routing here)."""
        from dajia.scaleout.sweep import run_sweep
        from dajia.sweep import load_champion

        champion = load_champion(self.settings)
        return run_sweep(
            self.settings, str(self.folder.data), str(self.folder.scores), champion, route=False,
            as_of=pd.Timestamp(self._day(0)), progress=self._p("sweep"),
        )  # fmt: skip

    def step_route(self) -> dict[str, Any]:
        """Route the suspected shops that were open when the sweep ran (``_day(0)``), at that time."""
        from dajia.cli_support import read_scores
        from marketplace.loader import load_marketplace
        from sanctions.routing import route_scored
        from sanctions.storefront import import_marketplace

        mp = load_marketplace(self.folder.data)
        start = self._day(0)
        opened = set(mp.shops.loc[mp.shops["opened_at"] < pd.Timestamp(start), "shop_id"].astype(str))
        with _session(self.settings) as session:
            imported = import_marketplace(session, mp, detect_evasion=False)
            scored = [s for s in read_scores(self.folder.scores) if s.shop_id in opened]
            routed = route_scored(session, scored, now=start).model_dump()
        routed.pop("opened_case_ids", None)
        return {"imported": imported.model_dump(exclude={"new_shop_ids"}), "routed": routed}

    def step_decide(self) -> dict[str, Any]:
        from dajia.simulation import register_people

        share = self.config.rates.review_share
        with _session(self.settings) as session:
            register_people(session, self._day(1))
            ids = self._once("decide", lambda: open_cases(session, share, origin="score"))
            return decide_cases(
                session,
                self._truth,
                self.config.rates,
                self._seeds("decide"),
                self._day(1),
                progress=self._p("decide"),
                case_ids=ids,
            )

    def step_compensate(self) -> dict[str, Any]:
        with _session(self.settings) as session:
            ids = self._once("compensate", lambda: banned_cases(session))
            return settle_claims(
                session,
                self._truth,
                self.config.rates,
                self._seeds("compensate"),
                self._day(1),
                self.settings.compensation_deadline_days,
                progress=self._p("compensate"),
                case_ids=ids,
            )

    def step_appeals(self) -> dict[str, Any]:
        when = self._day(self.settings.compensation_deadline_days + 3)
        with _session(self.settings) as session:
            plan = self._once("appeals", lambda: appealable_cases(session))
            return appeals(session, self._truth, self.config.rates, self._seeds("appeals"), when, cases=plan)

    def step_evasion(self) -> dict[str, Any]:
        """New shops sharing identifiers with the shops just closed open cases; reviewers decide them."""
        from sanctions.routing import detect_ban_evasion

        when = self._day(1)
        with _session(self.settings) as session:
            # detected once: decisions below close shops whose links a second detection would also follow
            result = self._once(
                "evasion:detect",
                lambda: detect_ban_evasion(session, now=when).model_dump(
                    mode="json", exclude={"opened_case_ids", "links"}
                ),
            )
            # the reviewers then decide the evasion cases like any other
            ids = self._once("evasion:decide", lambda: open_cases(session, origin="ban_evasion"))
            decided = decide_cases(session, self._truth, self.config.rates, self._seeds("evasion"), when, case_ids=ids)
            result = dict(result)
        result["decided"] = decided
        return result

    def step_campaign(self) -> dict[str, Any]:
        """The admin publishes a campaign over the decided cases the sweep opened; a second one over the
        decided ban-evasion cases (else the last decided case) is drafted and left awaiting approval."""
        from sanctions.campaigns import ANNOUNCEABLE, approve_campaign, create_campaign, publish_campaign
        from sanctions.models import Case

        when = self._day(self.settings.compensation_deadline_days + 10)
        with _session(self.settings) as session:
            rows = session.execute(
                select(Case.case_id, Case.origin)
                .where(Case.status.in_([s.value for s in ANNOUNCEABLE]))
                .order_by(Case.case_id)
            ).all()
            later = {int(cid) for cid, origin in rows if origin == "ban_evasion"}
            if not later or len(later) == len(rows):
                later = {int(rows[-1][0])} if len(rows) > 1 else set()
            first = [int(cid) for cid, _ in rows if int(cid) not in later]
            draft = create_campaign(
                session,
                ADMIN,
                title="打假 crackdown on counterfeit goods",
                case_ids=first,
                idempotency_key="sim-campaign-create",
                now=when,
            )
            approve_campaign(session, draft.campaign_id, SECOND_ADMIN, idempotency_key="sim-campaign-approve", now=when)
            view = publish_campaign(session, draft.campaign_id, ADMIN, idempotency_key="sim-campaign-publish", now=when)
            pending = (
                create_campaign(
                    session,
                    ADMIN,
                    title="打假 follow-up: sellers who came back under new shops",
                    case_ids=sorted(later),
                    idempotency_key="sim-campaign-create-followup",
                    now=when,
                )
                if later
                else None
            )
        return {
            "campaign_id": view.campaign_id,
            "drafted_by": view.created_by,
            "approved_by": view.approved_by,
            "published_by": view.published_by,
            "cases": len(view.case_ids),
            "warnings_sent": view.warnings_sent,
            "announcement": view.announcement,
            "draft_campaign_id": pending.campaign_id if pending else None,
            "draft_cases": len(pending.case_ids) if pending else 0,
        }

    def step_disclose(self) -> dict[str, Any]:
        from sanctions.disclosure import approve_disclosures, propose_disclosures

        when = self._day(self.settings.compensation_deadline_days + 11)
        with _session(self.settings) as session:
            result = propose_disclosures(
                session,
                ADMIN,
                basis="[simulated] admin approval: closures proven by test buy or escalation, campaign "
                f"{self._done('campaign')['campaign_id']}",
                idempotency_key="sim-disclose",
                now=when,
            )
            approved = (
                approve_disclosures(
                    session, SECOND_ADMIN, case_ids=result.proposed, idempotency_key="sim-disclose-approve", now=when
                )
                if result.proposed
                else None
            )
        return {
            "disclosed": len(approved.published) if approved else 0,
            "policy": result.policy,
            "drafted_by": result.drafted_by,
            "approved_by": approved.approved_by if approved else None,
        }

    def step_deliver(self) -> dict[str, Any]:
        """Deliver the outbox to files under published/ (stand-in for mail, SMS and the public site).

        Each message is marked delivered right after it is filed and the mailbox files a dedupe_key
        once, so a run killed here and resumed files every message exactly once. The mailbox fsyncs each
        line before the mark commits (``fsync=True``, ~0.5 ms a message): a power cut loses no message
        the store already counts as delivered."""
        from sanctions.outbox import FileMailbox, counts, deliver

        out = self.folder.published
        delivered = 0
        with _session(self.settings) as session:
            with FileMailbox(out, fsync=True) as mailbox:
                while n := deliver(session, mailbox, limit=5000):
                    delivered += n
            feed = write_public_outputs(session, out, int(self._done("campaign")["campaign_id"]))
            by_kind = counts(session)
        return {
            "storefront_changes": feed,
            "delivered": delivered,
            "resent_absorbed": mailbox.duplicates,
            "outbox": by_kind,
            "files": sorted(p.name for p in out.iterdir()),
        }

    def step_verify(self) -> dict[str, Any]:
        """The audit chain, then the re-run rule: routing the same scores again must change nothing."""
        from dajia.cli_support import read_scores
        from sanctions.audit import verify_chain
        from sanctions.models import Shop
        from sanctions.routing import route_scored

        start = self._day(0)
        with _session(self.settings) as session:
            before = store_footprint(session)
            # the same scores as the route step: the shops open when the sweep ran (a shop opened since,
            # e.g. a banned seller's new one, was never routed; its ban-evasion case is not the sweep's)
            opened = set(session.execute(select(Shop.shop_id).where(Shop.opened_at < start)).scalars())
            session.rollback()
            scored = [s for s in read_scores(self.folder.scores) if s.shop_id in opened]
            again = route_scored(session, scored, now=start).model_dump()
        with _session(self.settings) as session:
            after = store_footprint(session)
            report = verify_chain(session)
        if not report.ok:
            raise DajiaError(f"audit chain broken at entry {report.first_bad_seq}: {report.problem}")
        changed = {k: after[k] - before[k] for k in before if after[k] != before[k]}
        return {
            **report.as_dict(),
            "second_routing": {
                "opened": again["opened"],
                "rescored": again["rescored"],
                "kept_decided": again["kept_decided"],
                "rows_changed": changed,
                "changes": again["opened"] + again["rescored"] + sum(abs(v) for v in changed.values()),
            },
        }

    # -- summary ------------------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        from dajia.summary import crackdown_summary

        return crackdown_summary(self.settings, self.folder, self.state)
