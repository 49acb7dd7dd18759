"""The panel's entry point: the login gate, then navigation over the pages in ``pages/``.

Run with ``streamlit run app.py`` (``python -m workbench up`` does it for you). Nothing here but the gate
and the menu: every screen is a file in ``pages/`` (the sidebar's notifications bell is ``pages/ui/bell.py``)
and every rule lives in ``workbench/``.

A login survives a browser refresh: the login token goes into a cookie (set from the browser, because
Streamlit cannot set response headers), and a new session reads it from ``st.context.cookies`` and resumes
the login with ``auth.resume``. Only the token's hash is stored server-side; logging out revokes it.
"""

from __future__ import annotations

import json

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from pages.ui.bell import bell
from pages.ui.panel import unavailable_notice
from workbench.base import i18n
from workbench.base.errors import AuthError
from workbench.base.i18n import error_text, role_label, t
from workbench.services import auth, workspaces
from workbench.store.bus import get_redis
from workbench.store.config import get_settings
from workbench.store.db import get_engine
from workbench.store.outages import DRAWING_ERRORS

# Session keys of the gate; pages read the actor from ACTOR_KEY.
ACTOR_KEY = "auth_actor"
TOKEN_KEY = "auth_token"
RESUME_TRIED_KEY = "auth_resume_tried"
COOKIE_ACTION_KEY = "auth_cookie_action"
COOKIE_NAME = "wb_session"
DISPLAY_ZONE_KEY = "display_zone"  # the workspace's time zone, read once per session (Configurações updates it)

st.set_page_config(page_title=t("app.title"), page_icon="💬", layout="wide")


@st.cache_resource
def _connect() -> None:
    """Create the pooled database engine and Redis client once per server process (the only cached things)."""
    get_engine()
    get_redis()


def _cookie_token() -> str | None:
    """The login token the browser sent with this session's first request, if any."""
    token = st.context.cookies.get(COOKIE_NAME)
    # Only a real cookie string counts (a test harness without a browser answers with something else).
    return token if isinstance(token, str) and token else None


def _write_cookie(token: str | None) -> None:
    """Set (or, with None, delete) the login cookie from the browser.

    The token is ours (URL-safe random), never user text; ``json.dumps`` quotes it for the script anyway.
    """
    if token:
        max_age = get_settings().session_ttl_h * 3600
        value = f"{COOKIE_NAME}={token}; path=/; max-age={max_age}; SameSite=Strict"
    else:
        value = f"{COOKIE_NAME}=; path=/; max-age=0; SameSite=Strict"
    url = st.context.url
    if isinstance(url, str) and url.startswith("https:"):
        value += "; Secure"  # behind TLS, never send the token over plain HTTP
    st.html(f"<script>document.cookie = {json.dumps(value)};</script>", unsafe_allow_javascript=True)


def _resume_from_cookie() -> None:
    """On a session's first run, pick up the login of a previous session (a refresh or a new tab)."""
    if ACTOR_KEY in st.session_state or st.session_state.get(RESUME_TRIED_KEY):
        return
    st.session_state[RESUME_TRIED_KEY] = True
    token = _cookie_token()
    actor = auth.resume(token)
    if actor is not None:
        st.session_state[ACTOR_KEY] = actor
        st.session_state[TOKEN_KEY] = token


def _login_page() -> None:
    """E-mail and password form; errors come from the catalog (a throttled login shows the wait)."""
    _, middle, _ = st.columns([1, 1.3, 1])
    with middle:
        st.title(t("login.title"))
        st.caption(t("login.subtitle"))
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
            actor, token = auth.login(email, password)
        except AuthError as exc:
            st.error(error_text(exc))
            return
        st.session_state[ACTOR_KEY] = actor
        st.session_state[TOKEN_KEY] = token
        st.session_state[COOKIE_ACTION_KEY] = "set"
        st.session_state.pop("auth_password", None)
        st.rerun()


def _logout() -> None:
    """Revoke the token and forget the session; the next run clears the browser's cookie."""
    auth.logout(st.session_state.get(TOKEN_KEY))
    for key in list(st.session_state):
        del st.session_state[key]
    # Keep the resume from running again with the (now revoked) cookie of this session's first request.
    st.session_state[RESUME_TRIED_KEY] = True
    st.session_state[COOKIE_ACTION_KEY] = "clear"


def _apply_cookie_action() -> None:
    """Write or clear the cookie once, in a run that reaches the browser (not one cut short by a rerun)."""
    action = st.session_state.pop(COOKIE_ACTION_KEY, None)
    if action == "set":
        _write_cookie(st.session_state.get(TOKEN_KEY))
    elif action == "clear":
        _write_cookie(None)


def _sidebar(actor: auth.Actor, inbox: st.Page) -> None:
    with st.sidebar:
        bell(actor, inbox)
        st.caption(t("sidebar.signed_in_as"))
        st.text(actor.name)  # typed by a user: literal
        st.caption(role_label(actor.role))
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
    _resume_from_cookie()
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
        st.Page("pages/inbox.py", title=t("nav.inbox"), icon=":material/forum:", url_path="caixa-de-entrada",
                default=True),
        st.Page("pages/connections.py", title=t("nav.connections"), icon=":material/qr_code_2:",
                url_path="conexoes"),
    ]
    if actor.is_manager:
        # Funnels are the marketers' work (admins and supervisors); agents answer conversations.
        pages.append(st.Page("pages/funnels.py", title=t("nav.funnels"), icon=":material/account_tree:",
                             url_path="funis"))
        pages.append(st.Page("pages/media.py", title=t("nav.media"), icon=":material/perm_media:",
                             url_path="biblioteca-de-midia"))
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
