"""The panel's shell (app.py): login gate, navigation by role, logout, and resuming a login from the cookie."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import pytest
from streamlit.testing.v1 import AppTest

from tests.factories import PASSWORD, make_actor, make_workspace
from workbench.services import auth

APP = str(Path(__file__).resolve().parent.parent / "app.py")


def new_app() -> AppTest:
    """A fresh browser session on the panel (generous timeout: the first run imports everything)."""
    return AppTest.from_file(APP, default_timeout=60)


def login(at: AppTest, email: str, password: str) -> AppTest:
    at.text_input(key="auth_email").input(email)
    at.text_input(key="auth_password").input(password)
    return at.button[0].click().run()


def scripts(at: AppTest) -> list[str]:
    """Bodies of the st.html elements (the cookie scripts)."""
    return [el.proto.body for el in at.get("html")]


def test_logged_out_sees_only_the_login_form(engine, r):
    at = new_app().run()
    assert not at.exception
    assert [t.value for t in at.title] == ["Entrar no painel"]
    assert [w.label for w in at.text_input] == ["E-mail", "Senha"]
    assert "auth_actor" not in at.session_state
    assert not at.sidebar.button  # no menu, no logout


def test_wrong_password_shows_catalog_error(engine, r):
    actor = make_actor(make_workspace())
    at = login(new_app().run(), actor.email, "senha-errada-123")
    assert [e.value for e in at.error] == ["E-mail ou senha incorretos."]
    assert "auth_actor" not in at.session_state


def test_empty_form_asks_for_credentials(engine, r):
    at = new_app().run()
    at.button[0].click().run()
    assert [e.value for e in at.error] == ["Informe o e-mail e a senha."]


def test_throttled_login_shows_the_wait(engine, r):
    actor = make_actor(make_workspace())
    at = new_app().run()
    for _ in range(6):
        login(at, actor.email, "senha-errada-123")
    assert at.error[0].value.startswith("Muitas tentativas sem sucesso. Aguarde ")
    assert "min" in at.error[0].value


def test_login_shows_navigation_and_sets_cookie(engine, r):
    actor = make_actor(make_workspace(), role="admin")
    at = login(new_app().run(), actor.email, PASSWORD)
    assert not at.exception
    assert at.session_state["auth_actor"] == actor
    assert [t.value for t in at.title] == ["Caixa de entrada"]  # the default page
    assert actor.name in [t.value for t in at.sidebar.text]
    assert "Administrador" in [c.value for c in at.sidebar.caption]
    token = at.session_state["auth_token"]
    [cookie] = scripts(at)
    assert f"wb_session={token}" in cookie and "SameSite=Strict" in cookie and "max-age=259200" in cookie
    assert at.get("html")[0].proto.unsafe_allow_javascript
    # The cookie is written once, not on every run.
    at.run()
    assert scripts(at) == []
    for page, title in (("pages/connections.py", "Conexões"), ("pages/simulator.py", "Simulador")):
        at.switch_page(page).run()
        assert not at.exception
        assert [t.value for t in at.title] == [title]


def test_agents_do_not_get_the_simulator(engine, r):
    actor = make_actor(make_workspace(), role="agent")
    at = login(new_app().run(), actor.email, PASSWORD)
    assert "Atendente" in [c.value for c in at.sidebar.caption]
    with pytest.raises(ValueError):
        at.switch_page("pages/simulator.py")


def test_logout_revokes_token_and_clears_cookie(engine, r):
    actor = make_actor(make_workspace())
    at = login(new_app().run(), actor.email, PASSWORD)
    token = at.session_state["auth_token"]
    at.sidebar.button(key="auth_logout").click().run()
    assert not at.exception
    assert [t.value for t in at.title] == ["Entrar no painel"]
    assert "auth_actor" not in at.session_state
    assert auth.resume(token) is None
    [cookie] = scripts(at)
    assert "wb_session=;" in cookie and "max-age=0" in cookie


def _browser_cookies(cookies: dict[str, str]):
    """Pretend the browser's first request carried ``cookies`` (AppTest has no browser)."""
    return mock.patch("streamlit.runtime.context._get_client_context",
                      return_value=SimpleNamespace(cookies=cookies, headers=[]))


def test_refresh_resumes_login_from_cookie(engine, r):
    actor = make_actor(make_workspace(), role="supervisor")
    _, token = auth.login(actor.email, PASSWORD)
    with _browser_cookies({"wb_session": token}):
        at = new_app().run()  # a new session, as after F5
    assert not at.exception
    assert at.session_state["auth_actor"] == actor
    assert [t.value for t in at.title] == ["Caixa de entrada"]
    assert scripts(at) == []  # the cookie is already there


@pytest.mark.parametrize("cookie", ["revogado", ""])
def test_bad_or_revoked_cookie_shows_login(engine, r, cookie):
    actor = make_actor(make_workspace())
    _, token = auth.login(actor.email, PASSWORD)
    auth.logout(token)
    with _browser_cookies({"wb_session": cookie or token}):
        at = new_app().run()
    assert [t.value for t in at.title] == ["Entrar no painel"]
