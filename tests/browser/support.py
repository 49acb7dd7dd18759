"""What the browser checks share: the browser's location and options, polling, logging in, screenshots."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.factories import PASSWORD

CHROMIUM = Path("/usr/bin/chromium")
# Headless, no sandbox (CI runs as root), and none of chromium's own network traffic (updates, sync, QUIC
# probes): the checks only talk to the local Streamlit server, and a machine without internet stays quiet.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
WINDOW = {"width": 1600, "height": 900}
"""A laptop-sized window: what "readable" is measured in."""
TIMEOUT_MS = 90_000
"""Every Playwright wait (locators, ``expect``): Streamlit's first render can take a while on a busy machine."""
SHOTS = Path(tempfile.gettempdir())


def wait_for(what: str, probe: Callable[[], Any], timeout: float = 90.0) -> Any:
    """Poll ``probe`` until it returns something truthy and return that; fail with ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.25)


def click_button(page: Page, name: str) -> None:
    """Click the button ``name`` once Streamlit's run has settled. While a script reruns, the elements of the
    previous run stay on the page, marked stale, so a button can be there twice and a strict click fails."""
    button = page.get_by_role("button", name=name)
    wait_for(f"the button {name!r} alone on a settled page",
             lambda: page.locator('[data-stale="true"]').count() == 0 and button.count() == 1)
    button.click()


def log_in(page: Page, base: str, email: str) -> None:
    """Sign in through the real form (the login cookie then carries the session across reloads)."""
    page.goto(base + "/")
    page.get_by_role("textbox", name="E-mail", exact=True).fill(email)
    page.locator('input[aria-label="Senha"]').fill(PASSWORD)  # a password box has no textbox role
    page.get_by_role("button", name="Entrar").click()
    expect(page.get_by_role("button", name="Sair")).to_be_visible()


def shot(page: Page, name: str) -> Path:
    """A screenshot of the window, kept in the temporary directory for whoever looks into a failure."""
    path = SHOTS / name
    page.screenshot(path=path)
    return path
