"""Visão 360: one contact on one page (``?contact=<id>``), opened from the inbox's contact panel and notifications.

Layout only. Column 1: the contact's data, tags and fields (``workbench.services.contacts``), internal notes
(``workbench.services.contact_notes``) and, for admins and supervisors, *Mesclar com…*
(``workbench.services.contact_merge``). Column 2: the activity feed (``workbench.services.contact_feed``), filtered
by kind and paged with the service's cursors. Column 3: the *Resumo da IA* (``pages/ui/ai_summary.py``). Who may
open which contact is the service's rule (``workbench.services.contact_card``): anything else reads "Contato não
encontrado".

Everything people or contacts typed (names, phones, fields, tags, notes, message texts) is shown with ``st.text``,
``st.dataframe`` cells or widget values — never Markdown.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from pages.ui.ai_summary import summary_box
from pages.ui.feedback import attempt, flash, show_flash
from pages.ui.lgpd import lgpd_box
from pages.ui.odoo import lead_link
from pages.ui.tags import tag_editor
from workbench.base.i18n import format_moment, has_key, t, type_placeholder
from workbench.services import contact_feed, contact_fields, contact_merge, contact_notes, contacts
from workbench.services.contact_card import contact_card
from workbench.store.text import MAX_CONTACT_FIELD_CHARS, MAX_CONTACT_NAME_CHARS

actor = st.session_state["auth_actor"]

FLASH_KEY = "contact360_flash"
NOTE_NEW_KEY = "contact360_note_new"
NOTE_CONFIRM_KEY = "contact360_note_confirm"  # the note whose deletion waits for a confirmation
FEED_KINDS_KEY = "contact360_feed_kinds"
FEED_PAGES_KEY = "contact360_feed_pages"  # (contact id, kinds, [cursor of each page shown so far])
INBOX_SELECTED_KEY = "inbox_selected"  # the conversation the inbox opens (pages/inbox.py SELECTED_KEY)


def _contact_id() -> int | None:
    raw = st.query_params.get("contact")
    return int(raw) if isinstance(raw, str) and raw.isascii() and raw.isdigit() and len(raw) < 20 else None


def _detail(label: str, value: str | None) -> None:
    st.caption(label)
    st.text(value or "—")


# -- column 1: data, tags, fields ------------------------------------------------------------------------------


def _tags(card: dict[str, Any]) -> None:
    st.subheader(t("contact360.tags"))
    workspace_tags: list[dict[str, Any]] = []
    with attempt():
        workspace_tags = contacts.list_tags(actor)
    tag_editor(actor, card["id"], card["tags"], workspace_tags, prefix="contact360", flash_key=FLASH_KEY)


def _cell(value: Any) -> str | None:
    return None if value is None or pd.isna(value) else str(value)


def _fields(card: dict[str, Any]) -> None:
    st.subheader(t("contact360.fields"))
    types = {field["key"]: field["type"] for field in card["fields"]}
    # as people read and type them (31/12/2026, sim, 1.234,56): saving reads them back by the field's type
    values = {key: contact_fields.display_value(types.get(key), value) for key, value in card["custom_data"].items()}
    labels = {field["key"]: field["label"] for field in card["fields"]}
    ordered = [f["key"] for f in card["fields"] if f["key"] in values] + sorted(set(values) - set(labels))
    if ordered:
        provenance = card.get("provenance") or {}
        st.dataframe(pd.DataFrame({t("contact360.fields.field"): [labels.get(key, key) for key in ordered],
                                   t("contact360.fields.value"): [values[key] for key in ordered],
                                   t("contact360.fields.source"): [provenance.get(key, "") for key in ordered]}),
                     hide_index=True)  # literal cells
    else:
        st.text(t("contact360.fields.none"))
    table = pd.DataFrame({"key": pd.Series(ordered, dtype="string"),
                          "value": pd.Series([values[key] for key in ordered], dtype="string")})
    columns = {"key": st.column_config.TextColumn(t("inbox.fields.key"), help=t("inbox.fields.key_help")),
               "value": st.column_config.TextColumn(t("inbox.fields.value"), help=t("inbox.fields.value_help"),
                                                    max_chars=MAX_CONTACT_FIELD_CHARS)}
    # keyed by the saved values: a save gives fresh widgets
    version = hash((card["id"], card["name"], card["email"], card["company"], tuple(sorted(values.items()))))
    with st.expander(t("contact360.edit"), icon=":material/edit:"), st.form("contact360_edit_form", border=False):
        details = {
            "name": st.text_input(t("inbox.name"), value=card["name"] or "", max_chars=MAX_CONTACT_NAME_CHARS,
                                  key=f"contact360_name_{version}"),
            "email": st.text_input(t("contact360.email"), value=card["email"] or "", max_chars=254,
                                   key=f"contact360_email_{version}"),
            "company": st.text_input(t("contact360.company"), value=card["company"] or "",
                                     max_chars=contacts.MAX_COMPANY_CHARS, key=f"contact360_company_{version}")}
        edited = st.data_editor(table, hide_index=True, column_config=columns, num_rows="dynamic",
                                key=f"contact360_fields_{version}")
        if st.form_submit_button(t("contact360.save"), key="contact360_save", icon=":material/save:"):
            rows = [(_cell(row["key"]), _cell(row["value"])) for row in edited.to_dict("records")]
            with attempt():  # a refusal shows under the form, which keeps what was typed
                contacts.update_contact(actor, card["id"], **details, custom_data=rows)
                flash(FLASH_KEY, "success", t("contact360.saved"))
                st.rerun()


def _details(card: dict[str, Any]) -> None:
    st.subheader(t("contact360.details"))
    _detail(t("inbox.name"), card["name"])
    if (card.get("provenance") or {}).get("name"):
        st.caption(card["provenance"]["name"])  # catalog text and a time only
    _detail(t("inbox.push_name"), card["push_name"])
    _detail(t("inbox.phone"), card["phone"])
    _detail(t("inbox.number"), card["instance"])
    _detail(t("contact360.email"), card["email"])
    _detail(t("contact360.company"), card["company"])
    lead_link(card.get("odoo_lead"), key="contact360_odoo_lead")
    _detail(t("inbox.agent"), card["agent"] or t("inbox.unassigned"))
    _detail(t("contact360.created"), format_moment(card["created_at"]))
    if card["conversation_id"] is None:
        st.caption(t("contact360.no_conversation"))
    elif st.button(t("contact360.open_chat"), key="contact360_open_chat", icon=":material/forum:"):
        st.session_state[INBOX_SELECTED_KEY] = card["conversation_id"]
        st.switch_page("pages/inbox.py")


# -- column 1: notes -------------------------------------------------------------------------------------------


def _add_note(contact_id: int) -> None:
    with attempt(FLASH_KEY, t("contact360.notes.added")) as outcome:
        contact_notes.add_note(actor, contact_id, st.session_state.get(NOTE_NEW_KEY) or "")
    if outcome.ok:
        st.session_state[NOTE_NEW_KEY] = ""  # what was typed stays when it was refused


def _save_note(note_id: int) -> None:
    with attempt(FLASH_KEY, t("contact360.notes.saved")):
        contact_notes.edit_note(actor, note_id, st.session_state.get(f"contact360_note_text_{note_id}") or "")


def _delete_note(note_id: int) -> None:
    st.session_state.pop(NOTE_CONFIRM_KEY, None)
    with attempt(FLASH_KEY, t("contact360.notes.deleted")):
        contact_notes.delete_note(actor, note_id)


def _ask_delete(note_id: int | None) -> None:
    st.session_state[NOTE_CONFIRM_KEY] = note_id


def _note(note: dict[str, Any]) -> None:
    with st.container(border=True):
        st.text(note["body"])  # typed by people: literal
        meta = t("contact360.notes.by", author=note["author"] or t("contact360.notes.unknown_author"),
                 when=format_moment(note["created_at"]))
        if note["updated_at"]:
            meta = f"{meta} · {t('contact360.notes.edited', when=format_moment(note['updated_at']))}"
        st.text(meta)  # the author's name is typed by people: literal
        if note["can_edit"]:
            with st.expander(t("contact360.notes.edit"), icon=":material/edit:"):
                st.text_area(t("contact360.notes.edit"), value=note["body"], key=f"contact360_note_text_{note['id']}",
                             max_chars=contact_notes.MAX_NOTE_CHARS, label_visibility="collapsed")
                st.button(t("contact360.notes.save"), key=f"contact360_note_save_{note['id']}", on_click=_save_note,
                          args=(note["id"],), icon=":material/save:")
        if not note["can_delete"]:
            return
        if st.session_state.get(NOTE_CONFIRM_KEY) == note["id"]:
            st.warning(t("contact360.notes.confirm_delete"))
            with st.container(horizontal=True):
                st.button(t("contact360.notes.confirm"), key=f"contact360_note_yes_{note['id']}", type="primary",
                          on_click=_delete_note, args=(note["id"],))
                st.button(t("contact360.notes.cancel"), key=f"contact360_note_no_{note['id']}", on_click=_ask_delete,
                          args=(None,))
        else:
            st.button(t("contact360.notes.delete"), key=f"contact360_note_delete_{note['id']}", on_click=_ask_delete,
                      args=(note["id"],), icon=":material/delete:", type="tertiary")


def _notes(card: dict[str, Any]) -> None:
    st.subheader(t("contact360.notes"))
    st.caption(t("contact360.notes.help"))
    st.text_area(t("contact360.notes.new"), key=NOTE_NEW_KEY, max_chars=contact_notes.MAX_NOTE_CHARS, height=90)
    st.button(t("contact360.notes.add"), key="contact360_note_add", on_click=_add_note, args=(card["id"],),
              icon=":material/note_add:")
    notes: list[dict[str, Any]] = []
    with attempt():
        notes = contact_notes.list_notes(actor, card["id"])
    if not notes:
        st.caption(t("contact360.notes.none"))
    for note in notes:
        _note(note)


# -- column 1: merge (admins and supervisors) ------------------------------------------------------------------


def _field_label(field: str) -> str:
    key = f"contact360.merge.field.{field}"
    return t(key) if has_key(key) else field.removeprefix("custom_data.")


def _shown(value: Any) -> str:
    return t("contact360.merge.empty_value") if value is None or value == "" else str(value)


def _merge(card: dict[str, Any]) -> None:
    if not actor.is_manager:
        return
    with st.expander(t("contact360.merge.title"), icon=":material/call_merge:"):
        st.caption(t("contact360.merge.help"))
        query = st.text_input(t("contact360.merge.search"), key="contact360_merge_query",
                              placeholder=t("contact360.merge.search_placeholder"))
        if not query.strip():
            return
        found: list[dict[str, Any]] = []
        with attempt():
            found = contact_merge.search_contacts(actor, query, exclude_id=card["id"])
        if not found:
            st.caption(t("contact360.merge.none"))
            return
        names = {c["id"]: t("contact360.merge.option", name=c["display_name"], phone=c["phone"],
                            number=c["instance"] or "—") for c in found}
        # names typed by people: plain option text
        other_id = st.selectbox(t("contact360.merge.pick"), list(names), format_func=names.get,
                                key="contact360_merge_other")
        view = None
        with attempt():
            view = contact_merge.preview(actor, card["id"], other_id)
        if view is None:
            return
        if view["live_runs"]:
            st.warning(t("contact360.merge.live_runs"))
            return
        if view["keep"]["instance_id"] != view["other"]["instance_id"]:
            st.info(t("contact360.merge.different_numbers"))
            st.text(view["keep"]["instance"] or "—")
        if view["other"]["tags"]:
            st.caption(t("contact360.merge.other_tags"))
            st.text(", ".join(view["other"]["tags"]))
        table = pd.DataFrame({
            "field": [_field_label(row["field"]) for row in view["rows"]],
            "keep": [_shown(row["keep"]) for row in view["rows"]],
            "other": [_shown(row["other"]) for row in view["rows"]],
            "use_other": [row["default"] == "other" for row in view["rows"]],
        })
        with st.form(f"contact360_merge_form_{other_id}", border=False):
            st.caption(t("contact360.merge.values"))
            edited = st.data_editor(table, hide_index=True, disabled=["field", "keep", "other"],
                                    key=f"contact360_merge_table_{other_id}", column_config={
                                        "field": st.column_config.TextColumn(t("contact360.fields.field")),
                                        "keep": st.column_config.TextColumn(t("contact360.merge.keep")),
                                        "other": st.column_config.TextColumn(t("contact360.merge.other")),
                                        "use_other": st.column_config.CheckboxColumn(t("contact360.merge.use_other")),
                                    })
            confirmed = st.checkbox(t("contact360.merge.confirm"), key=f"contact360_merge_confirm_{other_id}")
            submitted = st.form_submit_button(t("contact360.merge.submit"), key="contact360_merge_submit",
                                              type="primary", icon=":material/call_merge:")
        if not submitted:
            return
        if not confirmed:
            st.error(t("contact360.merge.confirm_missing"))
            return
        choices = {row["field"]: "other" if use else "keep"
                   for row, use in zip(view["rows"], edited["use_other"].tolist(), strict=True)}
        with attempt():
            contact_merge.merge(actor, card["id"], other_id, choices)
            flash(FLASH_KEY, "success", t("contact360.merge.done"))
            st.rerun()


# -- column 2: the activity feed -------------------------------------------------------------------------------


def _feed_pages(contact_id: int, kinds: tuple[str, ...]) -> list[Any]:
    """The cursors of the pages shown so far ([None] = the newest page); a new contact or filter starts over."""
    saved = st.session_state.get(FEED_PAGES_KEY)
    if not saved or saved[0] != contact_id or saved[1] != kinds:
        saved = (contact_id, kinds, [None])
        st.session_state[FEED_PAGES_KEY] = saved
    return saved[2]


def _older(cursor: Any) -> None:
    st.session_state[FEED_PAGES_KEY][2].append(cursor)


def _newer() -> None:
    st.session_state[FEED_PAGES_KEY][2].pop()


def _meta(item: dict[str, Any]) -> str:
    source_key = f"feed.source.{item['source']}"
    source = t(source_key) if has_key(source_key) else str(item["source"])
    when = format_moment(item["at"])
    if item["author"]:
        return t("contact360.feed.meta_author", when=when, source=source, author=item["author"])
    return t("contact360.feed.meta", when=when, source=source)


def _item(item: dict[str, Any]) -> None:
    with st.container(border=True):
        st.caption(t(f"feed.kind.{item['kind']}") if has_key(f"feed.kind.{item['kind']}") else item["kind"])
        st.text(contact_feed.describe(item))  # may hold tag names and field values: literal
        st.text(_meta(item))  # names typed by people: literal
        data = item["data"]
        if item["kind"] == "message":
            if data.get("revoked"):
                st.caption(type_placeholder("revoke"))
            elif data.get("type") != "text":
                st.caption(type_placeholder(data.get("type")))
        if item["text"]:
            st.text(item["text"])  # a message's or a note's own words: literal
        if item["source"] == "odoo" and data.get("url"):
            st.link_button(t("odoo.open_lead"), str(data["url"]), icon=":material/open_in_new:",
                           key=f"contact360_odoo_{item['key'][2]}")
        if data.get("edited") or data.get("edited_at"):
            st.caption(t("contact360.feed.edited"))
        steps = item.get("steps")
        if steps:
            with st.expander(t("contact360.feed.steps", n=len(steps) + item.get("more_steps", 0))):
                for step in steps:
                    st.text(t("contact360.feed.step", node=step["node"], type=_node_label(step["type"]),
                              output=step["output"] or "—"))
                    if step["error"]:
                        st.text(t("contact360.feed.step_error", error=step["error"]))
                if item.get("more_steps"):
                    st.caption(t("contact360.feed.more_steps", n=item["more_steps"]))


def _node_label(node_type: str) -> str:
    key = f"node.{node_type}.label"
    return t(key) if has_key(key) else node_type


def _feed(card: dict[str, Any]) -> None:
    st.subheader(t("contact360.feed"))
    kinds = tuple(st.pills(t("contact360.feed.filter"), contact_feed.KINDS, selection_mode="multi",
                           key=FEED_KINDS_KEY, format_func=lambda kind: t(f"feed.kind.{kind}")) or ())
    pages = _feed_pages(card["id"], kinds)
    page = None
    with attempt():
        page = contact_feed.feed(actor, card["id"], kinds=kinds, before=pages[-1], limit=contact_feed.PAGE_SIZE)
    if page is None:
        return
    if not page["items"]:
        st.caption(t("contact360.feed.empty"))
    for item in page["items"]:
        _item(item)
    with st.container(horizontal=True):
        st.button(t("contact360.feed.newer"), key="contact360_feed_newer", on_click=_newer,
                  disabled=len(pages) == 1, icon=":material/arrow_upward:")
        st.button(t("contact360.feed.older"), key="contact360_feed_older", on_click=_older, args=(page["next"],),
                  disabled=page["next"] is None, icon=":material/arrow_downward:")


# -- the page ----------------------------------------------------------------------------------------------------


def main() -> None:
    """The three columns of the contact named by ``?contact=<id>``."""
    st.title(t("contact360.title"))
    show_flash(FLASH_KEY)
    contact_id = _contact_id()
    card = None
    if contact_id is None:
        st.info(t("contact360.missing"))
    else:
        with attempt():
            card = contact_card(actor, contact_id)
    if card is None:
        st.page_link("pages/inbox.py", label=t("contact360.back"), icon=":material/forum:")
        return
    st.text(card["display_name"])  # typed by people or WhatsApp: literal
    details, activity, summary = st.columns([1.15, 1.6, 0.75], gap="medium")
    with details:
        _details(card)
        _tags(card)
        _fields(card)
        _notes(card)
        lgpd_box(actor, card["id"])  # admins: LGPD export and erasure
        _merge(card)
    with activity:
        _feed(card)
    with summary:
        st.subheader(t("summary.title"))
        summary_box(actor, card["id"], prefix="contact360", flash_key=FLASH_KEY)


main()
