"""Browser checks: the panel served by ``streamlit run panel.py`` (as ``python -m workbench up`` serves it),
driven by Playwright in Debian's chromium.

Every test here is skipped, with the reason in pytest's summary, when ``/usr/bin/chromium`` is missing
(``.ci/run`` installs it when it can). Playwright drives that browser, so it downloads nothing. Every wait polls
with a generous deadline; nothing asserts timing.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from tests.browser.support import CHROMIUM, CHROMIUM_ARGS, TIMEOUT_MS, WINDOW, wait_for

ROOT = Path(__file__).resolve().parents[2]
expect.set_options(timeout=TIMEOUT_MS)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip this directory's tests when there is no browser (before their fixtures start a server)."""
    if not CHROMIUM.exists():
        pytest.skip(f"needs Debian's chromium ({CHROMIUM}): apt-get install -y chromium")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _healthy(base: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture
def app_server(servers, engine, r) -> Iterator[str]:
    """``streamlit run panel.py`` on a free port, on the test database and Redis; yields its base URL."""
    port = _free_port()
    env = {**os.environ, **servers, "PYTHONPATH": str(ROOT)}
    streamlit = Path(sys.executable).with_name("streamlit")
    log = tempfile.NamedTemporaryFile(prefix="browser-streamlit-", suffix=".log", delete=False)
    process = subprocess.Popen(
        [str(streamlit), "run", "panel.py", "--server.headless=true", f"--server.port={port}",
         "--server.address=127.0.0.1", "--browser.gatherUsageStats=false", "--server.fileWatcherType=none"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for("the Streamlit server", lambda: _healthy(base))
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture
def page() -> Iterator[Page]:
    """A fresh page in headless chromium, in a laptop-sized window."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport=WINDOW)
            context.set_default_timeout(TIMEOUT_MS)
            yield context.new_page()
        finally:
            browser.close()
