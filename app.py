"""The panel's entry point: the login gate, then navigation over the pages in ``pages/``.

Served by ``panel.py``: run ``streamlit run panel.py`` (``python -m workbench up`` does it for you). Nothing
here but the gate and the menu: every screen is a file in ``pages/`` (the sidebar's notifications bell is
``pages/ui/bell.py``) and every rule lives in ``workbench/``.

A login survives a browser refresh: the login token goes into an ``HttpOnly`` cookie that only the panel's
server writes (``panel.py``; the page hands it a one-time code, ``workbench/services/login_cookie.py``), and a
new session reads it from ``st.context.cookies`` and resumes the login with ``auth.resume``. Only the token's
hash is stored server-side; logging out revokes it. Every run re-reads the actor from the token
(``pages/ui/gate.py``), so a login that ended elsewhere ends here too.
"""

from __future__ import annotations

import json

import redis
import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from pages.ui import presence
from pages.ui.bell import bell
from pages.ui.feedback import flash, show_flash
from pages.ui.gate import ACTOR_KEY, COOKIE_ACTION_KEY, TOKEN_KEY, store_token
from pages.ui.panel import unavailable_notice
from workbench.base import i18n
from workbench.base.errors import AuthError
from workbench.base.i18n import error_text, role_label, t
from workbench.services import auth, login_cookie, workspaces
from workbench.store.bus import get_redis
from workbench.store.db import get_engine
from workbench.store.outages import DRAWING_ERRORS

# Session keys of the gate (the actor and its token: pages/ui/gate.py).
RESUME_TRIED_KEY = "auth_resume_tried"
LOGIN_FLASH_KEY = "auth_flash"
DISPLAY_ZONE_KEY = "display_zone"  # the workspace's time zone, read once per session (Configurações updates it)

st.set_page_config(page_title=t("app.title"), page_icon="💬", layout="wide")


@st.cache_resource
def _connect() -> None:
    """Create the pooled database engine and Redis client once per server process (the only cached things)."""
    get_engine()
    get_redis()


def _cookie_token() -> str | None:
    """The login token the browser sent with this session's first request, if any."""
    token = st.context.cookies.get(login_cookie.COOKIE_NAME)
    # Only a real cookie string counts (a test harness without a browser answers with something else).
    return token if isinstance(token, str) and token else None


def _post_script(path: str, body: dict) -> None:
    """Have the browser POST ``body`` as JSON to one of the login cookie's routes (``panel.py``), same origin.

    The body is ours (a one-time code or nothing), never user text; ``json.dumps`` quotes it for the script.
    The script removes itself, so the code does not linger in the page.
    """
    st.html(f"<script>fetch({json.dumps(path)}, {{method: 'POST', credentials: 'same-origin', "
            f"headers: {{'Content-Type': 'application/json'}}, body: {json.dumps(json.dumps(body))}}});"
            "document.currentScript && document.currentScript.remove();</script>", unsafe_allow_javascript=True)


def _client_address() -> str | None:
    """The browser's address as the panel's server saw it (None on this machine).

    Behind a reverse proxy the server takes it from ``X-Forwarded-For`` only when the proxy's own address is
    trusted (uvicorn's ``FORWARDED_ALLOW_IPS``, default this machine), so a browser cannot choose it.
    """
    address = st.context.ip_address
    return address if isinstance(address, str) and address else None


