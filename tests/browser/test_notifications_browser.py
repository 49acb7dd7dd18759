"""The notifications bell in a real browser: the popover opens, and "Abrir conversa" switches to the inbox with
the conversation open (a page switch asked from inside the bell's fragment). Skipped without Chromium."""

from __future__ import annotations

import json

from tests.browser.test_editor_browser import (  # noqa: F401 - app_server and browser are fixtures
    CLICK_BUTTON,
    _body_text,
    _wait,
    app_server,
    browser,
    pytestmark,
)
from tests.factories import PASSWORD, inbound, make_actor, make_instance, make_team, make_workspace, publish, run_jobs
from tests.test_notifications import notify_funnel
from workbench.services import funnels, notifications, runs

__all__ = ["pytestmark"]
# The popover's button text also holds its icons' ligatures ("notifications", "expand_more").
CLICK_CONTAINING = """((label) => {
  const button = [...document.querySelectorAll('button')].find(b => b.innerText.includes(label));
  if (!button) return false;
  button.click();
  return true;
})(%s)"""


def test_the_bell_opens_the_conversation(app_server, browser):  # noqa: F811 - fixtures imported above
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

    browser.call("Page.navigate", url=app_server + "/")
    _wait("the login form", lambda: browser.js("!!document.querySelector('input[aria-label=\"Senha\"]')"))
    browser.type_into("E-mail", "vendedor@example.com")
    browser.type_into("Senha", PASSWORD)
    assert browser.js(CLICK_BUTTON % json.dumps("Entrar"))
    _wait("the bell with one unread notification", lambda: "Notificações (1)" in _body_text(browser))
    _wait("the bell's button", lambda: browser.js(CLICK_CONTAINING % json.dumps("Notificações (1)")))
    _wait("the popover", lambda: "Maria pediu ajuda: Quero um orçamento" in _body_text(browser))
    # the popover's body is drawn a moment before its buttons: click as soon as one is there
    _wait("the 'Abrir conversa' button", lambda: browser.js(CLICK_CONTAINING % json.dumps("Abrir conversa")))
    _wait("the conversation open in the inbox",
          lambda: "Parar funil" in _body_text(browser) or "Iniciar funil" in _body_text(browser), timeout=60)
    browser.screenshot("notifications_opened.png")
    assert notifications.unread_count(seller) == 0
    _wait("the bell to clear", lambda: "Notificações (1)" not in _body_text(browser))
