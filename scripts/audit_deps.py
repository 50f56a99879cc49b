"""Audit every installed distribution of this Python environment for known vulnerabilities.

Run by ``scripts/audit-deps`` with the venv's interpreter (``.venv/bin/python``). Three sources, in order;
each later one only sees the distributions the earlier ones could not audit:

1. ``pip-audit`` with its default service (PyPI's per-version JSON API, ``/pypi/<name>/<version>/json``);
2. ``pip-audit`` with the OSV service (``api.osv.dev``);
3. PyPI's project JSON (``/pypi/<name>/json``), fetched in parallel. It carries the ``vulnerabilities``
   of the project's **latest release only**: a distribution installed at exactly that version is
   audited by it; any other version is reported as "not audited (installed X, latest Y)", never as clean.

A known vulnerability fails the audit (exit 1) unless its id or one of its aliases is listed with a
reason in the "Known vulnerabilities" table of ``docs/reliability.md``. Exit 3 when nothing at all could
be audited (no source reachable), 2 on bad usage or a malformed ignore table, 0 otherwise. Nothing is
cached or written, except the ``--json`` report when asked for.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "reliability.md"
IGNORE_HEADING = "Known vulnerabilities"
PYPI = "https://pypi.org/pypi"
VULN_ID = re.compile(r"^[A-Z][A-Z0-9]*-[A-Za-z0-9][A-Za-z0-9:._-]*$")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def same_version(a: str, b: str) -> bool:
    try:
        from packaging.version import Version

        return Version(a) == Version(b)
    except Exception:
        return a == b


@dataclass
class Dist:
    name: str
    version: str
    local: str = ""  # why it is not a PyPI distribution (this project, an editable install), else ""


@dataclass
class Vuln:
    package: str
    version: str
    id: str
    aliases: list[str]
    fixed_in: list[str]
    source: str
    link: str = ""
    summary: str = ""
    explained: str = ""  # the ignore table's reason, "" when unexplained


@dataclass
class Report:
    python: str
    installed: int = 0
    audited: dict[str, str] = field(default_factory=dict)  # name -> source that audited it
    not_audited: dict[str, str] = field(default_factory=dict)  # name -> why
    vulnerabilities: list[Vuln] = field(default_factory=list)
    sources: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    stale_ignores: list[str] = field(default_factory=list)

    @property
    def unexplained(self) -> list[Vuln]:
        return [v for v in self.vulnerabilities if not v.explained]

    def result(self) -> str:
        if self.unexplained:
            return "vulnerable"
        return "ok" if self.audited else "not-performed"


# -- what is installed -------------------------------------------------------------------------------


def own_project() -> str:
    try:
        import tomllib

        return canonical(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["name"])
    except Exception:
        return ""


def installed() -> dict[str, Dist]:
    """Every distribution importable by this interpreter, once per name (the one ``import`` would use)."""
    own = own_project()
    out: dict[str, Dist] = {}
    for d in importlib.metadata.distributions():
        raw = d.metadata["Name"]
        if not raw:
            continue
        name = canonical(raw)
        if name in out:
            continue
        local = ""
        if name == own:
            local = "this project itself, not a PyPI dependency"
        else:
            direct = d.read_text("direct_url.json")
            if direct and json.loads(direct).get("dir_info", {}).get("editable"):
                local = "an editable install from a local directory"
        out[name] = Dist(name, d.version, local)
    return out


def parse_only(specs: Iterable[str]) -> dict[str, Dist]:
    out = {}
    for spec in specs:
        name, sep, version = spec.partition("==")
        if not sep or not name.strip() or not version.strip():
            raise SystemExit(f"audit-deps: --only wants name==version, got {spec!r}")
        out[canonical(name.strip())] = Dist(canonical(name.strip()), version.strip())
    return out


# -- the ignore table --------------------------------------------------------------------------------


def read_ignores(path: Path) -> dict[str, str]:
    """Vulnerability id -> reason, from the table under the "Known vulnerabilities" heading of ``path``.

    The table is ``| id | package | reason |``; a row without an id-shaped first cell or without a reason
    is an error naming the line, so a half-written entry never silently ignores anything.
    """
    lines = path.read_text(encoding="utf-8").splitlines()
    start = next(
        (i for i, line in enumerate(lines) if line.startswith("#") and line.lstrip("#").strip() == IGNORE_HEADING),
        None,
    )
    if start is None:
        raise SystemExit(f"audit-deps: {path}: no heading {IGNORE_HEADING!r} (the ignore table lives there)")
    out: dict[str, str] = {}
    header_seen = False
    for n, line in enumerate(lines[start + 1 :], start + 2):
        if line.startswith("#"):
            break
        if not line.startswith("|"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not header_seen:  # the header row, then its |---| separator
            header_seen = True
            continue
        if set("".join(cells)) <= set("-: "):
            continue
        vid = cells[0].strip("`")
        reason = cells[-1] if len(cells) >= 3 else ""
        if not VULN_ID.match(vid):
            raise SystemExit(f"audit-deps: {path}:{n}: first cell {cells[0]!r} is not a vulnerability id")
        if not reason:
            raise SystemExit(f"audit-deps: {path}:{n}: {vid} has no reason")
        out[vid] = reason
    return out


def explain(vulns: list[Vuln], ignores: dict[str, str]) -> list[str]:
    """Mark each vulnerability explained by the ignore table; return the table's ids that matched nothing."""
    used = set()
    for v in vulns:
        for vid in (v.id, *v.aliases):
            if vid in ignores:
                v.explained = ignores[vid]
                used.add(vid)
                break
    return sorted(set(ignores) - used)


