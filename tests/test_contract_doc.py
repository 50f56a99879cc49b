"""docs/data-contract.md stays true to marketplace/schema.py: its tables part is the render."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from marketplace.schema import TABLES

ROOT = Path(__file__).resolve().parents[1]


def _renderer() -> ModuleType:
    spec = importlib.util.spec_from_file_location("render_contract", ROOT / "scripts" / "render_contract.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_doc_matches_the_schema_render() -> None:
    render = _renderer()
    doc = (ROOT / "docs" / "data-contract.md").read_text(encoding="utf-8")
    assert render.splice(doc, render.render()) == doc, "run: .venv/bin/python scripts/render_contract.py"


def test_doc_names_every_table_and_column() -> None:
    doc = (ROOT / "docs" / "data-contract.md").read_text(encoding="utf-8")
    for table in TABLES:
        assert f"### `{table.name}`" in doc
        for col in table.columns:
            assert f"| `{col.name}` |" in doc
    for topic in ("manifest.json", "ground_truth.parquet", "UTF-8", "ISO-8601", "Empty field = null", "Exporting"):
        assert topic in doc
