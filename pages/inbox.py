"""Caixa de entrada: the shared inbox — conversation list, chat, reply box, bot and status controls.

Layout only: every read and write goes through ``workbench.services.conversations`` (and, for the contact panel's
tags and fields, ``workbench.services.contacts``; for its funnel runs and their "Parar funil" button,
``workbench.services.funnels``). The whole screen is one fragment that
ticks every two seconds but re-reads PostgreSQL only when the workspace's revision counter
(``conversations.revision``) or the user's filters/selection changed; otherwise it redraws from the copy
kept in session state. Everything contacts typed (names, push names, messages, reactions) is shown with
``st.text`` — literal, so Markdown, HTML and links in it stay inert; so are tag names, custom fields and the
labels and options of the workspace's typed fields (``st.text``, plain option text, ``st.dataframe`` /
``st.data_editor`` cells). Fields defined in Configurações › Campos get an input of their type (number, date
picker, list, sim/não); other fields are edited as free text. Contacts' files are shown as
``pages/ui/media.py`` allows: thumbnails, players for inline-safe types, else a download.
"""

from __future__ import annotations

from datetime import date
from functools import partial
from typing import Any

import pandas as pd
import streamlit as st

from connector.media import MediaError, has_media, inline_type, load_media, thumbnail
from pages.ui.ai_summary import summary_box
from pages.ui.feedback import attempt, flash, show_flash
from pages.ui.media import PLAYER_KINDS, download_button, show_inline
from pages.ui.odoo import lead_link
from pages.ui.panel import live_fragment
from pages.ui.presence import keep_alive
from pages.ui.tags import tag_editor
from workbench.base.errors import NotFound
from workbench.base.i18n import format_clock, format_moment, format_when, status_label, t, type_placeholder
from workbench.services import (
    contact_fields,
    contacts,
    conversations,
    funnels,
    inbox_media,
    media_library,
    quick_replies,
    thread_notes,
    transfers,
    workspaces,
)
from workbench.store.config import get_settings
from workbench.store.text import MAX_CONTACT_FIELD_CHARS, MAX_CONTACT_NAME_CHARS, MAX_SEARCH_CHARS

actor = st.session_state["auth_actor"]

SELECTED_KEY = "inbox_selected"
# (signature of the inbox cache, runs): the contact's funnel runs, re-read only when the inbox re-reads.
RUNS_CACHE_KEY = "inbox_funnel_runs"
# (signature of the inbox cache, contact profile, workspace tags, field definitions): re-read only when the inbox
# re-reads.
CONTACT_CACHE_KEY = "inbox_contact_profile"
CACHE_KEY = "inbox_cache"
# (conversation id, how many of its newest messages are shown): older ones come PAGE at a time, on demand.
SHOWN_KEY = "inbox_thread_shown"
PAGE = 200
FLASH_KEY = "inbox_flash"
STATUSES = ("open", "pending", "closed")
# Rows of these types change another message (edited text, deleted, reaction); the target shows the change.
SIDE_EFFECT_TYPES = ("edit", "revoke", "reaction")
# Message types that carry a file.
MEDIA_TYPES = ("image", "sticker", "audio", "video", "document")
RUN_COLORS = {"active": "green", "waiting": "blue", "paused": "orange", "completed": "gray", "failed": "red",
              "stopped": "gray"}
# Ended runs shown under the live ones: enough to see what just happened, not the whole history.
ENDED_RUNS_SHOWN = 3
# What a date field's picker offers (Streamlit's default is ten years around today: too short for birthdays).
MIN_DATE, MAX_DATE = date(1900, 1, 1), date(2100, 12, 31)


# -- data (through the service), cached per revision in session state ---------------------------------------


def _filters() -> tuple[str, bool, str]:
    return (st.session_state.get("inbox_status") or "open", bool(st.session_state.get("inbox_mine")),
            (st.session_state.get("inbox_search") or "").strip())


