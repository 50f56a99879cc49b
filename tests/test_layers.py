"""The house's floors: imports run from the application down to the ground, never up.

The contract is import-linter's ``layers`` contract in ``pyproject.toml`` (``lint-imports`` also runs in
``make lint``); these tests run it on the tree, and prove once that it fails on an upward import
(a function-level one, the kind a reviewer misses) in a copy of the tree.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "marketplace", "features", "models", "training", "sanctions", "serving", "dajia")
LINT = str(Path(sys.executable).with_name("lint-imports"))


def _lint(cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([LINT, "--no-cache"], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_the_tree_keeps_the_layers() -> None:
    done = _lint(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 kept, 0 broken" in done.stdout


def test_an_upward_import_breaks_the_contract(tmp_path: Path) -> None:
    for name in PACKAGES:
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    assert _lint(tmp_path).returncode == 0  # the copy is analysed, not the installed tree
    with (tmp_path / "core" / "atomic.py").open("a") as f:
        f.write("\n\ndef _upward() -> None:\n    import dajia.cli  # noqa: F401\n")
    done = _lint(tmp_path)
    assert done.returncode == 1, done.stdout
    assert "core is not allowed to import dajia" in done.stdout
    assert "core.atomic -> dajia.cli" in done.stdout
