"""Render the tables part of ``docs/data-contract.md`` from ``marketplace/schema.py``.

The prose of the document is written by hand; everything between the two markers below is
generated from the schema and the validation rules, so the document cannot drift from the code.

    .venv/bin/python scripts/render_contract.py          # rewrite the generated part in place
    .venv/bin/python scripts/render_contract.py --check  # exit 1 if the committed doc is stale
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from marketplace.schema import TABLES, Column, Table  # noqa: E402
from marketplace.validate import CROSS_RULES, EARLIEST, ROW_RULES  # noqa: E402

DOC = ROOT / "docs" / "data-contract.md"
BEGIN = "<!-- BEGIN GENERATED from marketplace/schema.py by scripts/render_contract.py: do not edit by hand -->"
END = "<!-- END GENERATED -->"

_TYPES = {
    "string": "string",
    "text": "text",
    "int": "int64",
    "float": "float64",
    "bool": "bool",
    "timestamp": "timestamp (UTC)",
}


def _num(x: float) -> str:
    return f"{int(x):,}" if float(x).is_integer() else f"{x:g}"


def _constraints(col: Column, table: Table) -> str:
    parts: list[str] = []
    if col.choices is not None:
        parts.append("one of " + ", ".join(f"`{c}`" for c in col.choices))
    if col.min is not None and col.max is not None:
        parts.append(f"{_num(col.min)} ≤ value ≤ {_num(col.max)}")
    elif col.min is not None:
        parts.append(f"≥ {_num(col.min)}")
    elif col.max is not None:
        parts.append(f"≤ {_num(col.max)}")
    if col.kind == "float":
        parts.append("finite")
    if col.max_len is not None:
        parts.append(f"≤ {col.max_len:,} characters")
    if col.kind == "string":
        parts.append("non-empty, no control characters")
    if col.kind == "text":
        parts.append("no control characters but tab/LF/CR")
    if col.kind == "timestamp":
        after = "not after the snapshot" if col.name in table.event_times else ""
        parts.append(f"from {EARLIEST.date()}" + (f", {after}" if after else ""))
    return "; ".join(parts)


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_table(table: Table) -> str:
    lines = [f"### `{table.name}`" + (" (optional)" if table.optional else ""), ""]
    if table.doc:
        lines += [table.doc, ""]
    lines.append(
        f"- **Key:** {', '.join(f'`{k}`' for k in table.key)} (unique"
        + (" together" if len(table.key) > 1 else "")
        + ")"
    )
    for fk in table.foreign_keys:
        null = " (may be null)" if fk.nullable else ""
        lines.append(f"- **Foreign key:** `{fk.column}` → `{fk.table}.{fk.target}`{null}")
    if table.optional:
        lines.append("- **Optional:** the file may be absent; the table then loads empty.")
    lines += ["", "| column | type | null | constraints | meaning |", "|---|---|---|---|---|"]
    for col in table.columns:
        null = "yes" if col.nullable else "no"
        lines.append(
            f"| `{col.name}` | {_TYPES[col.kind]} | {null} | {_escape(_constraints(col, table))} | {_escape(col.doc)} |"
        )
    return "\n".join(lines)


def render_rules() -> str:
    lines = ["### Time order and consistency (checked; each is an error)", ""]
    for rule in ROW_RULES:
        lines.append(f"- `{rule.table}`: `{rule.later}` ≥ `{rule.earlier}` when set ({rule.problem} is refused)")
    for cross in CROSS_RULES:
        op = "≥" if cross.op == "ge" else "="
        lines.append(
            f"- `{cross.table}.{cross.column}` {op} `{cross.via}`'s `{cross.parent_column}` "
            f"(through `{cross.table}.{cross.via}`; {cross.problem} is refused)"
        )
    return "\n".join(lines)


def render() -> str:
    """The generated part of the document, markers included."""
    parts = [BEGIN, "", "## Tables", ""]
    for table in TABLES:
        parts += [render_table(table), ""]
    parts += [render_rules(), "", END]
    return "\n".join(parts)


def splice(document: str, generated: str) -> str:
    """``document`` with its generated part replaced by ``generated``."""
    start = document.index(BEGIN)
    stop = document.index(END) + len(END)
    return document[:start] + generated + document[stop:]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="fail if docs/data-contract.md is not up to date")
    args = ap.parse_args(argv)
    current = DOC.read_text(encoding="utf-8")
    wanted = splice(current, render())
    if args.check:
        if wanted != current:
            print(f"{DOC} is stale: run .venv/bin/python scripts/render_contract.py", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(wanted, encoding="utf-8")
    print(f"rendered the tables of {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
