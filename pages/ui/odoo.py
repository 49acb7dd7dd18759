"""The contact's Odoo lead (step "Enviar para Odoo"), as the inbox's contact panel and the Visão 360 show it."""

from __future__ import annotations

from typing import Any

import streamlit as st

from workbench.base.i18n import t


def lead_link(lead: dict[str, Any] | None, key: str) -> None:
    """The lead's number and a button that opens it in Odoo; nothing when the contact has no lead.

    The link is built by the service from the admin's Odoo URL and the lead's numeric id.
    """
    if not lead:
        return
    st.caption(t("odoo.lead_link", lead_id=lead["id"]))
    if lead.get("url"):
        st.link_button(t("odoo.open_lead"), lead["url"], icon=":material/open_in_new:", key=key)
