"""The README stays true: its two Quick start commands, and a row for every setting."""

from __future__ import annotations

import re
from pathlib import Path

from workbench.store.config import Settings, env_names, load_settings

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def _quick_start_blocks() -> list[str]:
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return [b.strip() for b in re.findall(r"```(?:bash)?\n(.*?)```", section, flags=re.S)]


def test_quick_start_has_the_two_commands():
    blocks = _quick_start_blocks()
    assert len(blocks) >= 2
    assert blocks[0].endswith("python -m workbench up")
    assert "pytest" in blocks[1]


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    assert _quick_start_blocks()[1] in ci


def test_every_setting_is_documented():
    for name, var in env_names().items():
        assert f"`{var}`" in README, f"{var} ({name}) missing from README's Settings table"
        assert Settings.model_fields[name].description


def test_settings_read_from_environment():
    settings = load_settings({"WORKBENCH_WORKERS": "4", "DATABASE_URL": "postgresql://x/y"})
    assert settings.workers == 4 and settings.database_url == "postgresql://x/y"