def _load() -> dict[str, Any]:
    """The list, the open conversation and its messages: re-read only when something could have changed."""
    selected = st.session_state.get(SELECTED_KEY)
    status, mine, search = _filters()
    shown = _shown(selected)
    signature = (conversations.revision(actor), status, mine, search, selected, shown)
    cache = st.session_state.get(CACHE_KEY)
    if cache and cache["signature"] == signature:
        return cache
    conversation, messages, notes = None, [], []
    if selected:
        try:
            conversation = conversations.get_conversation(actor, selected)
            if conversation["unread_count"]:
                # The agent is looking at it: new messages are read as they arrive.
                conversations.mark_read(actor, selected)
                conversation["unread_count"] = 0
            # one more than shown: whether older messages exist (the "show older" button)
            messages = conversations.list_messages(actor, selected, limit=shown + 1)
            notes = thread_notes.list_notes(actor, selected)
        except NotFound:
            # reassigned to someone else, or gone: close the chat instead of failing the page
            st.session_state.pop(SELECTED_KEY, None)
            st.warning(t("inbox.gone"))
            selected, conversation, messages, notes = None, None, [], []
    # Read the revision after our own mark_read, so our change does not trigger one more reload.
    revision = conversations.revision(actor)
    rows = conversations.list_conversations(actor, status=status, mine=mine, search=search or None)
    older = len(messages) > shown
    cache = {"signature": (revision, status, mine, search, selected, shown), "rows": rows,
             "conversation": conversation, "messages": messages[1:] if older else messages, "notes": notes,
             "older": older}
    st.session_state[CACHE_KEY] = cache
    return cache


def _shown(conversation_id: int | None) -> int:
    """How many of the open thread's newest messages are shown (grows with "Mostrar mensagens anteriores")."""
    shown = st.session_state.get(SHOWN_KEY)
    return shown[1] if shown and shown[0] == conversation_id else PAGE


def _show_older() -> None:
    selected = st.session_state.get(SELECTED_KEY)
    st.session_state[SHOWN_KEY] = (selected, min(_shown(selected) + PAGE, conversations.MAX_THREAD - 1))


def _file_or_empty(sha256: str) -> bytes:
    """A stored file for a download button (empty when it is gone: the button then saves an empty file)."""
    try:
        return load_media(get_settings().data_dir, sha256)
    except MediaError:
        return b""


# -- callbacks: they run before the fragment redraws, so the screen shows their effect ----------------------


def _select(conversation_id: int) -> None:
    st.session_state[SELECTED_KEY] = conversation_id


def _act(action: str) -> None:
    conversation_id = st.session_state.get(SELECTED_KEY)
    with attempt(FLASH_KEY):
        if action == "pause":
            conversations.pause_bot(actor, conversation_id)
        elif action == "resume":
            conversations.resume_bot(actor, conversation_id)
        elif action in STATUSES:
            conversations.set_status(actor, conversation_id, action)
        elif action == "assign_me":
            conversations.assign(actor, conversation_id, agent_id=actor.user_id)


def _reply() -> None:
    conversation_id = st.session_state.get(SELECTED_KEY)
    with attempt(FLASH_KEY):
        # "/atalho" alone sends that quick reply, rendered for this contact
        quick_replies.send_typed(actor, conversation_id, st.session_state.get("inbox_reply") or "")


def _send_quick() -> None:
    conversation_id = st.session_state.get(SELECTED_KEY)
    with attempt(FLASH_KEY):
        text = quick_replies.render_reply(actor, conversation_id, reply_id=st.session_state.get("inbox_quick"))
        conversations.send_text(actor, conversation_id, text)


def _add_note() -> None:
    conversation_id = st.session_state.get(SELECTED_KEY)
    with attempt(FLASH_KEY, t("inbox.note_saved")):
        thread_notes.add_note(actor, conversation_id, st.session_state.get("inbox_note") or "")
        st.session_state["inbox_note"] = ""