# -- source 1 and 2: pip-audit -------------------------------------------------------------------------


def pip_audit(dists: dict[str, Dist], service: str, timeout: float) -> tuple[dict[str, list[Vuln]], str]:
    """Run pip-audit over ``name==version`` pins; (audited name -> its vulnerabilities, error or "")."""
    if not dists:
        return {}, ""
    with tempfile.TemporaryDirectory() as tmp:
        req, out = Path(tmp) / "requirements.txt", Path(tmp) / "audit.json"
        req.write_text("".join(f"{d.name}=={d.version}\n" for d in dists.values()))
        cmd = [sys.executable, "-m", "pip_audit", "-r", str(req), "--no-deps", "--disable-pip"]
        cmd += [
            "-s",
            service,
            "-f",
            "json",
            "-o",
            str(out),
            "--progress-spinner",
            "off",
            "--timeout",
            str(max(1, round(timeout))),
        ]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return {}, f"{type(exc).__name__}: {exc}"
        try:
            data = json.loads(out.read_text())
        except (OSError, ValueError):
            tail = [line for line in proc.stderr.strip().splitlines() if line.strip()][-1:] or ["no output"]
            return {}, f"exit {proc.returncode}: {tail[0][:300]}"
    audited: dict[str, list[Vuln]] = {}
    skipped: list[str] = []
    for dep in data.get("dependencies", []):
        name = canonical(dep["name"])
        if dep.get("skip_reason"):
            skipped.append(dep["skip_reason"])
            continue
        audited[name] = [
            Vuln(
                package=name,
                version=dep.get("version", dists[name].version if name in dists else ""),
                id=v["id"],
                aliases=list(v.get("aliases", [])),
                fixed_in=list(v.get("fix_versions", [])),
                source=f"pip-audit ({service})",
                summary=(v.get("description") or "")[:200],
            )
            for v in dep.get("vulns", [])
        ]
    error = ""
    if not audited and skipped:
        error = f"audited none of {len(skipped)}; e.g. {skipped[0]}"
    return audited, error


# -- source 3: PyPI's project JSON (latest release) ------------------------------------------------------


