"""Who is signed in to this browser session, re-checked on every interaction.

``app.py``'s gate signs in (the login form, or the cookie of an earlier session), keeps the actor and the login
token in session state, and re-reads the actor from the token on every run of the app (``auth.resume``: one
indexed query). A button's callback and a live part's tick (a fragment) run without the app, so ``attempt``
(``pages/ui/feedback.py``) and ``live_fragment`` (``pages/ui/panel.py``) call ``recheck`` first: when the login
ended (logout in another tab, expiry, a deactivated account) or the actor changed (a new role), it reruns the
whole app, whose gate applies the change before anything else runs.
"""

from __future__ import annotations

import streamlit as st

from workbench.services import auth

ACTOR_KEY = "auth_actor"
"""The signed-in ``Actor``; pages read it from here."""
TOKEN_KEY = "auth_token"
"""The login token the actor was read from."""
COOKIE_ACTION_KEY = "auth_cookie_action"
"""What ``app.py`` does to the browser's login cookie in its next run: "set" (``TOKEN_KEY``) or "clear"."""


def store_token(token: str) -> None:
    """Keep a new login token for this session, and have the next run put it in the browser's login cookie."""
    st.session_state[TOKEN_KEY] = token
    st.session_state[COOKIE_ACTION_KEY] = "set"


def recheck() -> None:
    """Rerun the whole app (ending this run or callback) when the signed-in actor is no longer who the token says.

    Nothing happens outside a signed-in session. PostgreSQL out of reach raises, like any other read.
    """
    actor = st.session_state.get(ACTOR_KEY)
    if actor is not None and auth.resume(st.session_state.get(TOKEN_KEY)) != actor:
        st.rerun()
