"""The Painel in a real browser: an admin lands on it, the Plotly charts draw, and clicking a bar of *Novas
conversas por dia* lists that day's conversations (a selection event only a browser sends)."""

from __future__ import annotations

import shutil

from playwright.sync_api import expect
from sqlalchemy import text

from tests.analytics_history import History
from tests.browser.support import log_in, shot
from workbench.analytics import store
from workbench.base.clock import now
from workbench.store.db import session_scope


def test_clicking_a_day_lists_its_conversations(app_server, page):
    store.close()
    shutil.rmtree(store.directory(), ignore_errors=True)
    h = History()
    day = now().astimezone(h.zone).strftime("%Y-%m-%d")
    for minute in ("00:01", "00:02"):
        h.conversation(f"{day} {minute}")
    with session_scope() as s:  # a known e-mail to sign in with
        s.execute(text("UPDATE users SET email = 'gerente@example.com' WHERE id = :u"), {"u": h.admin.user_id})
    store.refresh(full=True)

    log_in(page, app_server, "gerente@example.com")
    expect(page.get_by_role("heading", name="Painel")).to_be_visible()
    expect(page.get_by_text("Novas conversas por dia")).to_be_visible()
    bars = page.locator(".js-plotly-plot .bars path")
    expect(bars.last).to_be_visible()
    box = bars.last.bounding_box()  # today's bar, the last of the period; Plotly takes clicks on a layer above it
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    expect(page.get_by_text("Conversas criadas no dia")).to_be_visible()
    expect(page.get_by_text(day, exact=True)).to_be_visible()  # the grid below lists the day's times too
    expect(page.get_by_role("button", name="Baixar CSV")).to_have_count(3)  # per day, by source, the day's list
    expect(page.get_by_text("Etiqueta", exact=True)).to_have_count(1)  # the page drew once, nothing left over
    shot(page, "painel_day_drill.png")
