"""Links de entrada: create ``wa.me`` links whose pre-filled message carries a code, copy their URL, download
their QR code, and see how many contacts each one brought.

Layout only: ``workbench.services.entry_links`` checks roles, makes the codes and attributes contacts. Names,
sources, messages and UTM values were typed by people: shown with ``st.text``/``st.code`` (literal), never as
Markdown.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from pages.ui.feedback import attempt, flash, show_flash
from workbench.base.i18n import t
from workbench.services import entry_links, instances

actor = st.session_state["auth_actor"]

FLASH_KEY = "links_flash"
CONFIRM_KEY = "links_confirm_delete"
FORM_NONCE_KEY = "links_form_nonce"


def _create() -> None:
    """Form callback for "Criar link": the form is cleared (a new nonce) only when the link was created."""
    nonce = st.session_state.get(FORM_NONCE_KEY, 0)
    value = lambda name: st.session_state.get(f"links_{name}_{nonce}")  # noqa: E731
    utm = {key: value(key) or "" for key in entry_links.UTM_KEYS}
    with attempt(FLASH_KEY) as outcome:
        link = entry_links.create_link(actor, name=value("name") or "", instance_id=value("instance"),
                                       source=value("source") or "", message=value("message") or "", utm=utm,
                                       phone=value("phone") or None)
    if outcome.ok:
        flash(FLASH_KEY, "success", t("links.created", code=link["code"]))
        st.session_state[FORM_NONCE_KEY] = nonce + 1


def _form(numbers: list[dict[str, Any]]) -> None:
    nonce = st.session_state.get(FORM_NONCE_KEY, 0)
    with st.expander(t("links.new"), icon=":material/add_link:", expanded=not st.session_state.get("links_any")):
        with st.form(f"links_form_{nonce}", border=False):
            st.text_input(t("links.field.name"), key=f"links_name_{nonce}", max_chars=entry_links.MAX_NAME)
            names = {n["id"]: n["name"] for n in numbers}
            st.selectbox(t("links.field.number"), list(names), key=f"links_instance_{nonce}",
                         format_func=lambda i: names.get(i, str(i)))
            st.text_input(t("links.field.phone"), key=f"links_phone_{nonce}", help=t("links.help.phone"))
            st.selectbox(t("links.field.source"), [t(f"links.source.{k}") for k in entry_links.SOURCE_SUGGESTIONS],
                         key=f"links_source_{nonce}",
                         accept_new_options=True, help=t("links.help.source"))
            st.text_area(t("links.field.message"), key=f"links_message_{nonce}", max_chars=entry_links.MAX_MESSAGE,
                         help=t("links.help.message"))
            columns = st.columns(len(entry_links.UTM_KEYS))
            for column, key in zip(columns, entry_links.UTM_KEYS, strict=True):
                column.text_input(t(f"links.field.{key}"), key=f"links_{key}_{nonce}", max_chars=entry_links.MAX_UTM)
            st.form_submit_button(t("links.create"), icon=":material/add_link:", on_click=_create)


def _delete(link_id: int) -> None:
    with attempt(FLASH_KEY, t("links.deleted")):
        entry_links.delete_link(actor, link_id)
    st.session_state.pop(CONFIRM_KEY, None)


def _card(link: dict[str, Any]) -> None:
    with st.container(border=True):
        st.text(link["name"])
        st.text(t("links.card.meta", source=link["source"], code=link["code"], contacts=link["contacts"]))
        utm = " · ".join(f"{k}={v}" for k, v in link["utm"].items())
        if utm:
            st.text(utm)
        st.text(t("links.card.text", text=link["text"]))
        st.code(link["url"], language=None, wrap_lines=True)
        with st.container(horizontal=True):
            st.download_button(t("links.qr.png"), data=lambda: entry_links.qr_code(link["url"], "png"),
                               file_name=f"link-{link['code']}.png", mime="image/png", key=f"links_png_{link['id']}",
                               icon=":material/qr_code_2:", on_click="ignore")
            st.download_button(t("links.qr.svg"), data=lambda: entry_links.qr_code(link["url"], "svg"),
                               file_name=f"link-{link['code']}.svg", mime="image/svg+xml",
                               key=f"links_svg_{link['id']}", icon=":material/qr_code_2:", on_click="ignore")
            if st.session_state.get(CONFIRM_KEY) == link["id"]:
                st.button(t("links.delete.confirm"), key=f"links_delete_yes_{link['id']}", type="primary",
                          on_click=_delete, args=(link["id"],))
                st.button(t("links.delete.cancel"), key=f"links_delete_no_{link['id']}",
                          on_click=lambda: st.session_state.pop(CONFIRM_KEY, None))
            else:
                st.button(t("links.delete"), key=f"links_delete_{link['id']}", icon=":material/delete:",
                          on_click=lambda: st.session_state.update({CONFIRM_KEY: link["id"]}))


st.title(t("links.title"))
if not actor.is_manager:
    # app.py leaves this page out of an agent's navigation; this guards a direct load all the same.
    st.error(t("links.manager_only"))
    st.stop()
st.caption(t("links.intro"))
st.info(t("links.no_clicks"), icon=":material/info:")
show_flash(FLASH_KEY)
links: list[dict[str, Any]] = []
numbers: list[dict[str, Any]] = []
with attempt():
    numbers = instances.list_instances(actor)
    links = entry_links.list_links(actor)
st.session_state["links_any"] = bool(links)
if numbers:
    _form(numbers)
else:
    st.warning(t("links.no_numbers"))
if not links:
    st.info(t("links.empty"), icon=":material/link:")
for entry in links:
    _card(entry)