def _send_media() -> None:
    """Send the uploaded file, else the library item picked, with the caption (``inbox_media.send_media``)."""
    state = st.session_state
    upload = state.get(f"inbox_media_upload_{state.get('inbox_media_nonce', 0)}")
    with attempt(FLASH_KEY, t("inbox.media_sent")):
        if upload is not None:
            inbox_media.send_media(actor, state.get(SELECTED_KEY), filename=upload.name, data=upload.getvalue(),
                                   mime=upload.type, caption=state.get("inbox_media_caption") or "")
        else:
            inbox_media.send_media(actor, state.get(SELECTED_KEY), media_id=state.get("inbox_media_pick") or None,
                                   caption=state.get("inbox_media_caption") or "")
        state["inbox_media_caption"], state["inbox_media_pick"] = "", 0  # no accidental second send
        state["inbox_media_nonce"] = state.get("inbox_media_nonce", 0) + 1  # a fresh, empty uploader


def _send_voice() -> None:
    """Send the browser's recording as a WhatsApp voice note (``inbox_media.send_voice_note``)."""
    state = st.session_state
    recording = state.get(f"inbox_voice_{state.get('inbox_media_nonce', 0)}")
    with attempt(FLASH_KEY, t("inbox.media_sent")):
        inbox_media.send_voice_note(actor, state.get(SELECTED_KEY), recording.getvalue() if recording else b"")
        state["inbox_media_nonce"] = state.get("inbox_media_nonce", 0) + 1  # a fresh recorder


def _transfer() -> None:
    state = st.session_state
    with attempt(FLASH_KEY, t("inbox.transferred")):
        transfers.transfer(actor, state.get(SELECTED_KEY), agent_id=state.get("inbox_transfer_person") or None,
                           team_id=state.get("inbox_transfer_team") or None,
                           note=state.get("inbox_transfer_note") or "")
        for key in ("inbox_transfer_person", "inbox_transfer_team"):
            state[key] = 0
        state["inbox_transfer_note"] = ""


# -- drawing ------------------------------------------------------------------------------------------------


def _preview(row: dict[str, Any]) -> str:
    """One line for the list: a placeholder for non-text messages, "Você:" for our own last message."""
    text = row["last_message_preview"] or ""
    kind = row["last_message_type"] or "text"
    if kind != "text":
        text = f"{type_placeholder(kind)} {text}".strip()
    if row["last_message_direction"] == "out":
        text = f"{t('inbox.you')} {text}"
    return text


def _conversation_list(rows: list[dict[str, Any]], selected: int | None) -> None:
    st.segmented_control(t("inbox.filter"), STATUSES, key="inbox_status", default="open", required=True,
                         format_func=lambda s: t(f"inbox.filter.{s}"), label_visibility="collapsed")
    with st.container(horizontal=True, vertical_alignment="center"):
        st.text_input(t("inbox.search"), key="inbox_search", label_visibility="collapsed",
                      placeholder=t("inbox.search"), icon=":material/search:", max_chars=MAX_SEARCH_CHARS)
        st.toggle(t("inbox.mine"), key="inbox_mine")
    if not rows:
        st.caption(t("inbox.empty"))
        return
    with st.container(height=640, border=False):
        for row in rows:
            is_open = row["id"] == selected
            with st.container(border=True, horizontal=True, vertical_alignment="center"):
                with st.container(gap=None):
                    st.text(row["display_name"], wrap=False)
                    st.text(_preview(row), wrap=False)
                    when = format_when(row["last_message_at"])
                    unread = row["unread_count"]
                    if unread:
                        count = t("inbox.unread_one") if unread == 1 else t("inbox.unread", n=unread)
                        when = f"{when} · :green-badge[{count}]"
                    st.caption(when)
                st.button(t("inbox.open"), key=f"inbox_open_{row['id']}", on_click=_select, args=(row["id"],),
                          disabled=is_open, type="primary" if unread and not is_open else "secondary",
                          width="content")


