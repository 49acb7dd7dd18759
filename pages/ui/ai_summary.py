"""The *Resumo da IA* box, shared by the Visão 360 page (column 3) and the inbox's contact panel.

Layout only: ``workbench.services.ai_summary`` reads, makes and stores the summary and checks who may. The summary
is a model's text about what contacts wrote, so it is shown with ``st.text`` — literal, never Markdown.
"""

from __future__ import annotations

import streamlit as st

from pages.ui.feedback import attempt
from workbench.base.i18n import format_moment, t
from workbench.services import ai_summary
from workbench.services.auth import Actor


def summary_box(actor: Actor, contact_id: int, *, prefix: str, flash_key: str,
                cache_key: object | None = None) -> None:
    """Draw the summary and its *Gerar resumo* / *Atualizar resumo* button (``{prefix}_summary_refresh``).

    ``cache_key``: when given (the inbox's revision signature), the stored summary is re-read only when it changes
    or after a refresh, not on every tick of a live page.
    """
    held_key = f"{prefix}_summary_state"
    held = st.session_state.get(held_key)
    if cache_key is not None and held and held[0] == (contact_id, cache_key):
        state = held[1]
    else:
        state = None
        with attempt():
            state = ai_summary.get_summary(actor, contact_id)
        if state is None:
            return
        st.session_state[held_key] = ((contact_id, cache_key), state)
    if state.text:
        st.text(state.text)  # the model's words about what a contact wrote: literal
        st.caption(t("summary.caption"))
        if state.covers_until is not None:
            st.caption(t("summary.covers", when=format_moment(state.covers_until)))
        if state.stale:
            st.caption(t("summary.stale"))
    elif state.has_messages:
        st.caption(t("summary.none"))
    else:
        st.caption(t("summary.no_messages"))
    if state.has_messages:
        label = t("summary.refresh") if state.text else t("summary.generate")
        st.button(label, key=f"{prefix}_summary_refresh", icon=":material/auto_awesome:", disabled=not state.stale,
                  help=None if state.stale else t("summary.current"), on_click=_refresh,
                  args=(actor, contact_id, held_key, flash_key))


def _refresh(actor: Actor, contact_id: int, held_key: str, flash_key: str) -> None:
    with attempt(flash_key, t("summary.generated")):
        ai_summary.refresh_summary(actor, contact_id)
    st.session_state.pop(held_key, None)  # read again, whatever happened
