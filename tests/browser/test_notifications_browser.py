"""The notifications bell in a real browser: the popover opens, and "Abrir conversa" switches to the inbox with
the conversation open (a page switch asked from inside the bell's fragment)."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.browser.support import log_in, shot
from tests.factories import inbound, make_actor, make_instance, make_team, make_workspace, publish, run_jobs
from tests.test_notifications import notify_funnel
from workbench.services import funnels, notifications, runs


def test_the_bell_opens_the_conversation(app_server, page):
    ws = make_workspace()
    inst = make_instance(ws)
    admin = make_actor(ws, "admin")
    seller = make_actor(ws, "agent", "vendedor@example.com")
    make_team(ws, "Vendas", seller.user_id)
    fid = funnels.create_funnel(admin, "Aviso", notify_funnel("Vendas"))
    funnels.publish(admin, fid)
    funnels.set_active(admin, fid, True)
    runs.clear_cache()
    publish(inbound(inst, phone="5511988887777", text="Quero um orçamento"))
    run_jobs()

    log_in(page, app_server, "vendedor@example.com")
    # Names match by substring: the button's text also holds its icons' ligatures ("notifications", ...).
    page.get_by_role("button", name="Notificações (1)").click()
    expect(page.get_by_text("Maria pediu ajuda: Quero um orçamento")).to_be_visible()
    page.get_by_role("button", name="Abrir conversa").click()
    expect(page.get_by_role("button", name="Parar funil").or_(page.get_by_role("button", name="Iniciar funil"))
           ).to_be_visible()
    shot(page, "notifications_opened.png")
    assert notifications.unread_count(seller) == 0
    expect(page.get_by_role("button", name="Notificações (1)")).to_have_count(0)