def _message(message: dict[str, Any], targets: set[str]) -> None:
    kind, data = message["type"], message["data"] or {}
    if kind in SIDE_EFFECT_TYPES and data.get("target_id") in targets:
        return  # already shown on the message it changed
    inbound = message["direction"] == "in"
    if inbound:
        avatar = ":material/person:"
    else:
        avatar = ":material/support_agent:" if message["sent_by_user_id"] else ":material/smart_toy:"
    with st.chat_message("user" if inbound else "assistant", avatar=avatar):
        if data.get("revoked"):
            st.caption(t("msgtype.revoke"))
        else:
            media = data.get("media")
            if isinstance(media, dict) and kind in MEDIA_TYPES:
                _media(message["id"], kind, media)
            elif kind != "text":
                st.caption(type_placeholder(kind))
            text = data.get("edited_text") or message["text"]
            if text:
                st.text(text)
            if data.get("reaction"):
                st.text(f"{t('inbox.reaction')} {data['reaction']}")
        footer = [format_clock(message["wa_timestamp"] or message["created_at"])]
        if data.get("edited_text") and not data.get("revoked"):
            footer.append(t("inbox.edited"))
        if not inbound:
            if not message["sent_by_user_id"]:
                footer.append(t("inbox.from_bot"))
            label = status_label(message["status"])
            if message["status"] == "read":
                label = f":blue[{label}]"
            elif message["status"] == "failed":
                label = f":red[{label}]"
            footer.append(label)
        st.caption(" · ".join(part for part in footer if part))


def _note(note: dict[str, Any]) -> None:
    """A private note in the thread: its own avatar and a bordered box, so it never reads as a sent message."""
    with st.chat_message("note", avatar=":material/lock:"), st.container(border=True):
        st.caption(f":orange[{t('inbox.note')}] · {format_clock(note['created_at'])}")
        st.text(note["author"] or "—")  # typed by people: literal
        st.text(note["body"])


def _team_tools() -> None:
    """Transfer, private note and quick replies for the open conversation (popovers under the chat's header)."""
    with st.container(horizontal=True):
        with st.popover(t("inbox.transfer"), icon=":material/forward:"):
            people = {0: t("inbox.transfer_none"), **{p["id"]: p["name"] for p in workspaces.people(actor)
                                                      if p["active"]}}
            teams = {0: t("inbox.transfer_none"), **{team["id"]: team["name"] for team in workspaces.list_teams(actor)}}
            st.selectbox(t("inbox.transfer_to_person"), list(people), key="inbox_transfer_person",
                         format_func=people.get)
            st.selectbox(t("inbox.transfer_to_team"), list(teams), key="inbox_transfer_team", format_func=teams.get)
            st.text_area(t("inbox.transfer_note"), key="inbox_transfer_note", max_chars=4000)
            st.button(t("inbox.transfer_submit"), key="inbox_transfer_submit", type="primary", on_click=_transfer)
        with st.popover(t("inbox.note"), icon=":material/lock:"):
            st.text_area(t("inbox.note"), key="inbox_note", max_chars=4000, placeholder=t("inbox.note_placeholder"),
                         label_visibility="collapsed")
            st.button(t("inbox.note_submit"), key="inbox_note_submit", type="primary", on_click=_add_note)
        with st.popover(t("inbox.media"), icon=":material/attach_file:"):
            # the uploader's key changes after a send, so it comes back empty
            nonce = st.session_state.get("inbox_media_nonce", 0)
            st.file_uploader(t("inbox.media_upload"), key=f"inbox_media_upload_{nonce}",
                             type=list(media_library.ACCEPTED_EXTENSIONS))
            library = {0: t("inbox.transfer_none"), **{m["id"]: m["filename"] or str(m["id"])
                                                       for m in media_library.list_media(actor)}}
            st.selectbox(t("inbox.media_library"), list(library), key="inbox_media_pick", format_func=library.get)
            st.text_input(t("inbox.media_caption"), key="inbox_media_caption", max_chars=inbox_media.MAX_CAPTION,
                          help=t("inbox.media_caption_help"))
            st.button(t("inbox.media_send"), key="inbox_media_send", type="primary", on_click=_send_media)
            st.divider()
            st.audio_input(t("inbox.voice"), key=f"inbox_voice_{nonce}", help=t("inbox.voice_help"))
            st.button(t("inbox.voice_send"), key="inbox_voice_send", icon=":material/mic:", on_click=_send_voice)
        with st.popover(t("inbox.quick"), icon=":material/bolt:"):
            replies = {q["id"]: f"/{q['shortcut']}" for q in quick_replies.list_replies(actor)}
            if not replies:
                st.caption(t("inbox.quick_none"))
            else:
                st.selectbox(t("inbox.quick"), list(replies), key="inbox_quick", format_func=replies.get,
                             label_visibility="collapsed")
                st.button(t("inbox.quick_send"), key="inbox_quick_send", type="primary", on_click=_send_quick)


