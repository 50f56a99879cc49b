"""The synthetic marketplace: every contract table, a manifest and the ground truth, from a seed.

``generate(config, out_dir)`` first decides every shop's fate (``synth.plan``), then streams the
shops in chunks (``synth.events``) through ``TableWriter`` so memory stays bounded at any scale.
The same config gives byte-identical files; see ``docs/generator.md`` for the behaviours and knobs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from marketplace.io import TableWriter, write_arrow, write_manifest, write_table
from marketplace.schema import (
    CATEGORIES,
    EVIDENCE_KINDS,
    GROUND_TRUTH_FILE,
    MANIFEST_FILE,
    TABLES_BY_NAME,
    VERDICT_OUTCOMES,
)
from marketplace.synth import strings as S
from marketplace.synth import vocab as V
from marketplace.synth.config import GeneratorConfig, InvalidGeneratorConfig
from marketplace.synth.events import Counters, make_chunk
from marketplace.synth.plan import ARCHETYPES, GROUP_KINDS, LINKAGE, Plan, build_plan

__all__ = ["GeneratorConfig", "InvalidGeneratorConfig", "generate", "ground_truth_frame"]

GENERATOR_VERSION = 1
_STREAMED = ("shops", "listings", "listing_edits", "orders", "complaints", "reviews")


def generate(
    config: GeneratorConfig, out_dir: Path | str, progress: Callable[[int, int], None] | None = None
) -> dict[str, Any]:
    """Write a synthetic marketplace into ``out_dir``; returns the summary (also in the manifest).

    ``progress(shops_done, shops_total)`` is called after every streamed chunk.
    """
    t0 = time.perf_counter()
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InvalidGeneratorConfig(f"output '{out}' exists and is not a folder")
    stale = sorted(p.name for p in out.glob("*.csv") if p.stem in TABLES_BY_NAME) if out.is_dir() else []
    if stale:
        raise InvalidGeneratorConfig(
            f"output '{out}' already holds {', '.join(stale)}: the loader would see two versions of "
            "those tables; choose an empty folder"
        )
    out.mkdir(parents=True, exist_ok=True)
    # the manifest, written last, marks a whole marketplace: withdraw an older one before rewriting
    (out / MANIFEST_FILE).unlink(missing_ok=True)
    plan = build_plan(config)
    vocab = V.build_vocabulary(config.vocabulary)

    counts: dict[str, int] = {}
    counts["brands"] = len(write_brands(plan, out))
    counts["authorisations"] = len(write_authorisations(plan, out))
    counters = Counters()
    with ExitStack() as stack:
        writers = {name: stack.enter_context(TableWriter(out, name)) for name in _STREAMED}
        for lo in range(0, plan.n, config.chunk_shops):
            chunk = make_chunk(plan, vocab, config.seed, lo, min(lo + config.chunk_shops, plan.n), counters)
            for name, writer in writers.items():
                writer.write(getattr(chunk, name))
            del chunk
            if progress is not None:
                progress(min(lo + config.chunk_shops, plan.n), plan.n)
    for name, writer in writers.items():
        counts[name] = writer.rows
    verdicts = verdicts_frame(plan)
    write_table(verdicts, out, "verdicts")
    counts["verdicts"] = len(verdicts)
    truth = ground_truth_frame(plan)
    write_arrow(pa.Table.from_pandas(truth, preserve_index=False), out / GROUND_TRUTH_FILE)

    summary = _summary(config, plan, counts, verdicts)
    write_manifest(
        out,
        pd.Timestamp(config.snapshot),
        seed=config.seed,
        generator_version=GENERATOR_VERSION,
        knobs=config.knobs(),
        crackdown_at=config.crackdown.isoformat(),
        history_start=config.start.isoformat(),
        counts=counts,
        summary={k: v for k, v in summary.items() if k not in ("seconds", "out")},
    )
    summary["out"] = str(out)
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    return summary


def write_brands(plan: Plan, out: Path) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "brand": S.series(pa.array(V.brand_names(plan.config.vocabulary))),
            "category": S.series(S.take(pa.array(CATEGORIES), plan.brand_category)),
            "reference_price": plan.brand_price.astype(np.float64),
            "premium": plan.brand_premium.astype(bool),
        }
    )
    write_table(frame, out, "brands")
    return frame


def write_authorisations(plan: Plan, out: Path) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "brand": S.series(S.take(pa.array(V.brand_names(plan.config.vocabulary)), plan.auth_brand)),
            "shop_id": S.series(S.ids("S", plan.auth_shop, 8)),
            "granted_at": S.timestamps(plan.auth_granted),
        }
    )
    write_table(frame, out, "authorisations")
    return frame


def verdicts_frame(plan: Plan) -> pd.DataFrame:
    """Verdicts decided before the snapshot: partial (only investigated shops) and late."""
    shops = plan.verdict_rows()
    return pd.DataFrame(
        {
            "verdict_id": S.series(S.ids("V", np.arange(len(shops)), 8)),
            "shop_id": S.series(S.ids("S", shops, 8)),
            "decided_at": S.timestamps(plan.decided[shops]),
            "outcome": S.series(S.take(pa.array(VERDICT_OUTCOMES), plan.outcome[shops])),
            "evidence_kind": S.series(S.take(pa.array(EVIDENCE_KINDS), plan.evidence[shops])),
        }
    )


def _left(plan: Plan) -> np.ndarray:
    """Shops that stopped trading on their own before the snapshot (not closed by a verdict)."""
    return ~plan.closed & (plan.end < plan.snapshot)


def ground_truth_frame(plan: Plan) -> pd.DataFrame:
    """Who really sells fakes, and how the world was made (never shown to the model).

    Columns: shop_id, is_counterfeiter, archetype, parent_shop_id (the closed shop a re-registered
    shop descends from), shared_identifiers (linkage fields reused from that parent, comma list),
    group_id / group_kind (counterfeit ring, honest multi-shop chain, shared public device),
    uses_disclaimer, closed_at (closed by a counterfeit verdict), left_at (stopped trading on its own),
    investigated_at (the evidence purchase), verdict_due_at and
    verdict_outcome (also for verdicts still pending at the snapshot).
    """
    n = plan.n
    shared_names = np.array(
        [",".join(f for j, f in enumerate(LINKAGE) if mask >> j & 1) for mask in range(1 << len(LINKAGE))],
        dtype=object,
    )
    group_kind = plan.group_kind.astype(np.int64)
    group_label = S.join(
        S.take(pa.array([f"{k}-" for k in GROUP_KINDS]), group_kind), S.digits(np.maximum(plan.group, 0), 7)
    )
    group_id = pa.array(np.asarray(group_label.to_pylist(), dtype=object), mask=plan.group < 0, type=pa.string())
    return pd.DataFrame(
        {
            "shop_id": S.series(S.ids("S", np.arange(n), 8)),
            "is_counterfeiter": plan.is_counterfeiter,
            "archetype": S.series(S.take(pa.array(ARCHETYPES), plan.archetype)),
            "parent_shop_id": S.series(S.take(S.ids("S", np.arange(n), 8), plan.parent)),
            "shared_identifiers": S.series(
                pa.array(shared_names[plan.shared.astype(np.int64) & ((1 << len(LINKAGE)) - 1)], type=pa.string())
            ),
            "group_id": S.series(group_id),
            "group_kind": S.series(S.take(pa.array(GROUP_KINDS), group_kind)),
            "uses_disclaimer": plan.disclaimer.astype(bool),
            "closed_at": S.timestamps(np.where(plan.closed, plan.end, -1)),
            "left_at": S.timestamps(np.where(_left(plan), plan.end, -1)),
            "investigated_at": S.timestamps(plan.investigated),
            "verdict_due_at": S.timestamps(plan.decided),
            "verdict_outcome": S.series(S.take(pa.array(VERDICT_OUTCOMES), plan.outcome)),
            "brush_share": plan.brush_share.astype(np.float64),
        }
    )


def _summary(config: GeneratorConfig, plan: Plan, counts: Mapping[str, int], verdicts: pd.DataFrame) -> dict[str, Any]:
    cf = plan.is_counterfeiter
    n_cf = int(cf.sum())
    decided = (plan.investigated >= 0) & (plan.decided < plan.snapshot)
    cf_verdict = decided & cf & (plan.outcome == 0)
    per_arch = np.bincount(plan.archetype, minlength=len(ARCHETYPES))
    return {
        "shops": plan.n,
        "seed": config.seed,
        "snapshot_at": config.snapshot.isoformat(),
        "crackdown_at": config.crackdown.isoformat(),
        "counts": dict(counts),
        # a sideline-free world's summary reads as before the sideline archetype existed
        "archetypes": {
            a: int(c) for a, c in zip(ARCHETYPES, per_arch, strict=True) if c or a != "counterfeit_sideline"
        },
        "counterfeiters": n_cf,
        "counterfeit_rate": round(n_cf / plan.n, 4),
        "verdicts": {o: int((verdicts["outcome"] == o).sum()) for o in VERDICT_OUTCOMES},
        "verdict_coverage": round(float(cf_verdict.sum()) / n_cf, 4) if n_cf else 0.0,
        "shops_with_verdict": round(float(decided.sum()) / plan.n, 4),
        "pending_verdicts": int(((plan.investigated >= 0) & (plan.decided >= plan.snapshot)).sum()),
        "closed_shops": int(plan.closed.sum()),
        "left_shops": int(_left(plan).sum()),
        "reregistered_shops": int((plan.parent >= 0).sum()),
    }
