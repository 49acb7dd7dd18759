"""Demo data and the notebooks: ``demo.generate`` fills a workspace the reports find worth showing, and every
notebook in notebooks/ runs top to bottom against the test database (nbclient) without an error."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from workbench.analytics import demo, notebook, reports, store

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.fixture
def filled(engine):
    store.close()
    shutil.rmtree(store.directory(), ignore_errors=True)
    result = demo.generate(demo.Sizes(contacts=300, days=30, agents=3, seed=7), None, "Demo")
    store.refresh(full=True)
    yield result
    store.close()


def test_demo_data_makes_every_report_worth_looking_at(filled):
    counts = filled["counts"]
    assert counts["contacts"] == 300 and counts["conversations"] > 250 and counts["messages"] > counts["contacts"]
    actor = notebook.analyst(filled["workspace"])
    filters = notebook.last_days(actor, 30)
    overview = reports.overview(actor, filters)
    values = {k["metric"]: k["value"] for k in overview["kpis"]}
    assert values["new_conversations"] > 0 and values["qualified"] > 0 and values["frt_median"] > 0
    assert values["resolution_median"] > 0 and overview["heatmap"].height > 10
    team = reports.team(actor, filters)
    assert team["people"]["resolved_count"].sum() > 0 and team["distribution"]["responses"].sum() > 0
    funnel_id = filled["funnels"][0][0]
    report = reports.funnel(actor, funnel_id, filters)
    assert report["entered"] > 0 and report["steps"]["left"].sum() + report["steps"]["in_progress"].sum() > 0
    assert reports.leads_over_time(actor, filters, "source").height > 0


def test_demo_data_is_repeatable_and_can_be_added_twice(filled):
    again = demo.generate(demo.Sizes(contacts=50, days=30, agents=1, seed=7), filled["workspace"])
    assert again["counts"]["contacts"] <= 50  # a phone the workspace has already is skipped


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs_without_errors(filled, path, settings_env):
    settings_env(PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    book = nbformat.read(path, as_version=4)
    NotebookClient(book, timeout=240, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    outputs = [o for cell in book.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "workbench", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)


def test_demo_data_and_notebooks_commands(engine):
    store.close()
    shutil.rmtree(store.directory(), ignore_errors=True)
    done = run_cli("demo-data", "--contacts", "40", "--days", "10", "--agents", "2")
    assert done.returncode == 0, done.stderr
    assert "Demo workspace created" in done.stdout and "40 contacts" in done.stdout
    actor = notebook.analyst()
    assert reports.overview(actor, notebook.last_days(actor, 10))["kpis"][0]["value"] > 0
    # the notebooks command hands its arguments to jupyter lab, with the database set
    version = run_cli("notebooks", "--version")
    assert version.returncode == 0 and version.stdout.strip()[0].isdigit(), version.stderr