def _media(message_id: int, kind: str, media: dict[str, Any]) -> None:
    """A message's file, decided by its content (``pages/ui/media.py``): an image's thumbnail or a player when the
    content allows, else its name and a download."""
    data_dir = get_settings().data_dir
    sha256 = str(media.get("sha256") or "")
    if not has_media(data_dir, sha256):
        st.caption(t("inbox.media_missing"))
        return
    if kind in PLAYER_KINDS:
        shown = show_inline(kind, partial(load_media, data_dir, sha256), inline_type(data_dir, sha256))
    else:
        shown = show_inline(kind, partial(thumbnail, data_dir, sha256))
    if shown:
        return
    st.caption(type_placeholder(kind) if kind == "document" else t("inbox.media_unshown"))
    name = media.get("filename") or t("inbox.document")
    st.text(name)  # named by the contact: literal (the download's name is made safe)
    # read from disk only when clicked: the chat redraws every two seconds
    download_button(t("inbox.download"), partial(_file_or_empty, sha256), name, key=f"inbox_download_{message_id}")


def _chat(conversation: dict[str, Any], messages: list[dict[str, Any]], notes: list[dict[str, Any]],
          older: bool = False) -> None:
    contact = conversation["contact"]
    with st.container(horizontal=True, vertical_alignment="center"):
        st.text(contact["display_name"])
        st.badge(t(f"convstatus.{conversation['status']}"), color="blue")
        if conversation["bot_paused"]:
            st.badge(t("inbox.bot_paused"), color="orange", icon=":material/pause:")
        else:
            st.badge(t("inbox.bot_active"), color="green", icon=":material/smart_toy:")
    with st.container(horizontal=True):
        if conversation["bot_paused"]:
            st.button(t("inbox.resume_bot"), key="inbox_resume", on_click=_act, args=("resume",),
                      icon=":material/smart_toy:")
        else:
            st.button(t("inbox.pause_bot"), key="inbox_pause", on_click=_act, args=("pause",),
                      icon=":material/pause:")
        if conversation["status"] == "closed":
            st.button(t("inbox.reopen"), key="inbox_reopen", on_click=_act, args=("open",),
                      icon=":material/replay:")
        else:
            st.button(t("inbox.resolve"), key="inbox_resolve", on_click=_act, args=("closed",),
                      icon=":material/check_circle:")
        if conversation["agent_id"] != actor.user_id:
            st.button(t("inbox.assign_me"), key="inbox_assign", on_click=_act, args=("assign_me",),
                      icon=":material/person_add:")
    _team_tools()
    targets = {m["wa_id"] for m in messages if m["wa_id"]}
    # private notes sit between the messages by time (notes older than the oldest message shown stay out)
    oldest = messages[0]["created_at"] if messages else None
    thread = [("message", m["created_at"], m) for m in messages] + [
        ("note", n["created_at"], n) for n in notes if oldest is None or n["created_at"] >= oldest]
    thread.sort(key=lambda item: item[1])
    with st.container(height=520, border=True, autoscroll=True):
        if older:
            st.button(t("inbox.older"), key="inbox_older", on_click=_show_older, icon=":material/history:")
        if not thread:
            st.caption(t("inbox.no_messages"))
        for kind, _, item in thread:
            if kind == "note":
                _note(item)
            else:
                _message(item, targets)
    st.chat_input(t("inbox.reply"), key="inbox_reply", on_submit=_reply)