def _check_login() -> None:
    """Who is signed in, re-read from the login token on every run (``auth.resume``).

    A browser session's first run picks up the login of an earlier one from the cookie (a refresh, a new tab), and
    renews the cookie.
    Later runs re-check the session's token: a logout in another tab, an expired login or a deactivated account
    sends the user back to the form with a notice, and a changed role takes effect at once. PostgreSQL out of
    reach raises here: ``main`` shows the outage notice and nothing is forgotten (neither the session nor the
    cookie), so the next run simply checks again.
    """
    signed_in = ACTOR_KEY in st.session_state
    if not signed_in and st.session_state.get(RESUME_TRIED_KEY):
        return
    token = st.session_state.get(TOKEN_KEY) if signed_in else _cookie_token()
    actor = auth.resume(token)
    if actor is not None:
        st.session_state[ACTOR_KEY] = actor
        if signed_in:
            st.session_state[TOKEN_KEY] = token
        else:
            # Set the cookie again: its age starts over, as the login's own expiry slides while it is used.
            store_token(token)
    elif signed_in:
        # The cookie is left alone: another tab may have stored a newer login in it.
        _forget_login()
    elif token:
        st.session_state[COOKIE_ACTION_KEY] = "clear"  # the cookie this browser sent holds a dead login
    st.session_state[RESUME_TRIED_KEY] = True
    if actor is None and token:
        flash(LOGIN_FLASH_KEY, "warning", t("login.session_ended"))


def _forget_login() -> None:
    """Drop everything this browser session kept (the next run shows the login form)."""
    for key in list(st.session_state):
        del st.session_state[key]


def _login_page() -> None:
    """E-mail and password form; errors come from the catalog (a throttled login shows the wait)."""
    _, middle, _ = st.columns([1, 1.3, 1])
    with middle:
        st.title(t("login.title"))
        st.caption(t("login.subtitle"))
        show_flash(LOGIN_FLASH_KEY)
        with st.form("auth_login_form"):
            email = st.text_input(t("login.email"), key="auth_email", autocomplete="username")
            password = st.text_input(t("login.password"), type="password", key="auth_password",
                                     autocomplete="current-password")
            submitted = st.form_submit_button(t("login.submit"), type="primary", use_container_width=True)
        if not submitted:
            return
        if not email.strip() or not password:
            st.error(t("login.missing"))
            return
        try:
            actor, token = auth.login(email, password, _client_address())
        except AuthError as exc:
            st.error(error_text(exc))
            return
        st.session_state[ACTOR_KEY] = actor
        store_token(token)
        st.session_state.pop("auth_password", None)
        st.rerun()


def _logout() -> None:
    """Revoke the token and forget the session; the next run clears the browser's cookie."""
    auth.logout(st.session_state.get(TOKEN_KEY))
    _forget_login()
    # Keep the resume from running again with the (now revoked) cookie of this session's first request.
    st.session_state[RESUME_TRIED_KEY] = True
    st.session_state[COOKIE_ACTION_KEY] = "clear"


def _apply_cookie_action() -> None:
    """Write or clear the cookie once, in a run that reaches the browser (not one cut short by a rerun)."""
    action = st.session_state.pop(COOKIE_ACTION_KEY, None)
    if action == "set":
        try:
            code = login_cookie.issue_handoff(st.session_state[TOKEN_KEY], _client_address())
        except redis.RedisError:
            return  # this tab stays signed in; only a refresh will ask for the login again
        _post_script(login_cookie.SET_PATH, {"code": code})
    elif action == "clear":
        _post_script(login_cookie.CLEAR_PATH, {})


def _sidebar(actor: auth.Actor, inbox: st.Page) -> None:
    with st.sidebar:
        bell(actor, inbox)
        st.caption(t("sidebar.signed_in_as"))
        st.text(actor.name)  # typed by a user: literal
        st.caption(role_label(actor.role))
        presence.sidebar(actor)  # availability and Minha conta (pages/ui/presence.py)
        st.button(t("sidebar.logout"), key="auth_logout", on_click=_logout, icon=":material/logout:")


def _session_zone() -> str | None:
    """The signed-in workspace's zone for ``workbench.base.i18n``'s time formats (None outside a session)."""
    if get_script_run_ctx(suppress_warning=True) is None:
        return None  # a worker thread or plain code in the same process: the default zone
    actor = st.session_state.get(ACTOR_KEY)
    if actor is None:
        return None
    if DISPLAY_ZONE_KEY not in st.session_state:
        st.session_state[DISPLAY_ZONE_KEY] = workspaces.get_timezone(actor)
    return st.session_state[DISPLAY_ZONE_KEY]


