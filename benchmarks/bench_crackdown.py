"""The crackdown's sanction steps against its ML steps, at one marketplace size.

Runs ``dajia crackdown --shops N`` end to end in a fresh folder (its own SQLite store and MLflow store), then
reads the seconds of every step from the run's ``state.json`` and prints:

- the ML steps: ``train``, ``promote``, ``sweep`` (``generate`` makes the synthetic data and is neither);
- the sanction steps: ``route``, ``decide``, ``evasion``, ``compensate``, ``appeals``, ``campaign``,
  ``disclose``, ``deliver``, ``verify``;
- the ratio sanction / ML (issue 25's target: <= 1 at 20,000 shops), and compensation's share of the run
  with the claims it handled.

    .venv/bin/python benchmarks/bench_crackdown.py --shops 20000
    .venv/bin/python benchmarks/bench_crackdown.py --shops 5000 --src /path/to/other/checkout   # compare code

``--src`` runs the crackdown from another checkout (its packages first on ``PYTHONPATH``) with this
interpreter, so two versions of the code can be compared in one session on the same machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ML_STEPS = ("train", "promote", "sweep")
SANCTION_STEPS = ("route", "decide", "evasion", "compensate", "appeals", "campaign", "disclose", "deliver", "verify")


def run(shops: int, seed: int, work: Path, src: Path | None) -> dict[str, Any]:
    out = work / "run"
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "MLFLOW_TRACKING_URI")}
    env["DAJIA_HOME"] = str(work / "home")
    env["OMP_NUM_THREADS"] = env.get("OMP_NUM_THREADS", "1")
    if src is not None:
        env["PYTHONPATH"] = str(src.resolve())
    cmd = [
        sys.executable,
        "-m",
        "dajia.cli",
        "crackdown",
        "--shops",
        str(shops),
        "--seed",
        str(seed),
        "--out",
        str(out),
    ]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, cwd=src or Path.cwd(), capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"crackdown failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    state = json.loads((out / "state.json").read_text())
    return {"wall": wall, "steps": state["done"]}


def report(shops: int, result: dict[str, Any], label: str) -> float:
    steps = result["steps"]
    seconds = {name: float(step.get("seconds", 0.0)) for name, step in steps.items()}
    ml = sum(seconds.get(s, 0.0) for s in ML_STEPS)
    sanction = sum(seconds.get(s, 0.0) for s in SANCTION_STEPS)
    total = sum(seconds.values())
    print(f"crackdown {shops:,} shops ({label}): {result['wall']:.0f} s wall")
    for name, s in seconds.items():
        kind = "ML" if name in ML_STEPS else "sanction" if name in SANCTION_STEPS else "data"
        print(f"  {name:11s} {kind:8s} {s:8.1f} s  {s / total:6.1%}")
    comp = steps.get("compensate", {})
    claims = int(comp.get("claims_paid", 0)) + int(comp.get("claims_confirmed", 0))
    print(
        f"  ML steps {ml:.1f} s, sanction steps {sanction:.1f} s: sanction / ML = {sanction / ml:.2f} "
        f"(target <= 1.00 at 20,000 shops); compensation {seconds.get('compensate', 0.0):.1f} s "
        f"({seconds.get('compensate', 0.0) / total:.0%} of the steps) for {claims:,} claim actions "
        f"(payments + confirmations)"
    )
    return sanction / ml


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shops", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--src", type=Path, help="run the code of this checkout instead of the installed one")
    ap.add_argument("--work", type=Path, help="folder for the run (default: a new temporary folder)")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_crackdown_"))
    work.mkdir(parents=True, exist_ok=True)
    result = run(args.shops, args.seed, work, args.src)
    report(args.shops, result, f"code from {args.src or 'this checkout'}")
    print(f"(work folder: {work})")


if __name__ == "__main__":
    main()