def _detail(label: str, value: str | None) -> None:
    st.caption(label)
    st.text(value or "—")


def _stop_run(run_id: int) -> None:
    """"Parar funil": the service re-checks that the run is still live and visible to this user."""
    with attempt(FLASH_KEY, t("inbox.funnel.stopped")):
        funnels.stop_contact_run(actor, run_id)
    # Re-read now rather than wait for the revision bump to arrive with the next tick.
    st.session_state.pop(RUNS_CACHE_KEY, None)


def _contact_runs(contact_id: int, signature: tuple) -> list[dict[str, Any]]:
    """The contact's runs, cached like the rest of the inbox: runs change only with events that bump the
    workspace revision (messages, timers, a stop), so the two-second tick does not query them again."""
    cached = st.session_state.get(RUNS_CACHE_KEY)
    if cached and cached[0] == signature:
        return cached[1]
    runs = funnels.contact_runs(actor, contact_id)
    st.session_state[RUNS_CACHE_KEY] = (signature, runs)
    return runs


def _start_funnel(conversation_id: int) -> None:
    """"Iniciar funil": start the chosen funnel by hand (it replaces a live run and lifts a pause)."""
    funnel_id = st.session_state.get("inbox_start_funnel")
    if funnel_id is None:
        return
    with attempt(FLASH_KEY, t("inbox.funnel.started_now")):
        funnels.start_for_conversation(actor, conversation_id, funnel_id)
    st.session_state.pop(RUNS_CACHE_KEY, None)


def _start_control(conversation_id: int) -> None:
    choices = funnels.startable_funnels(actor)
    if not choices:
        return
    names = {f["id"]: f["name"] for f in choices}
    with st.container(horizontal=True, vertical_alignment="bottom"):
        # funnel names are typed by users: the selectbox shows them as plain option text
        st.selectbox(t("inbox.funnel.start_pick"), list(names), key="inbox_start_funnel",
                     format_func=lambda fid: names.get(fid, ""))
        st.button(t("inbox.funnel.start"), key="inbox_start_funnel_go", on_click=_start_funnel,
                  args=(conversation_id,), icon=":material/play_circle:")


def _funnel_section(contact_id: int, signature: tuple, conversation_id: int) -> None:
    st.subheader(t("inbox.funnel.title"))
    _start_control(conversation_id)
    runs = _contact_runs(contact_id, signature)
    live = [run for run in runs if run["status"] in funnels.LIVE_STATUSES]
    shown = live + [run for run in runs if run["status"] not in funnels.LIVE_STATUSES][:ENDED_RUNS_SHOWN]
    if not shown:
        st.caption(t("inbox.funnel.none"))
        return
    for run in shown:
        with st.container(border=True):
            st.text(run["funnel"])  # named by a user: literal
            st.badge(t(f"inbox.funnel.status.{run['status']}"), color=RUN_COLORS.get(run["status"], "gray"))
            _detail(t("inbox.funnel.node"), run["node"])
            _detail(t("inbox.funnel.started"), format_moment(run["started_at"]))
            if run["status"] == "waiting" and run["deadline"]:
                _detail(t("inbox.funnel.deadline"), format_moment(run["deadline"]))
            if run["status"] == "failed" and run["error"]:
                _detail(t("inbox.funnel.error"), run["error"])
            if run["status"] in funnels.LIVE_STATUSES:
                st.button(t("inbox.funnel.stop"), key=f"inbox_stop_run_{run['id']}", on_click=_stop_run,
                          args=(run["id"],), icon=":material/stop_circle:")