def fetch_projects(names: Iterable[str], timeout: float, workers: int) -> dict[str, dict[str, Any] | str]:
    """name -> the project JSON, or a string saying why it could not be had ("404" when not on PyPI)."""
    import httpx

    def one(client: httpx.Client, name: str) -> tuple[str, dict[str, Any] | str]:
        why = ""
        for attempt in range(3):
            try:
                r = client.get(f"{PYPI}/{name}/json")
            except httpx.HTTPError as exc:
                why = f"{type(exc).__name__}: {exc}"[:200]
            else:
                if r.status_code == 404:
                    return name, "404"
                if r.status_code == 200:
                    try:
                        return name, dict(r.json())
                    except ValueError:
                        why = "not JSON"
                else:
                    why = f"HTTP {r.status_code}"
            time.sleep(0.3 * (attempt + 1))
        return name, why

    limits = httpx.Limits(max_connections=workers, max_keepalive_connections=workers)
    with (
        httpx.Client(timeout=httpx.Timeout(timeout), limits=limits, follow_redirects=True) as client,
        ThreadPoolExecutor(workers) as pool,
    ):
        return dict(pool.map(lambda n: one(client, n), names))


def audit_latest(
    dists: dict[str, Dist], timeout: float, workers: int, report: Report
) -> tuple[dict[str, list[Vuln]], str]:
    """Audit the distributions installed at their project's latest release; the others go to not_audited.

    Returns (audited name -> its vulnerabilities, "" or why pypi.org could not be reached at all)."""
    projects = fetch_projects(sorted(dists), timeout, workers)
    failed = {name: why for name, why in projects.items() if isinstance(why, str) and why != "404"}
    unreachable = f"pypi.org unreachable ({next(iter(failed.values()))})" if len(failed) == len(projects) else ""
    audited: dict[str, list[Vuln]] = {}
    for name, data in projects.items():
        d = dists[name]
        if isinstance(data, str):
            report.not_audited[name] = (
                f"installed {d.version}; not on PyPI" if data == "404" else f"installed {d.version}; PyPI: {data}"
            )
            continue
        latest = str(data.get("info", {}).get("version", ""))
        releases = data.get("releases", {})
        files = next((v for k, v in releases.items() if same_version(k, d.version)), None)
        if files and all(f.get("yanked") for f in files):
            reason = next((f.get("yanked_reason") for f in files if f.get("yanked_reason")), "") or "no reason given"
            report.notes.append(f"{name} {d.version} is yanked on PyPI: {reason}")
        if not same_version(latest, d.version):
            where = "" if files is not None else "; that version is not a PyPI release"
            report.not_audited[name] = f"installed {d.version}, latest {latest}{where}"
            continue
        audited[name] = [
            Vuln(
                package=name,
                version=d.version,
                id=str(v["id"]),
                aliases=[str(a) for a in v.get("aliases") or []],
                fixed_in=[str(f) for f in v.get("fixed_in") or []],
                source="PyPI project JSON (latest release)",
                link=str(v.get("link") or ""),
                summary=str(v.get("summary") or v.get("details") or "")[:200],
            )
            for v in data.get("vulnerabilities") or []
            if not v.get("withdrawn")
        ]
    return audited, unreachable


def dedupe(vulns: list[Vuln]) -> list[Vuln]:
    """One entry per vulnerability of a package: PYSEC-x and its GHSA alias are the same advisory."""
    out: list[Vuln] = []
    seen: dict[str, set[str]] = {}
    for v in vulns:
        ids = {v.id, *v.aliases}
        known = seen.setdefault(v.package, set())
        if ids & known:
            known |= ids
            continue
        known |= ids
        out.append(v)
    return out


# -- the run ---------------------------------------------------------------------------------------------


