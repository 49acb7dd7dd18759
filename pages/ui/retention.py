"""Configurações › Geral › *Retenção de mensagens* (admins): the retention setting and its dry-run preview.

Layout only: ``workbench.services.workspace_settings`` stores the setting (admins only) and
``workbench.services.lgpd.retention_preview`` counts what it would empty; the daily job applies it.
"""

from __future__ import annotations

import streamlit as st

from pages.ui.feedback import attempt, flash, show_flash
from workbench.base.i18n import t
from workbench.services import lgpd, workspace_settings
from workbench.services.auth import Actor
from workbench.services.workspace_settings import MAX_RETENTION_DAYS

FLASH_KEY = "retention_flash"


def _save(actor: Actor) -> None:
    with attempt(FLASH_KEY, t("retention.saved")):
        workspace_settings.save_setting(actor, "retention", {
            "enabled": bool(st.session_state.get("retention_enabled")),
            "days": int(st.session_state.get("retention_days") or 0)})


def _preview(actor: Actor) -> None:
    with attempt(FLASH_KEY):
        found = lgpd.retention_preview(actor, int(st.session_state.get("retention_days") or 0))
        flash(FLASH_KEY, "info", t("retention.preview_result", **found))


def render(actor: Actor) -> None:
    """The form (switch, days, Salvar) and the *Prévia* button."""
    st.subheader(t("retention.title"))
    st.caption(t("retention.caption"))
    if "retention_days" not in st.session_state:
        saved = workspace_settings.get_setting(actor, "retention")
        st.session_state["retention_enabled"] = saved.enabled
        st.session_state["retention_days"] = saved.days
    with st.form("retention_form", border=True):
        st.toggle(t("retention.enabled"), key="retention_enabled")
        st.number_input(t("retention.days"), key="retention_days", min_value=1, max_value=MAX_RETENTION_DAYS, step=30)
        with st.container(horizontal=True):
            st.form_submit_button(t("retention.save"), key="retention_save", type="primary", on_click=_save,
                                  args=(actor,))
            # inside the form: the preview counts with the days typed, saved or not
            st.form_submit_button(t("retention.preview"), key="retention_preview", on_click=_preview, args=(actor,))
    show_flash(FLASH_KEY)
