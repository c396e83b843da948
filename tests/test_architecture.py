"""The package's map and layers stay true (CausalPy's ARCHITECTURE inventory test, in spirit):
every module is named in ARCHITECTURE.md, no function-level `helpers` import hides a cycle, and
no comment sends a reader to a file outside the repository."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "helpers"
MODULES = sorted(p for p in PACKAGE.rglob("*.py"))


def test_every_module_is_in_architecture_md():
    text = (ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8")
    missing = [p.relative_to(PACKAGE.parent).as_posix() for p in MODULES
               if f"`{p.relative_to(PACKAGE.parent).as_posix()}`" not in text]
    assert not missing, f"ARCHITECTURE.md does not describe: {missing}"


def test_architecture_md_names_no_module_that_does_not_exist():
    text = (ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8")
    named = set(re.findall(r"`(helpers/[\w/]+\.py)`", text))
    gone = sorted(n for n in named if not (PACKAGE.parent / n).exists())
    assert not gone, f"ARCHITECTURE.md names modules that are gone: {gone}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_no_function_level_helpers_imports(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    late = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for inner in ast.walk(node):
                if isinstance(inner, ast.ImportFrom) and (inner.module or "").startswith("helpers"):
                    late.append(inner.lineno)
                if isinstance(inner, ast.Import) and any(a.name.startswith("helpers")
                                                         for a in inner.names):
                    late.append(inner.lineno)
    assert not late, f"{path.name} imports helpers inside functions at lines {late}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_comments_do_not_point_outside_the_repository(path):
    text = path.read_text(encoding="utf-8")
    assert not re.search(r"\.\./shared|/work/|shared/DESIGN", text), (
        f"{path.name} refers to a file outside the repository")


def test_import_linter_contracts_hold():
    """The layers contract (also run by `make test` before pytest)."""
    exe = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(exe)], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-2000:]
    assert "broken" in result.stdout and " 0 broken" in result.stdout
