"""Simulador: be a lead on a phone, talking to one of the workspace's sandbox numbers.

Layout only: everything goes through ``workbench.services.simulator`` (which checks the role and that the number
is the workspace's). The page is one fragment that refreshes every two seconds, so the bot's replies, the
"digitando…" indicator and newly connected numbers appear by themselves. Message text is shown with
``st.text`` (literal); names typed by people never go into labels or Markdown, so a poll's options are
``st.text`` rows, each with a plain "Votar" button. Images are shown as the thumbnails ``simulator.chat`` gives
(``pages/ui/media.py``).
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from pages.ui.feedback import attempt, flash, show_flash
from pages.ui.media import show_inline
from pages.ui.panel import live_fragment
from workbench.base.i18n import format_ms_clock, t, type_placeholder
from workbench.services import instances, simulator

actor = st.session_state["auth_actor"]

FLASH_KEY = "sim_flash"
DEFAULT_LEAD_PHONE = "5511987654321"
DEFAULT_LEAD_NAME = "Cliente Teste"
IMAGE_EXTENSIONS = ["png", "jpg", "jpeg", "webp"]


def _lead() -> tuple[str, str]:
    return (st.session_state.get("sim_lead_phone") or DEFAULT_LEAD_PHONE,
            st.session_state.get("sim_lead_name") or DEFAULT_LEAD_NAME)


# -- callbacks ----------------------------------------------------------------------------------------------


def _send_text() -> None:
    lead_phone, lead_name = _lead()
    with attempt(FLASH_KEY):
        simulator.send_from_lead(actor, st.session_state["sim_number"], lead_phone,
                                 text=st.session_state.get("sim_text"), push_name=lead_name)


def _send_image() -> None:
    upload = st.session_state.get("sim_image")
    if upload is None:
        flash(FLASH_KEY, "warning", t("simulator.image_missing"))
        return
    lead_phone, lead_name = _lead()
    with attempt(FLASH_KEY, t("simulator.image_sent")):
        simulator.send_from_lead(actor, st.session_state["sim_number"], lead_phone,
                                 text=st.session_state.get("sim_caption"), media=upload.getvalue(),
                                 mime=upload.type, filename=upload.name, push_name=lead_name)
        st.session_state["sim_caption"] = ""


def _vote(poll_id: str, option: str) -> None:
    lead_phone, lead_name = _lead()
    with attempt(FLASH_KEY):
        simulator.vote(actor, st.session_state["sim_number"], lead_phone, poll_id, option, push_name=lead_name)


def _scan(instance_id: int) -> None:
    with attempt(FLASH_KEY):
        if simulator.scan_qr(actor, instance_id, st.session_state.get(f"sim_scan_phone_{instance_id}") or "",
                             st.session_state.get(f"sim_scan_name_{instance_id}")):
            flash(FLASH_KEY, "success", t("simulator.scanned"))
        else:
            flash(FLASH_KEY, "error", t("simulator.scan_failed"))


# -- drawing ------------------------------------------------------------------------------------------------


def _pending_qr(pending: list[dict[str, Any]]) -> None:
    st.subheader(t("simulator.pending_title"))
    st.caption(t("simulator.pending_help"))
    for item in pending:
        instance_id = item["instance_id"]
        with st.container(border=True):
            qr_col, form_col = st.columns([1, 2], vertical_alignment="center")
            with qr_col:
                st.image(instances.qr_png(item["qr"], scale=4), width=160)
            with form_col:
                st.text(item["name"])
                st.text_input(t("simulator.scan_phone"), key=f"sim_scan_phone_{instance_id}",
                              placeholder="5511912345678")
                st.text_input(t("simulator.scan_name"), key=f"sim_scan_name_{instance_id}")
                st.button(t("simulator.scan"), key=f"sim_scan_{instance_id}", type="primary",
                          icon=":material/qr_code_scanner:", on_click=_scan, args=(instance_id,))


def _bubble(message: dict[str, Any]) -> None:
    from_lead = message["direction"] == "from_lead"
    avatar = ":material/smartphone:" if from_lead else ":material/storefront:"
    with st.chat_message("user" if from_lead else "assistant", avatar=avatar):
        shown = show_inline(message["type"], lambda: message.get("thumbnail"), width=240)
        if not shown and message["type"] != "text":
            st.caption(type_placeholder(message["type"]))
        if message.get("text"):
            st.text(message["text"])
        if message["type"] == "poll" and not from_lead:
            _poll_options(message)
        footer = format_ms_clock(message.get("timestamp_ms"))
        if from_lead and message.get("status"):
            label = t(f"simulator.status.{message['status']}")
            footer = f"{footer} · " + (f":blue[{label}]" if message["status"] == "read" else label)
        st.caption(footer)


def _poll_options(poll: dict[str, Any]) -> None:
    for index, option in enumerate(poll["options"]):
        chosen = poll["vote"] == option
        with st.container(horizontal=True, vertical_alignment="center"):
            st.text(option)
            if chosen:
                st.caption(t("simulator.your_vote"))
            st.button(t("simulator.vote"), key=f"sim_vote_{poll['id']}_{index}", on_click=_vote,
                      args=(poll["id"], option), disabled=chosen)


def _chat(number: dict[str, Any]) -> None:
    business_phone = number["phone"]
    lead_phone, _ = _lead()
    if st.session_state.get("sim_read_auto", True):
        simulator.mark_read(actor, business_phone, lead_phone)
    messages = simulator.chat(actor, business_phone, lead_phone)
    st.subheader(t("simulator.chat_title"))
    with st.container(height=480, border=True, autoscroll=True):
        if not messages:
            st.caption(t("simulator.empty_chat"))
        for message in messages:
            _bubble(message)
        if simulator.is_typing(actor, business_phone, lead_phone):
            st.caption(f"_{t('simulator.typing')}_")
    st.chat_input(t("simulator.type"), key="sim_text", on_submit=_send_text)


@live_fragment(run_every=2)
def _simulator() -> None:
    """The live page: pending QR codes, the number and lead pickers, and the lead's chat."""
    show_flash(FLASH_KEY)
    pending = simulator.pending_qr_codes(actor)
    numbers = {n["phone"]: n for n in simulator.business_numbers(actor)}
    if pending:
        _pending_qr(pending)
    if not numbers:
        st.info(t("simulator.none"), icon=":material/info:")
        return
    setup_col, chat_col = st.columns([1, 2], gap="large")
    with setup_col:
        phone = st.selectbox(t("simulator.number"), list(numbers), key="sim_number")
        number = numbers[phone]
        st.text(number["name"])
        if not number["online"]:
            st.warning(t("simulator.offline"), icon=":material/cloud_off:")
        st.subheader(t("simulator.lead_title"))
        st.text_input(t("simulator.lead_phone"), key="sim_lead_phone", value=DEFAULT_LEAD_PHONE)
        st.text_input(t("simulator.lead_name"), key="sim_lead_name", value=DEFAULT_LEAD_NAME)
        st.toggle(t("simulator.read_auto"), key="sim_read_auto", value=True)
        with st.expander(t("simulator.image"), icon=":material/image:"):
            st.file_uploader(t("simulator.image_file"), type=IMAGE_EXTENSIONS, key="sim_image")
            st.text_input(t("simulator.image_caption"), key="sim_caption")
            st.button(t("simulator.send_image"), key="sim_send_image", on_click=_send_image)
    with chat_col, attempt():  # a refusal (e.g. the number was unlinked between two reads) shows in place
        _chat(number)


st.title(t("simulator.title"))
st.caption(t("simulator.intro"))
_simulator()
