"""The panel's shell (app.py): login gate, navigation by role, logout, and resuming a login from the cookie."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import pytest
from sqlalchemy import delete, update
from streamlit.testing.v1 import AppTest

from tests.factories import PASSWORD, inbox_with_one_conversation, make_actor, make_workspace
from workbench.base import clock
from workbench.services import auth
from workbench.store.config import get_settings
from workbench.store.db import session_scope
from workbench.store.models import AuthSession, Message, User, WorkspaceMember

APP = str(Path(__file__).resolve().parent.parent / "app.py")


def new_app() -> AppTest:
    """A fresh browser session on the panel (generous timeout: the first run imports everything)."""
    return AppTest.from_file(APP, default_timeout=60)


def signed_in_app(actor: auth.Actor) -> AppTest:
    """A fresh browser session already signed in as ``actor`` (the login form itself is tested here)."""
    with session_scope() as s:
        token = auth.open_session(s, actor)
    at = new_app()
    at.session_state["auth_actor"] = actor
    at.session_state["auth_token"] = token
    return at


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
    wait = r"(1 min|[0-9]+ s)"  # a minute from the failed attempt, less the time the page took
    assert re.fullmatch(rf"Muitas tentativas sem sucesso\. Aguarde {wait} e tente de novo\.", at.error[0].value)


def test_login_shows_navigation_and_sets_cookie(engine, r):
    actor = make_actor(make_workspace(), role="admin")
    at = login(new_app().run(), actor.email, PASSWORD)
    assert not at.exception
    assert at.session_state["auth_actor"] == actor
    assert [t.value for t in at.title] == ["Painel"]  # the default page of admins and supervisors
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


def browser_cookies(cookies: dict[str, str]):
    """Pretend the browser's first request carried ``cookies`` (AppTest has no browser)."""
    return mock.patch("streamlit.runtime.context._get_client_context",
                      return_value=SimpleNamespace(cookies=cookies, headers=[], remote_ip=None))


def test_refresh_resumes_login_from_cookie(engine, r):
    actor = make_actor(make_workspace(), role="supervisor")
    _, token = auth.login(actor.email, PASSWORD)
    with browser_cookies({"wb_session": token}):
        at = new_app().run()  # a new session, as after F5
    assert not at.exception
    assert at.session_state["auth_actor"] == actor
    assert [t.value for t in at.title] == ["Painel"]
    assert scripts(at) == []  # the cookie is already there


@pytest.mark.parametrize("cookie", ["revogado", ""])
def test_bad_or_revoked_cookie_shows_login(engine, r, cookie):
    actor = make_actor(make_workspace())
    _, token = auth.login(actor.email, PASSWORD)
    auth.logout(token)
    with browser_cookies({"wb_session": cookie or token}):
        at = new_app().run()
    assert [t.value for t in at.title] == ["Entrar no painel"]


SESSION_ENDED = "Sua sessão terminou (saída em outra aba, tempo esgotado ou acesso alterado). Entre de novo."


def test_logout_in_another_tab_ends_this_session_before_its_next_action(engine, r):
    """A reply typed after the login was revoked elsewhere is not sent: the form comes back with a notice."""
    inst, agent, conv_id = inbox_with_one_conversation()
    at = signed_in_app(agent).run()
    at = at.button(key=f"inbox_open_{conv_id}").click().run()
    auth.logout(at.session_state["auth_token"])  # "Sair" in another tab
    at = at.chat_input(key="inbox_reply").set_value("Oi!").run()
    assert not at.exception
    assert [t.value for t in at.title] == ["Entrar no painel"]
    assert [w.value for w in at.warning] == [SESSION_ENDED]
    assert "auth_actor" not in at.session_state
    with session_scope() as s:
        assert s.query(Message).filter_by(direction="out").count() == 0
    at.run()
    assert not at.warning, "said once"


@pytest.mark.parametrize("ending", ["expired", "deactivated", "removed"])
def test_an_ended_login_goes_back_to_the_form(engine, r, ending):
    actor = make_actor(make_workspace())
    at = signed_in_app(actor).run()
    with session_scope() as s:
        if ending == "expired":
            s.execute(update(AuthSession).values(expires_at=clock.now() - timedelta(seconds=1)))
        elif ending == "deactivated":
            s.execute(update(User).where(User.id == actor.user_id).values(is_active=False))
        else:
            s.execute(delete(WorkspaceMember).where(WorkspaceMember.user_id == actor.user_id))
    at.run()
    assert [t.value for t in at.title] == ["Entrar no painel"] and not at.sidebar.button
    assert [w.value for w in at.warning] == [SESSION_ENDED]


def test_a_new_role_applies_at_the_next_interaction(engine, r):
    ws = make_workspace()
    actor = make_actor(ws, role="admin")
    at = signed_in_app(actor).run()
    at.switch_page("pages/funnels.py").run()
    assert [t.value for t in at.title] == ["Funis"]
    with session_scope() as s:
        s.execute(update(WorkspaceMember).where(WorkspaceMember.user_id == actor.user_id).values(role="agent"))
    at.run()
    assert not at.exception
    assert at.session_state["auth_actor"].role == "agent" and "Atendente" in [c.value for c in at.sidebar.caption]
    assert [t.value for t in at.title] != ["Funis"], "the marketers' page is gone"
    with pytest.raises(ValueError):
        at.switch_page("pages/funnels.py")


def test_the_login_form_passes_the_client_address(engine, r):
    """The throttle counts per e-mail and address: the address comes from the connection, not from the form."""
    actor = make_actor(make_workspace())
    with mock.patch("streamlit.runtime.context._get_client_context",
                    return_value=SimpleNamespace(cookies={}, headers=[], remote_ip="203.0.113.9")):
        at = new_app().run()
        for _ in range(get_settings().login_max_failures):
            login(at, actor.email, "senha-errada-123")
        login(at, actor.email, PASSWORD)
    assert at.error[0].value.startswith("Muitas tentativas sem sucesso.")
    assert auth.login(actor.email, PASSWORD)[0] == actor  # from another address (here: this machine) it works