def _contact_data(contact_id: int, signature: tuple) -> tuple[dict[str, Any], list[dict[str, Any]],
                                                                list[contact_fields.FieldDef]]:
    """The contact's profile (tags, fields), the workspace's tags and field definitions, cached like the rest of
    the inbox."""
    cached = st.session_state.get(CONTACT_CACHE_KEY)
    if cached and cached[0] == signature:
        return cached[1], cached[2], cached[3]
    profile, tags = contacts.contact_profile(actor, contact_id), contacts.list_tags(actor)
    definitions = contact_fields.list_fields(actor)
    st.session_state[CONTACT_CACHE_KEY] = (signature, profile, tags, definitions)
    return profile, tags, definitions


def _cell(value: Any) -> str | None:
    """A data_editor cell as text (new rows hold NA where nothing was typed)."""
    return None if value is None or pd.isna(value) else str(value)


def _save_contact(contact_id: int, details: dict[str, str], typed: dict[str, Any], table: pd.DataFrame) -> None:
    free = [(_cell(row["key"]), _cell(row["value"])) for row in table.to_dict("records")]
    with attempt():  # a refusal shows here, under the form, which keeps what was typed
        contacts.update_contact(actor, contact_id, **details, custom_data=[*typed.items(), *free])
        flash(FLASH_KEY, "success", t("inbox.contact.saved"))
        st.rerun()  # show the saved contact everywhere on the screen at once


def _typed_input(field: contact_fields.FieldDef, value: Any, key: str) -> Any:
    """The widget of a defined field, by its type; returns what it holds (None: no value).

    The label was typed by people, so it is shown with ``st.text`` and the widget is labelled by the field's key.
    """
    st.text(field.label)
    common = {"key": key, "label_visibility": "collapsed"}
    if field.type == "number":
        number = value if isinstance(value, int | float) and not isinstance(value, bool) else None
        return st.number_input(field.key, value=None if number is None else float(number), step=1.0,
                               format="%.2f", **common)
    if field.type == "date":
        try:
            day = date.fromisoformat(value) if isinstance(value, str) else None
        except ValueError:
            day = None
        return st.date_input(field.key, value=day, min_value=MIN_DATE, max_value=MAX_DATE,
                             format=t("fields.date_format"), **common)
    if field.type == "choice":
        options = list(field.options)
        return st.selectbox(field.key, options, index=options.index(value) if value in options else None,
                            placeholder=t("fields.pick"), **common)
    if field.type == "boolean":
        choices = [True, False]
        return st.selectbox(field.key, choices, index=choices.index(value) if isinstance(value, bool) else None,
                            placeholder=t("fields.pick"), format_func=partial(contact_fields.display_value, "boolean"),
                            **common)
    return st.text_input(field.key, value="" if value is None else str(value), max_chars=MAX_CONTACT_FIELD_CHARS,
                         **common)


