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
from workbench.services import auth, login_cookie, workspaces
from workbench.store.config import get_settings
from workbench.store.db import session_scope
from workbench.store.models import AuthSession, Message, User, WorkspaceMember

APP = str(Path(__file__).resolve().parent.parent / "app.py")


def new_app() -> AppTest:
    """A fresh browser session on the panel (generous timeout: the first run imports everything)."""
    return AppTest.from_file(APP, default_timeout=60)


def signed_in_app(actor: auth.Actor, token: str | None = None) -> AppTest:
    """A fresh browser session already signed in as ``actor`` (the login form itself is tested here), with the
    login ``token`` (default: a new one); two sessions with one token are two tabs of one browser."""
    if token is None:
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


def handoff_code(script: str) -> str:
    """The one-time code a cookie script POSTs to the panel's route (login_cookie.SET_PATH)."""
    assert f'fetch("{login_cookie.SET_PATH}"' in script, script
    return re.search(r'\\"code\\": \\"([A-Za-z0-9_-]+)\\"', script).group(1)


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
    assert token not in cookie, "the token never reaches page JavaScript: the server sets the HttpOnly cookie"
    assert login_cookie.redeem_handoff(handoff_code(cookie), None) == token
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
    assert f'fetch("{login_cookie.CLEAR_PATH}"' in cookie


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
    [cookie] = scripts(at)  # the cookie is set again, so it lasts as long as the login slides
    assert login_cookie.redeem_handoff(handoff_code(cookie), None) == token
    at.run()
    assert scripts(at) == [], "once per session"


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


def change_password(at: AppTest, current: str, new: str) -> AppTest:
    """*Minha conta* in the sidebar: the current password, the new one twice, *Trocar senha*."""
    at.text_input(key="account_current").input(current)
    at.text_input(key="account_new").input(new)
    at.text_input(key="account_confirm").input(new)
    return at.button(key="account_save_password").click().run()


def on_the_login_form(at: AppTest) -> bool:
    """The login form and nothing else: no menu, no sidebar, no page of the panel."""
    return ([t.value for t in at.title] == ["Entrar no painel"] and "auth_actor" not in at.session_state
            and not at.sidebar.button and not at.sidebar.text and not at.metric and not at.dataframe
            and not at.selectbox and [w.label for w in at.text_input] == ["E-mail", "Senha"])


@pytest.mark.parametrize("ending", ["logout", "deactivated", "password"])
def test_a_login_ended_in_one_tab_ends_every_other_tab_at_its_next_action(engine, r, ending):
    """Two tabs of one browser share the login (the cookie's token). Tab A logs out, or an admin deactivates the
    person, or tab A changes the password: tab B's next action is refused and B shows only the login form."""
    ws = make_workspace()
    person = make_actor(ws, role="supervisor")
    admin = make_actor(ws, role="admin")
    with session_scope() as s:
        token = auth.open_session(s, person)
    tab_a, tab_b = signed_in_app(person, token).run(), signed_in_app(person, token).run()
    assert [t.value for t in tab_b.title] == ["Painel"] and tab_b.metric, "B shows the Painel"
    if ending == "logout":
        tab_a = tab_a.sidebar.button(key="auth_logout").click().run()
        assert on_the_login_form(tab_a)
    elif ending == "deactivated":
        workspaces.set_active(admin, person.user_id, False)
    else:
        tab_a = change_password(tab_a, PASSWORD, "outra-senha-boa")
        assert not tab_a.exception and tab_a.session_state["auth_actor"] == person, "A goes on, signed in"
        new_token = tab_a.session_state["auth_token"]
        assert new_token != token and auth.resume(new_token) == person
        [cookie] = scripts(tab_a)  # the browser's cookie gets the new login
        assert login_cookie.redeem_handoff(handoff_code(cookie), None) == new_token
    assert auth.resume(token) is None
    # B's next action: choosing an availability (a callback) is refused, and B goes back to the form
    tab_b = tab_b.selectbox(key="presence_availability").set_value("away").run()
    assert not tab_b.exception
    assert on_the_login_form(tab_b)
    assert [w.value for w in tab_b.warning] == [SESSION_ENDED]
    with session_scope() as s:
        assert s.get(WorkspaceMember, (ws, person.user_id)).availability == "available", "the action did not run"


def test_the_login_form_throttles_an_address_trying_many_emails(engine, r, monkeypatch):
    """The second key, through the form: one address failing with many e-mails waits, whichever e-mail it types."""
    monkeypatch.setenv("WORKBENCH_LOGIN_ADDRESS_MAX_FAILURES", "3")
    get_settings.cache_clear()
    actor = make_actor(make_workspace())
    try:
        with mock.patch("streamlit.runtime.context._get_client_context",
                        return_value=SimpleNamespace(cookies={}, headers=[], remote_ip="203.0.113.9")):
            at = new_app().run()
            for n in range(3):
                login(at, f"pessoa{n}@example.com", "Senha123!")
                assert [e.value for e in at.error] == ["E-mail ou senha incorretos."]
            login(at, actor.email, PASSWORD)
        assert at.error[0].value.startswith("Muitas tentativas sem sucesso.")
        assert "auth_actor" not in at.session_state
    finally:
        get_settings.cache_clear()
