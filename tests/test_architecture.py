"""The floors of docs/architecture.md hold: import-linter checks every contract in pyproject.toml.

A wrong arrow (a service importing the worker, the pure core importing SQLAlchemy, a page-less module importing
Streamlit) fails here, and so in CI. The second test proves the check bites: the same contracts on a copy of the
code with one upward import added must fail. The last tests keep two other things in one place each: environment
reads (Settings) and the clock with its default time zone.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("workbench", "engine", "connector", "pages")


def lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run import-linter on the project at ``cwd`` (a fresh process, so the import graph is read from disk)."""
    code = "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports(no_cache=True, no_logo=True))"
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={"PYTHONPATH": str(cwd), "PATH": "/usr/bin:/bin"})


def test_import_contracts_hold() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "BROKEN" not in result.stdout


@pytest.mark.parametrize(("module", "line", "contract"), [
    ("workbench/services/outbox.py", "from engine.worker import jobs", "Floors"),
    ("engine/core/matching.py", "import sqlalchemy", "pure"),
    ("workbench/store/models.py", "from workbench.services import auth", "Floors"),
    ("connector/relay.py", "from workbench.store import db", "connector imports nothing"),
    ("connector/relay.py", "from engine.core import matching", "connector imports nothing"),
    ("workbench/store/config.py", "from workbench.store import db", "settings module is a leaf"),
    ("workbench/store/config.py", "from workbench.base import errors", "settings module is a leaf"),
    ("workbench/services/contacts.py", "def _x():\n    import streamlit", "Streamlit"),
])
def test_a_wrong_import_breaks_a_contract(tmp_path: Path, module: str, line: str, contract: str) -> None:
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / module
    target.write_text(target.read_text() + f"\n{line}\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    # a summary row: "<contract name> BROKEN", perhaps followed by "(n ignored imports)"
    broken = [row for row in result.stdout.splitlines() if " BROKEN" in row]
    assert any(contract in row for row in broken), result.stdout


ENV_READS = ("os.getenv", "os.environ.get", "os.environ.setdefault")


def environment_reads(source: str) -> list[str]:
    """Where some code reads one environment variable: ``os.getenv``, ``os.environ.get``, ``os.environ[...]``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        called = isinstance(node, ast.Call) and ast.unparse(node.func) in ENV_READS
        indexed = isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load) and \
            ast.unparse(node.value) == "os.environ"
        if called or indexed:
            found.append(f"{node.lineno}: {ast.unparse(node)}")
    return found


def test_environment_is_read_only_by_settings() -> None:
    """Every environment default lives in one documented place: the Settings of workbench/store/config.py."""
    config = ROOT / "workbench" / "store" / "config.py"
    reads = {str(path.relative_to(ROOT)): hits for package in ("workbench", "engine")
             for path in sorted((ROOT / package).rglob("*.py")) if path != config
             if (hits := environment_reads(path.read_text()))}
    assert reads == {}
    # the check bites on each way of reading one variable
    assert len(environment_reads('import os\nos.getenv("A", "1")\nos.environ.get("B", "")\nos.environ["C"]\n')) == 3


def test_one_clock_and_one_default_zone() -> None:
    """``workbench/base/clock.py`` is the only place that reads the clock or names the default time zone.

    Besides it, the zone's name appears only in the first migration (history, never edited) and in the list of
    Brazil's zones Configurações offers.
    """
    allowed = {"workbench/base/clock.py": ("datetime.now(", '"America/Sao_Paulo"'),
               "workbench/store/migrations/versions/0001_initial_schema.py": ("'America/Sao_Paulo'",),
               "workbench/services/workspaces.py": ('BRAZIL_ZONES = ("America/Sao_Paulo"',)}
    found = {}
    for package in ("workbench", "engine", "pages"):
        for path in sorted((ROOT / package).rglob("*.py")):
            name = str(path.relative_to(ROOT))
            text = path.read_text()
            for needle in ("datetime.now(", "datetime.utcnow(", "America/Sao_Paulo"):
                for line in text.splitlines():
                    if needle in line and not any(ok in line for ok in allowed.get(name, ())):
                        found.setdefault(name, []).append(line.strip())
    assert found == {}