def _fields_section(profile: dict[str, Any], definitions: list[contact_fields.FieldDef]) -> None:
    stored = profile["custom_data"]
    defined = {f.key: f for f in definitions}
    shown = [(f.label, contact_fields.display_value(f.type, stored[f.key])) for f in definitions if f.key in stored]
    shown += [(key, str(value)) for key, value in stored.items() if key not in defined]
    st.caption(t("inbox.fields"))
    if shown:
        st.dataframe(pd.DataFrame({t("inbox.fields.key"): [label for label, _ in shown],
                                   t("inbox.fields.value"): [value for _, value in shown]}, dtype="string"),
                     hide_index=True)  # literal cells
    else:
        st.text(t("inbox.fields.none"))
    free = {key: str(value) for key, value in stored.items() if key not in defined}
    table = pd.DataFrame({"key": pd.Series(list(free), dtype="string"),
                          "value": pd.Series(list(free.values()), dtype="string")})
    columns = {"key": st.column_config.TextColumn(t("inbox.fields.key"), help=t("inbox.fields.key_help")),
               "value": st.column_config.TextColumn(t("inbox.fields.value"), help=t("inbox.fields.value_help"),
                                                    max_chars=MAX_CONTACT_FIELD_CHARS)}
    # Keyed by the saved values and definitions: a save (here or anywhere else) gives fresh widgets, while
    # unrelated revisions (new messages) keep what the agent is typing.
    version = abs(hash((profile["id"], profile["name"], profile["email"], profile["company"],
                        tuple(sorted((k, repr(v)) for k, v in stored.items())), tuple(definitions))))
    with st.expander(t("inbox.contact.edit"), icon=":material/edit:"), st.form("inbox_contact_form", border=False):
        details = {
            "name": st.text_input(t("inbox.name"), value=profile["name"] or "", max_chars=MAX_CONTACT_NAME_CHARS,
                                  key=f"inbox_contact_name_{version}"),
            "email": st.text_input(t("inbox.email"), value=profile["email"] or "", max_chars=254,
                                   key=f"inbox_contact_email_{version}"),
            "company": st.text_input(t("inbox.company"), value=profile["company"] or "",
                                     max_chars=contacts.MAX_COMPANY_CHARS, key=f"inbox_contact_company_{version}")}
        typed: dict[str, Any] = {}
        if definitions:
            st.caption(t("inbox.fields.defined"))
            for field in definitions:
                typed[field.key] = _typed_input(field, stored.get(field.key), f"inbox_field_{field.key}_{version}")
        st.caption(t("inbox.fields.free"))
        edited = st.data_editor(table, hide_index=True, column_config=columns, num_rows="dynamic",
                                key=f"inbox_contact_fields_{version}")
        if st.form_submit_button(t("inbox.contact.save"), key="inbox_contact_save", icon=":material/save:"):
            _save_contact(profile["id"], details, typed, edited)


def _contact_panel(conversation: dict[str, Any], rows: list[dict[str, Any]], signature: tuple) -> None:
    contact = conversation["contact"]
    st.subheader(t("inbox.contact"))
    st.page_link("pages/contact.py", label=t("inbox.contact.open360"), icon=":material/person_search:",
                 query_params={"contact": str(contact["id"])})
    _detail(t("inbox.name"), contact["name"])
    _detail(t("inbox.push_name"), contact["push_name"])
    _detail(t("inbox.phone"), contact["phone"])
    row = next((r for r in rows if r["id"] == conversation["id"]), None)
    if row:
        _detail(t("inbox.number"), row["instance"])
    _detail(t("inbox.agent"), conversation["agent_name"] or t("inbox.unassigned"))
    st.caption(t("inbox.status"))
    st.text(t(f"convstatus.{conversation['status']}"))
    profile, workspace_tags, definitions = _contact_data(contact["id"], signature)
    _detail(t("inbox.email"), profile["email"])
    _detail(t("inbox.company"), profile["company"])
    lead_link(profile.get("odoo_lead"), key="inbox_odoo_lead")
    st.caption(t("inbox.tags"))
    tag_editor(actor, profile["id"], profile["tags"], workspace_tags, prefix="inbox", flash_key=FLASH_KEY)
    _fields_section(profile, definitions)
    _funnel_section(contact["id"], signature, conversation["id"])
    st.caption(t("summary.title"))
    summary_box(actor, contact["id"], prefix="inbox", flash_key=FLASH_KEY, cache_key=signature)


@live_fragment(run_every=2)
def _inbox() -> None:
    """The live part of the page (see the module docstring for when it re-reads)."""
    show_flash(FLASH_KEY)  # before reading: what an action said shows even when the read meets a server down
    keep_alive(actor)  # an open inbox is not idle (routing.IDLE_OFFLINE)
    data = _load()
    selected = st.session_state.get(SELECTED_KEY)
    list_col, chat_col, contact_col = st.columns([1.3, 2.2, 0.85], gap="medium")
    with list_col:
        _conversation_list(data["rows"], selected)
    conversation = data["conversation"]
    if conversation is None:
        with chat_col:
            st.info(t("inbox.pick"), icon=":material/forum:")
        return
    with chat_col:
        _chat(conversation, data["messages"], data.get("notes") or [], data.get("older", False))
    with contact_col:
        _contact_panel(conversation, data["rows"], data["signature"])


st.title(t("inbox.title"))
_inbox()
