"""Issue 20's acceptance at its size: a 20,000-shop crackdown, then every shop its sweep scored
"suspected" explained with evidence; the top reason of each must cite a concrete item (a listing of the
shop, a review, a complaint, a linked shop, an order or a listing edit). Exits 1 when one does not.

    .venv/bin/python benchmarks/bench_crackdown_evidence.py --shops 20000 [--seed 3] [--folder DIR]

``--folder`` keeps (and resumes) the crackdown's run folder; by default a temporary one. The same check
runs in the suite on its 2,500-shop crackdown (``tests/crackdown/test_crackdown.py``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.settings import Settings
from dajia.crackdown import Crackdown, CrackdownConfig, RunFolder, run_settings
from tests.crackdown.evidence import crackdown_citations


def _drift_rows(settings: Settings) -> list[dict[str, object]]:
    import sqlalchemy as sa

    from dajia.db import open_store
    from serving.console.db import drift_history

    engine = open_store(settings.resolved_database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.select(drift_history)).mappings().all()
    finally:
        engine.dispose()
    return [{k: v for k, v in r.items() if k != "feature_psi"} for r in rows]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shops", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--folder", type=Path, default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = RunFolder(args.folder or Path(tmp) / "run")
        settings = run_settings(Settings(), folder)
        t0 = time.perf_counter()
        Crackdown(settings, folder, CrackdownConfig(shops=args.shops, seed=args.seed)).run()
        t_run = time.perf_counter() - t0
        t0 = time.perf_counter()
        c = crackdown_citations(settings, folder)
        t_check = time.perf_counter() - t0
        drift = _drift_rows(settings)
    print(f"crackdown of {args.shops} shops (seed {args.seed}): {t_run:.0f} s; check: {t_check:.0f} s")
    print(f"drift history of the run's store: {json.dumps(drift, default=str)}")
    print(json.dumps(c.summary(), indent=1, default=str))
    for shop_id, code, kinds in c.uncited[:10]:
        print(f"  uncited: {shop_id} top reason {code} evidence {kinds}")
    ok = c.suspected > 0 and not c.uncited and not c.foreign_listings and not c.tier_mismatch
    print(
        f"suspected shops whose top reason cites a concrete item: {c.cited} of {c.suspected}: {'OK' if ok else 'FAIL'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
