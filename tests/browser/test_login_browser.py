"""The login in a real browser: the session cookie is HttpOnly (page JavaScript never sees the token), survives a
reload, and *Sair* clears it; a login that ends in one tab (*Sair*, a password change) ends the other tabs of the
browser at their next action, and a password change gives the changing tab's cookie a new login; the login
throttle counts the address the panel's server saw (a trusted proxy's ``X-Forwarded-For``)."""

from __future__ import annotations

import contextlib

from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright
from playwright.sync_api import Error as PlaywrightError

from tests.browser.support import CHROMIUM, CHROMIUM_ARGS, TIMEOUT_MS, WINDOW, click_button, log_in, shot, wait_for
from tests.factories import PASSWORD, make_actor, make_workspace
from workbench.services import auth
from workbench.store.config import get_settings
from workbench.store.db import session_scope
from workbench.store.models import LoginThrottle

LOGIN_TITLE = "Entrar no painel"


def session_cookies(context: BrowserContext) -> list[dict]:
    return [cookie for cookie in context.cookies() if cookie["name"] == "wb_session"]


def test_the_login_cookie_is_httponly_survives_a_reload_and_logout_clears_it(app_server, page: Page):
    person = make_actor(make_workspace(), "supervisor", "gerente@example.com")
    log_in(page, app_server, "gerente@example.com")
    [cookie] = wait_for("the login cookie", lambda: session_cookies(page.context))
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/"
    assert auth.resume(cookie["value"]) == person
    assert "wb_session" not in page.evaluate("document.cookie"), "page JavaScript cannot read the login"
    assert cookie["value"] not in page.content(), "nor find the token in the page"
    page.reload()
    expect(page.get_by_role("button", name="Sair")).to_be_visible()
    click_button(page, "Sair")
    expect(page.get_by_text(LOGIN_TITLE)).to_be_visible()
    wait_for("the cookie to be cleared", lambda: not session_cookies(page.context))
    assert auth.resume(cookie["value"]) is None
    page.reload()
    expect(page.get_by_text(LOGIN_TITLE)).to_be_visible()
    shot(page, "login_after_logout.png")


def next_action(tab: Page) -> None:
    """The tab's next action: a click on "Contatos". The bell's refresh (every 5 s) is an action of the tab too,
    and may have ended it first, taking the link away: then there is nothing left to click."""
    link = tab.get_by_role("link", name="Contatos", exact=True)
    with contextlib.suppress(PlaywrightError):
        link.click(timeout=10_000)


def test_a_logout_in_one_tab_ends_the_other_tab_at_its_next_action(app_server, page: Page):
    make_actor(make_workspace(), "supervisor", "gerente@example.com")
    log_in(page, app_server, "gerente@example.com")
    wait_for("the login cookie", lambda: session_cookies(page.context))
    other = page.context.new_page()  # a second tab of the same browser: signed in by the cookie
    other.goto(app_server + "/")
    expect(other.get_by_role("button", name="Sair")).to_be_visible()
    click_button(page, "Sair")
    expect(page.get_by_text(LOGIN_TITLE)).to_be_visible()
    next_action(other)
    expect(other.get_by_text(LOGIN_TITLE)).to_be_visible()
    expect(other.get_by_role("button", name="Sair")).to_have_count(0)
    expect(other.get_by_role("link", name="Contatos", exact=True)).to_have_count(0)
    shot(other, "login_other_tab_ended.png")


def test_a_password_change_ends_the_other_tab_and_renews_this_ones_cookie(app_server, page: Page):
    person = make_actor(make_workspace(), "supervisor", "gerente@example.com")
    log_in(page, app_server, "gerente@example.com")
    [old] = wait_for("the login cookie", lambda: session_cookies(page.context))
    other = page.context.new_page()
    other.goto(app_server + "/")
    expect(other.get_by_role("button", name="Sair")).to_be_visible()
    click_button(page, "Minha conta")
    page.locator('input[aria-label="Senha atual"]').fill(PASSWORD)
    page.locator('input[aria-label="Nova senha"]').fill("outra-senha-boa")
    page.locator('input[aria-label="Repita a nova senha"]').fill("outra-senha-boa")
    click_button(page, "Trocar senha")
    expect(page.get_by_text("Senha trocada.", exact=False)).to_be_visible()
    # this tab's cookie now holds a new login; the old one is over
    [new] = wait_for("the renewed cookie",
                     lambda: [c for c in session_cookies(page.context) if c["value"] != old["value"]])
    assert new["httpOnly"] and auth.resume(new["value"]) == person and auth.resume(old["value"]) is None
    next_action(other)
    expect(other.get_by_text(LOGIN_TITLE)).to_be_visible()
    expect(other.get_by_role("button", name="Sair")).to_have_count(0)
    page.reload()  # the tab that changed it stays signed in, across a reload too
    expect(page.get_by_role("button", name="Sair")).to_be_visible()


def _browser_from(browser: Browser, address: str) -> Page:
    """A separate browser (its own cookies) whose requests reach the panel through a proxy on this machine that
    says the client is ``address`` (uvicorn trusts a proxy on 127.0.0.1 by default)."""
    context = browser.new_context(viewport=WINDOW, extra_http_headers={"X-Forwarded-For": address})
    context.set_default_timeout(TIMEOUT_MS)
    return context.new_page()


def _failures(address: str | None) -> int:
    """Failed logins counted for the e-mail from ``address`` (0 when none)."""
    with session_scope() as s:
        row = s.get(LoginThrottle, auth._throttle_key("gerente@example.com", address))
        return row.failures if row else 0


def _try(page: Page, email: str, password: str) -> None:
    page.get_by_role("textbox", name="E-mail", exact=True).fill(email)
    page.locator('input[aria-label="Senha"]').fill(password)
    click_button(page, "Entrar")


def test_the_throttle_counts_the_address_the_panel_saw(app_server):
    make_actor(make_workspace(), "supervisor", "gerente@example.com")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            guesser = _browser_from(browser, "203.0.113.9")
            guesser.goto(app_server + "/")
            for n in range(1, get_settings().login_max_failures + 1):
                _try(guesser, "gerente@example.com", "senha-errada-123")
                # counted under the e-mail and the address the panel's server saw (the proxy's header)
                wait_for(f"failure {n} to be counted", lambda n=n: _failures("203.0.113.9") == n)
                expect(guesser.get_by_text("E-mail ou senha incorretos.")).to_be_visible()
            _try(guesser, "gerente@example.com", PASSWORD)  # even the right one waits now
            expect(guesser.get_by_text("Muitas tentativas sem sucesso.", exact=False)).to_be_visible()
            owner = _browser_from(browser, "198.51.100.7")  # the account's owner, elsewhere
            owner.goto(app_server + "/")
            _try(owner, "gerente@example.com", PASSWORD)
            expect(owner.get_by_role("button", name="Sair")).to_be_visible()
            assert _failures(None) == 0, "nothing was counted as this machine"
        finally:
            browser.close()
