"""The sidebar's team parts: the person's availability (*Disponível*, *Ausente*, *Offline*), *Minha conta* (own name
and password), and the presence signal that keeps an open panel from counting as idle.

Layout only: ``workbench.services.routing`` keeps availability and hands out queued conversations when someone
becomes available; ``workbench.services.workspaces.rename_self`` and ``auth.change_own_password`` change the account.
"""

from __future__ import annotations

import time

import streamlit as st

from pages.ui.feedback import attempt, flash, show_flash
from pages.ui.gate import store_token
from workbench.base.i18n import t
from workbench.services import auth, routing, workspaces
from workbench.services.auth import Actor
from workbench.store.models import AVAILABILITIES

AVAILABILITY_KEY = "presence_availability"
SEEN_KEY = "presence_seen"  # monotonic time of the last heartbeat sent from this browser session
ACCOUNT_FLASH_KEY = "presence_account_flash"
BEAT_EVERY_S = routing.SEEN_EVERY.total_seconds()


def keep_alive(actor: Actor) -> None:
    """Tell routing the person is here, at most once every ``routing.SEEN_EVERY`` (call on every run, including the
    inbox's ticking fragment, so an open inbox never goes idle)."""
    last = st.session_state.get(SEEN_KEY)
    if last is not None and time.monotonic() - last < BEAT_EVERY_S:
        return
    st.session_state[SEEN_KEY] = time.monotonic()
    routing.heartbeat(actor)


def _set_availability(actor: Actor) -> None:
    with attempt(ACCOUNT_FLASH_KEY):
        routing.set_availability(actor, st.session_state.get(AVAILABILITY_KEY) or "available")


def _rename(actor: Actor) -> None:
    with attempt(ACCOUNT_FLASH_KEY, t("account.name_saved")):
        workspaces.rename_self(actor, st.session_state.get("account_name") or "")


def _change_password(actor: Actor) -> None:
    state = st.session_state
    if (state.get("account_new") or "") != (state.get("account_confirm") or ""):
        flash(ACCOUNT_FLASH_KEY, "error", t("account.mismatch"))
        return
    with attempt(ACCOUNT_FLASH_KEY, t("account.password_saved")):
        # every login of the account ended (other tabs too); this tab goes on with a new one
        store_token(auth.change_own_password(actor, state.get("account_current") or "",
                                             state.get("account_new") or ""))
        for key in ("account_current", "account_new", "account_confirm"):
            state[key] = ""


def sidebar(actor: Actor) -> None:
    """The availability selector and *Minha conta*, drawn inside ``st.sidebar``."""
    keep_alive(actor)
    if AVAILABILITY_KEY not in st.session_state:
        st.session_state[AVAILABILITY_KEY] = routing.get_availability(actor)
    st.selectbox(t("availability.label"), AVAILABILITIES, key=AVAILABILITY_KEY,
                 format_func=lambda value: t(f"availability.{value}"), on_change=_set_availability, args=(actor,),
                 help=t("availability.help", minutes=int(routing.IDLE_OFFLINE.total_seconds() // 60)))
    show_flash(ACCOUNT_FLASH_KEY)
    with st.popover(t("account.title"), icon=":material/account_circle:"):
        with st.form("account_name_form", border=False):
            st.text_input(t("account.name"), value=actor.name, key="account_name", max_chars=120)
            st.form_submit_button(t("account.save_name"), key="account_save_name", on_click=_rename, args=(actor,))
        with st.form("account_password_form", border=False):
            st.text_input(t("account.current"), type="password", key="account_current")
            st.text_input(t("account.new"), type="password", key="account_new",
                          help=t("account.new_help", min=auth.MIN_PASSWORD))
            st.text_input(t("account.confirm"), type="password", key="account_confirm")
            st.form_submit_button(t("account.save_password"), key="account_save_password",
                                  on_click=_change_password, args=(actor,))