def main() -> None:
    """Gate every page, keeping the panel up (with a notice) while PostgreSQL or Redis is out of reach."""
    navigated: list[bool] = []
    try:
        _main(navigated)
    except DRAWING_ERRORS as exc:
        if navigated:
            unavailable_notice(exc, retry_key="unavailable_retry")  # inside the page that failed
        else:
            # no navigation yet in this run: give it one page, so no other page (nor pages/ discovery) shows
            def unavailable_page(error: Exception = exc) -> None:
                unavailable_notice(error, retry_key="unavailable_retry")

            st.navigation([st.Page(unavailable_page, title=t("app.title"), url_path="indisponivel")],
                          position="hidden").run()


def _main(navigated: list[bool]) -> None:
    """Gate every page behind a login, then show the pages the actor's role may use."""
    i18n.use_zone_provider(_session_zone)
    _connect()
    _check_login()
    _apply_cookie_action()
    actor = st.session_state.get(ACTOR_KEY)
    if actor is None:
        # A navigation with only the login page: no other page (nor pages/ discovery) is reachable.
        login = st.navigation([st.Page(_login_page, title=t("nav.login"), icon=":material/login:")],
                              position="hidden")
        navigated.append(True)
        login.run()
        return
    pages = [
        # admins and supervisors land on the Painel, agents on their inbox
        st.Page("pages/inbox.py", title=t("nav.inbox"), icon=":material/forum:", url_path="caixa-de-entrada",
                default=not actor.is_manager),
        st.Page("pages/contacts.py", title=t("nav.contacts"), icon=":material/contacts:", url_path="contatos"),
        st.Page("pages/connections.py", title=t("nav.connections"), icon=":material/qr_code_2:",
                url_path="conexoes"),
        # The Visão 360 of one contact (?contact=<id>), opened from the inbox and notifications: not in the menu.
        st.Page("pages/contact.py", title=t("nav.contact"), icon=":material/person:", url_path="contato",
                visibility="hidden"),
        # every role: an agent sees only their own row
        st.Page("pages/team_report.py", title=t("nav.team_report"), icon=":material/groups:", url_path="equipe"),
    ]
    if actor.is_manager:
        pages.append(st.Page("pages/dashboard.py", title=t("nav.dashboard"), icon=":material/monitoring:",
                             url_path="painel", default=True))
        pages.append(st.Page("pages/funnel_report.py", title=t("nav.funnel_report"), icon=":material/filter_alt:",
                             url_path="desempenho-dos-funis"))
        # Funnels are the marketers' work (admins and supervisors); agents answer conversations.
        pages.append(st.Page("pages/funnels.py", title=t("nav.funnels"), icon=":material/account_tree:",
                             url_path="funis"))
        pages.append(st.Page("pages/media.py", title=t("nav.media"), icon=":material/perm_media:",
                             url_path="biblioteca-de-midia"))
        pages.append(st.Page("pages/links.py", title=t("nav.links"), icon=":material/link:",
                             url_path="links-de-entrada"))
        pages.append(st.Page("pages/contacts_import.py", title=t("nav.contacts_import"),
                             icon=":material/upload_file:", url_path="importar-contatos"))
        # Opened from a funnel card's "Editar" (the funnel id travels in session state), so not in the menu.
        pages.append(st.Page("pages/editor.py", title=t("nav.editor"), icon=":material/edit:", url_path="editor",
                             visibility="hidden"))
        pages.append(st.Page("pages/simulator.py", title=t("nav.simulator"), icon=":material/smartphone:",
                             url_path="simulador"))
        pages.append(st.Page("pages/settings.py", title=t("nav.settings"), icon=":material/settings:",
                             url_path="configuracoes"))
    navigation = st.navigation(pages)
    navigated.append(True)
    _sidebar(actor, pages[0])
    navigation.run()


main()
