"""The contact page's *LGPD* box (admins): *Exportar dados do contato* and *Apagar dados do contato*.

Layout only: ``workbench.services.lgpd`` checks the role and the workspace, builds the ZIP and erases.
"""

from __future__ import annotations

import streamlit as st

from pages.ui.feedback import attempt, show_flash
from workbench.base.i18n import t
from workbench.services import lgpd
from workbench.services.auth import Actor

FLASH_KEY = "lgpd_flash"
EXPORT_KEY = "lgpd_export"  # (contact id, file name, bytes) of the ZIP prepared for download
CONFIRM_KEY = "lgpd_confirm_erase"  # the contact whose erasure waits for a confirmation


def _export(actor: Actor, contact_id: int) -> None:
    with attempt(FLASH_KEY):
        name, data = lgpd.export_contact(actor, contact_id)
        st.session_state[EXPORT_KEY] = (contact_id, name, data)


def _ask(contact_id: int | None) -> None:
    st.session_state[CONFIRM_KEY] = contact_id


def _erase(actor: Actor, contact_id: int) -> None:
    st.session_state.pop(CONFIRM_KEY, None)
    st.session_state.pop(EXPORT_KEY, None)
    with attempt(FLASH_KEY, t("lgpd.erased")):
        lgpd.erase_contact(actor, contact_id)


def lgpd_box(actor: Actor, contact_id: int) -> None:
    """The box under the contact's data; nothing for roles other than admin."""
    if actor.role != "admin":
        return
    with st.expander(t("lgpd.title"), icon=":material/policy:"):
        st.caption(t("lgpd.help"))
        show_flash(FLASH_KEY)
        st.button(t("lgpd.export"), key="lgpd_export_prepare", on_click=_export, args=(actor, contact_id),
                  icon=":material/download:")
        prepared = st.session_state.get(EXPORT_KEY)
        if prepared and prepared[0] == contact_id:
            st.download_button(t("lgpd.download"), data=prepared[2], file_name=prepared[1], mime="application/zip",
                               key="lgpd_export_download", on_click="ignore")
        if st.session_state.get(CONFIRM_KEY) == contact_id:
            st.warning(t("lgpd.confirm"))
            with st.container(horizontal=True):
                st.button(t("lgpd.erase_yes"), key="lgpd_erase_yes", type="primary", on_click=_erase,
                          args=(actor, contact_id))
                st.button(t("lgpd.cancel"), key="lgpd_erase_no", on_click=_ask, args=(None,))
        else:
            st.button(t("lgpd.erase"), key="lgpd_erase", on_click=_ask, args=(contact_id,),
                      icon=":material/delete_forever:")