def run(dists: dict[str, Dist], ignores: dict[str, str], timeout: float, workers: int) -> Report:
    report = Report(python=sys.executable, installed=len(dists))
    todo = {}
    for name, d in dists.items():
        if d.local:
            report.not_audited[name] = f"installed {d.version}; {d.local}"
        else:
            todo[name] = d
    found: list[Vuln] = []
    for service in ("pypi", "osv"):
        t0 = time.monotonic()
        audited, error = pip_audit(todo, service, timeout)
        report.sources.append(
            {
                "source": f"pip-audit ({service})",
                "asked": len(todo),
                "audited": len(audited),
                "error": error,
                "seconds": round(time.monotonic() - t0, 1),
            }
        )
        for name, vulns in audited.items():
            if name in todo:
                del todo[name]
                report.audited[name] = f"pip-audit ({service})"
                found.extend(vulns)
        if not todo:
            break
    if todo:
        t0 = time.monotonic()
        audited, error = audit_latest(todo, timeout, workers, report)
        report.sources.append(
            {
                "source": "PyPI project JSON (latest release)",
                "asked": len(todo),
                "audited": len(audited),
                "error": error,
                "seconds": round(time.monotonic() - t0, 1),
            }
        )
        for name, vulns in audited.items():
            report.audited[name] = "PyPI project JSON (latest release)"
            found.extend(vulns)
    report.vulnerabilities = dedupe(found)
    report.stale_ignores = explain(report.vulnerabilities, ignores)
    return report


def print_report(r: Report) -> None:
    p = print
    p(f"audit-deps: {r.installed} distributions installed for {r.python}")
    for s in r.sources:
        err = f" — {s['error']}" if s["error"] else ""
        p(f"  {s['source']}: audited {s['audited']} of {s['asked']} ({s['seconds']} s){err}")
    p(f"audited: {len(r.audited)}")
    p(f"not audited: {len(r.not_audited)}")
    for name, why in sorted(r.not_audited.items()):
        p(f"  {name}: {why}")
    for note in r.notes:
        p(f"note: {note}")
    p(f"known vulnerabilities: {len(r.vulnerabilities)} ({len(r.unexplained)} unexplained)")
    for v in r.vulnerabilities:
        state = f"explained: {v.explained}" if v.explained else "UNEXPLAINED"
        fix = f", fixed in {', '.join(v.fixed_in)}" if v.fixed_in else ", no fixed version"
        aka = f" ({', '.join(v.aliases)})" if v.aliases else ""
        p(f"  {v.package} {v.version}: {v.id}{aka}{fix} [{v.source}] — {state}")
    for vid in r.stale_ignores:
        p(f"note: ignore entry {vid} matched no vulnerability found in this run")
    verdict = {
        "ok": "no unexplained known vulnerability among the audited distributions",
        "vulnerable": "UNEXPLAINED KNOWN VULNERABILITIES (fix, or list with a reason in docs/reliability.md)",
        "not-performed": "AUDIT NOT PERFORMED: no vulnerability source was reachable",
    }[r.result()]
    p(f"result: {verdict}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="audit-deps", description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", type=Path, help="also write the report as JSON to this file")
    ap.add_argument("--only", nargs="+", metavar="NAME==VERSION", help="audit these instead of the environment")
    ap.add_argument("--ignore-from", type=Path, default=DOCS, help="markdown file with the ignore table")
    ap.add_argument("--timeout", type=float, default=10.0, help="seconds per HTTP request (default 10)")
    ap.add_argument("--workers", type=int, default=12, help="parallel PyPI requests (default 12)")
    ap.add_argument(
        "--strict",
        action="store_true",
        default=os.environ.get("AUDIT_STRICT") == "1",
        help="also fail (exit 3) when any distribution could not be audited (AUDIT_STRICT=1)",
    )
    args = ap.parse_args(argv)
    try:
        ignores = read_ignores(args.ignore_from)
        dists = parse_only(args.only) if args.only else installed()
    except SystemExit as exc:
        print(exc, file=sys.stderr)
        return 2
    report = run(dists, ignores, args.timeout, args.workers)
    print_report(report)
    if args.json:
        payload = asdict(report) | {"result": report.result(), "unexplained": len(report.unexplained)}
        args.json.write_text(json.dumps(payload, indent=1))
    result = report.result()
    if result == "vulnerable":
        return 1
    if result == "not-performed" or (args.strict and report.not_audited):
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
