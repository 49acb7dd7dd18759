"""Conexões: the workspace's WhatsApp numbers, their live connection state and QR codes.

Layout only: data and rules come from ``workbench.instances``. The cards refresh every two seconds in a
fragment, so a QR code that rotates or a number that connects shows up without a page reload. Names and
push names were typed by people, so they are shown with ``st.text`` (literal), never as Markdown.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import streamlit as st

from workbench import instances
from workbench.errors import WorkbenchError
from workbench.i18n import error_text, format_age, reason_label, state_label, t

actor = st.session_state["auth_actor"]

FLASH_KEY = "conn_flash"
CONFIRM_KEY = "conn_confirm"
STATE_COLORS = {
    "connected": "green", "awaiting_qr": "orange", "pairing": "orange", "connecting": "blue",
    "reconnecting": "blue", "stopped": "gray", "disconnected": "red", "logged_out": "red", "replaced": "red",
    "banned": "red", "outdated": "red", "failed": "red",
}
ACTIONS: dict[str, Callable] = {
    "reconnect": instances.reconnect_instance,
    "logout": instances.logout_instance,
    "stop": instances.stop_instance,
    "start": instances.start_instance,
    "remove": instances.remove_instance,
}
# Actions that lose something (the WhatsApp session, the number) ask for a second click.
NEEDS_CONFIRMATION = ("logout", "remove")


def _flash(kind: str, text: str) -> None:
    st.session_state[FLASH_KEY] = (kind, text)


def _show_flash() -> None:
    kind, text = st.session_state.pop(FLASH_KEY, (None, None))
    if kind == "success":
        st.success(text)
    elif kind == "error":
        st.error(text)


def _do(action: str, instance_id: int) -> None:
    """Button callback: run the action before the fragment re-reads, so the cards show its effect."""
    st.session_state.pop(CONFIRM_KEY, None)
    try:
        ACTIONS[action](actor, instance_id)
    except WorkbenchError as exc:
        _flash("error", error_text(exc))
    else:
        _flash("success", t(f"connections.done.{action}"))


def _ask(action: str, instance_id: int) -> None:
    st.session_state[CONFIRM_KEY] = (action, instance_id)


def _cancel() -> None:
    st.session_state.pop(CONFIRM_KEY, None)


def _create() -> None:
    """Form callback for "Adicionar número"."""
    try:
        instances.create_instance(actor, st.session_state.get("conn_new_name", ""),
                                  st.session_state.get("conn_new_transport", "sandbox"))
    except WorkbenchError as exc:
        _flash("error", error_text(exc))
    else:
        st.session_state["conn_new_name"] = ""
        _flash("success", t("connections.created"))


def _add_number_form() -> None:
    with st.expander(t("connections.add"), icon=":material/add:"):
        st.text_input(t("connections.name"), key="conn_new_name", max_chars=120, help=t("connections.name_help"))
        transport = st.radio(t("connections.transport"), instances.TRANSPORTS, key="conn_new_transport",
                             format_func=lambda x: t(f"connections.transport.{x}"), horizontal=True)
        if transport == "neonize":
            st.info(t("connections.neonize_note"), icon=":material/info:")
        st.button(t("connections.create"), key="conn_create", type="primary", on_click=_create,
                  disabled=transport == "neonize")


def _detail(label: str, value: str) -> None:
    """A small label over a literal value (the value may be user-typed)."""
    st.caption(label)
    st.text(value)


def _qr_block(inst: dict, status: dict) -> None:
    st.markdown(f"**{t('connections.qr_title')}**")
    st.image(instances.qr_png(status["qr"]), width=300)
    expires_ms = int(status.get("qr_expires_at") or 0)
    if expires_ms:
        left = int(expires_ms / 1000 - time.time())
        st.caption(t("connections.qr_expires", seconds=left) if left > 0 else t("connections.qr_expired"))
    st.caption(t("connections.qr_help_sandbox") if inst["transport"] == "sandbox" else t("connections.qr_help"))


def _actions(inst: dict) -> None:
    instance_id = inst["id"]
    pending = st.session_state.get(CONFIRM_KEY)
    if pending and pending[1] == instance_id:
        action = pending[0]
        st.warning(t(f"connections.confirm_{action}"), icon=":material/warning:")
        with st.container(horizontal=True):
            st.button(t("connections.confirm"), key=f"conn_yes_{action}_{instance_id}", type="primary",
                      on_click=_do, args=(action, instance_id))
            st.button(t("connections.cancel"), key=f"conn_no_{instance_id}", on_click=_cancel)
        return
    with st.container(horizontal=True):
        st.button(t("connections.reconnect"), key=f"conn_reconnect_{instance_id}", icon=":material/sync:",
                  on_click=_do, args=("reconnect", instance_id))
        st.button(t("connections.logout"), key=f"conn_logout_{instance_id}", icon=":material/link_off:",
                  on_click=_ask, args=("logout", instance_id))
        if inst["desired"] == "stopped":
            st.button(t("connections.start"), key=f"conn_start_{instance_id}", icon=":material/play_arrow:",
                      on_click=_do, args=("start", instance_id))
        else:
            st.button(t("connections.stop"), key=f"conn_stop_{instance_id}", icon=":material/stop:",
                      on_click=_do, args=("stop", instance_id))
        st.button(t("connections.remove"), key=f"conn_remove_{instance_id}", icon=":material/delete:",
                  on_click=_ask, args=("remove", instance_id))


def _card(inst: dict) -> None:
    status = inst["status"]
    state = status.get("state") or "disconnected"
    with st.container(border=True):
        # the QR code gets its own column only while there is one
        info, side = st.columns([3, 2], gap="large") if status.get("qr") else (st.container(), None)
        with info:
            with st.container(horizontal=True, vertical_alignment="center"):
                st.text(inst["name"])
                st.badge(state_label(state), color=STATE_COLORS.get(state, "gray"))
            reason = status.get("reason")
            if reason:
                label = reason_label(reason)
                if label:
                    st.caption(label)
                else:  # an unknown code from a connector is still worth showing, literally
                    st.text(reason)
            age = status.get("heartbeat_age_s")
            details = [
                (t("connections.phone"), inst.get("phone") or t("connections.no_phone")),
                (t("connections.push_name"), inst.get("push_name") or "—"),
                (t("connections.heartbeat"), format_age(age) if age is not None else t("connections.heartbeat_none")),
                (t("connections.restarts"), str(status.get("restarts") or 0)),
            ]
            for column, (label, value) in zip(st.columns(4), details, strict=True):
                with column:
                    _detail(label, value)
            transport = t(f"connections.transport.{inst['transport']}")
            st.caption(f"{t('connections.transport_label')}: {transport}")
            if status.get("pair_code"):
                _detail(t("connections.pair_code"), status["pair_code"])
            if actor.is_manager:
                _actions(inst)
        if side is not None:
            with side:
                _qr_block(inst, status)


@st.fragment(run_every=2)
def _cards() -> None:
    """The numbers with their live status, re-read every two seconds (connector state lives in Redis)."""
    _show_flash()
    numbers = instances.list_instances(actor)
    if not numbers:
        st.info(t("connections.empty_manager") if actor.is_manager else t("connections.empty"))
    for inst in numbers:
        _card(inst)


st.title(t("connections.title"))
st.caption(t("connections.intro"))
if actor.is_manager:
    _add_number_form()
else:
    st.caption(t("connections.manage_note"))
_cards()
