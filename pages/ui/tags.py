"""A contact's tag editor, shared by the inbox's contact panel and the Visão 360 page: its tags, each with ✕, and
a picker that adds one (a workspace tag, or a new one typed in; adding may start a "Tag adicionada" funnel)."""

from __future__ import annotations

from typing import Any

import streamlit as st

from pages.ui.feedback import attempt
from workbench.base.i18n import t
from workbench.services import contacts
from workbench.services.auth import Actor


def tag_editor(actor: Actor, contact_id: int, tags: list[str], workspace_tags: list[dict[str, Any]], *,
               prefix: str, flash_key: str) -> None:
    """Draw the editor. ``prefix`` names its widgets (``{prefix}_tag_add``, ``{prefix}_tag_remove_<n>``) and its
    catalog strings (``{prefix}.tags.none``, ``.remove``, ``.add``, ``.add_placeholder``); failures go to
    ``flash_key`` (shown by the page on its next run)."""
    pick_key = f"{prefix}_tag_add"
    if not tags:
        st.text(t(f"{prefix}.tags.none"))
    for index, name in enumerate(tags):
        with st.container(horizontal=True, vertical_alignment="center", gap="small"):
            st.text(name)  # typed by users: literal
            st.button("", key=f"{prefix}_tag_remove_{index}", on_click=_remove, args=(actor, contact_id, name,
                      flash_key), icon=":material/close:", help=t(f"{prefix}.tags.remove"), type="tertiary")
    carried = {name.casefold() for name in tags}
    # option labels are plain text; a typed name that is not in the list becomes a new tag
    st.selectbox(t(f"{prefix}.tags.add"), [tag["name"] for tag in workspace_tags if tag["name"].casefold() not in
                                           carried],
                 index=None, key=pick_key, accept_new_options=True, placeholder=t(f"{prefix}.tags.add_placeholder"),
                 on_change=_add, args=(actor, contact_id, pick_key, flash_key))


def _add(actor: Actor, contact_id: int, pick_key: str, flash_key: str) -> None:
    name = st.session_state.get(pick_key)
    st.session_state[pick_key] = None  # ready for the next tag
    if name:
        with attempt(flash_key):
            contacts.add_tag(actor, contact_id, name)


def _remove(actor: Actor, contact_id: int, name: str, flash_key: str) -> None:
    with attempt(flash_key):
        contacts.remove_tag(actor, contact_id, name)
