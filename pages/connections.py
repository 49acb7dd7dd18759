"""Conexões: the workspace's WhatsApp numbers, their live connection state and QR codes.

Layout only: data and rules come from ``workbench.services.instances``. The cards refresh every two seconds in a
fragment, so a QR code that rotates or a number that connects shows up without a page reload. Names and
push names were typed by people, so they are shown with ``st.text`` (literal), never as Markdown; so is
anything else a connector reports (pairing codes, unknown reason codes).

Real numbers (transport ``neonize``) pair either by QR code or by a phone pairing code. WhatsApp shows a
limited series of QR codes; when it runs out the card says so and offers a new series.

Admins and supervisors also see, per number, the inbound events set aside after failing every try ("Falhas",
from ``workbench.services.failures``), with Reprocessar and Descartar. Their phone, text and reason came from
outside and are shown literally.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import streamlit as st

from pages.ui.feedback import attempt, show_flash
from pages.ui.panel import live_fragment
from workbench.base.i18n import format_age, format_moment, reason_label, state_label, t, type_placeholder
from workbench.services import failures, instances

actor = st.session_state["auth_actor"]

FLASH_KEY = "conn_flash"
CONFIRM_KEY = "conn_confirm"
DISCARD_KEY = "conn_discard"  # (instance id, failure id) waiting for the second click of Descartar
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
# whatsmeow's pairing codes: 8 letters/digits, shown as "ABCD-EFGH". These characters mean nothing to Markdown.
PAIR_CODE_SHAPE = re.compile(r"[A-Z0-9]{4}-?[A-Z0-9]{4}")


def _do(action: str, instance_id: int) -> None:
    """Button callback: run the action before the fragment re-reads, so the cards show its effect."""
    st.session_state.pop(CONFIRM_KEY, None)
    with attempt(FLASH_KEY, t(f"connections.done.{action}")):
        ACTIONS[action](actor, instance_id)


def _ask(action: str, instance_id: int) -> None:
    st.session_state[CONFIRM_KEY] = (action, instance_id)


def _cancel() -> None:
    st.session_state.pop(CONFIRM_KEY, None)


def _request_pair_code(instance_id: int) -> None:
    """Button callback of "Pedir código": the code itself arrives in the status hash a moment later."""
    with attempt(FLASH_KEY, t("connections.done.pair_code")):
        instances.request_pair_code(actor, instance_id, st.session_state.get(f"conn_pair_phone_{instance_id}", ""))


def _restart_pairing(instance_id: int) -> None:
    """Button callback of "Gerar novo QR code"."""
    with attempt(FLASH_KEY, t("connections.done.restart_pairing")):
        instances.restart_pairing(actor, instance_id)


def _create() -> None:
    """Form callback for "Adicionar número"."""
    with attempt(FLASH_KEY, t("connections.created")):
        instances.create_instance(actor, st.session_state.get("conn_new_name", ""),
                                  st.session_state.get("conn_new_transport", "sandbox"))
        st.session_state["conn_new_name"] = ""


def _add_number_form() -> None:
    with st.expander(t("connections.add"), icon=":material/add:"):
        st.text_input(t("connections.name"), key="conn_new_name", max_chars=120, help=t("connections.name_help"))
        transport = st.radio(t("connections.transport"), instances.TRANSPORTS, key="conn_new_transport",
                             format_func=lambda x: t(f"connections.transport.{x}"), horizontal=True)
        if transport == "neonize":
            st.caption(t("connections.neonize_note"))
        st.button(t("connections.create"), key="conn_create", type="primary", on_click=_create)


def _detail(label: str, value: str) -> None:
    """A small label over a literal value (the value may be user-typed)."""
    st.caption(label)
    st.text(value)


def _seconds_left(expires_ms: str | int | None) -> int | None:
    """Whole seconds until an epoch-ms deadline from the status hash (None when there is none)."""
    try:
        deadline = int(expires_ms or 0)
    except ValueError:
        return None
    return int(deadline / 1000 - time.time()) if deadline else None


def _qr_block(inst: dict, status: dict) -> None:
    st.markdown(f"**{t('connections.qr_title')}**")
    st.image(instances.qr_png(status["qr"]), width=300)
    left = _seconds_left(status.get("qr_expires_at"))
    if left is not None:
        # The sandbox rotates codes forever; WhatsApp shows six (about 2½ minutes) and then stops.
        suffix = "_neonize" if inst["transport"] == "neonize" else ""
        st.caption(t(f"connections.qr_expires{suffix}", seconds=left) if left > 0
                   else t(f"connections.qr_expired{suffix}"))
    st.caption(t("connections.qr_help_sandbox") if inst["transport"] == "sandbox" else t("connections.qr_help"))


def _pair_code_block(status: dict) -> None:
    """A real number's pairing code, big, with its countdown and where to type it on the phone."""
    code = status["pair_code"]
    if PAIR_CODE_SHAPE.fullmatch(code):
        # big and still literal: st.metric renders Markdown, but nothing in this shape is Markdown
        st.metric(t("connections.pair_code_title"), code)
    else:  # anything else a connector wrote is shown as it is
        _detail(t("connections.pair_code_title"), code)
    left = _seconds_left(status.get("pair_code_expires_at"))
    if left is not None:
        st.caption(t("connections.pair_code_expires", seconds=left) if left > 0
                   else t("connections.pair_code_expired"))
    st.caption(t("connections.pair_code_help"))


def _pairing_controls(inst: dict, status: dict) -> None:
    """What a manager can do while a real number waits to be linked: new QR series, or a phone code."""
    instance_id = inst["id"]
    if status.get("reason") == "qr_expired":
        st.button(t("connections.restart_pairing"), key=f"conn_restart_pairing_{instance_id}",
                  icon=":material/qr_code:", type="primary", on_click=_restart_pairing, args=(instance_id,))
    with st.expander(t("connections.pair_title"), icon=":material/dialpad:"):
        st.caption(t("connections.pair_intro"))
        st.text_input(t("connections.pair_phone"), key=f"conn_pair_phone_{instance_id}", max_chars=24,
                      placeholder=t("connections.pair_phone_placeholder"))
        st.button(t("connections.pair_request"), key=f"conn_pair_{instance_id}", on_click=_request_pair_code,
                  args=(instance_id,))


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


def _retry_failure(instance_id: int, failure_id: str) -> None:
    """Button callback of "Reprocessar"."""
    with attempt(FLASH_KEY, t("failures.done.retry")):
        failures.retry_failure(actor, instance_id, failure_id)


def _discard_failure(instance_id: int, failure_id: str) -> None:
    """Button callback of the confirmed "Descartar"."""
    st.session_state.pop(DISCARD_KEY, None)
    with attempt(FLASH_KEY, t("failures.done.discard")):
        failures.discard_failure(actor, instance_id, failure_id)


def _ask_discard(instance_id: int, failure_id: str) -> None:
    st.session_state[DISCARD_KEY] = (instance_id, failure_id)


def _cancel_discard() -> None:
    st.session_state.pop(DISCARD_KEY, None)


def _failure_kind(failure: failures.Failure) -> str:
    if failure.kind is None:
        return t("failures.kind.unreadable")
    if failure.kind in ("ack", "receipt", "state"):
        return t(f"failures.kind.{failure.kind}")
    return type_placeholder(failure.kind)


def _failure(instance_id: int, failure: failures.Failure) -> None:
    with st.container(border=True):
        when = [t("failures.failed_at", when=format_moment(failure.failed_at))]
        if failure.received_at:
            when.append(t("failures.received_at", when=format_moment(failure.received_at)))
        st.caption(" · ".join([*when, _failure_kind(failure), t("failures.tries", count=failure.tries)]))
        if failure.phone:
            _detail(t("failures.contact"), failure.phone)
        if failure.preview:
            st.text(failure.preview)
        st.caption(t(f"failures.code.{failure.code}"))
        if failure.reason:
            _detail(t("failures.reason"), failure.reason)
        key = f"{instance_id}_{failure.id}"
        if st.session_state.get(DISCARD_KEY) == (instance_id, failure.id):
            st.warning(t("failures.confirm_discard"), icon=":material/warning:")
            with st.container(horizontal=True):
                st.button(t("connections.confirm"), key=f"conn_fail_yes_{key}", type="primary",
                          on_click=_discard_failure, args=(instance_id, failure.id))
                st.button(t("connections.cancel"), key=f"conn_fail_no_{key}", on_click=_cancel_discard)
            return
        with st.container(horizontal=True):
            st.button(t("failures.retry"), key=f"conn_fail_retry_{key}", icon=":material/replay:",
                      disabled=not failure.readable, on_click=_retry_failure, args=(instance_id, failure.id))
            st.button(t("failures.discard"), key=f"conn_fail_discard_{key}", icon=":material/delete:",
                      on_click=_ask_discard, args=(instance_id, failure.id))


def _failures(inst: dict) -> None:
    """The number's set-aside events, most recent first, when there are any."""
    total, items = failures.list_failures(actor, inst["id"])
    if not total:
        return
    with st.expander(t("failures.title", count=total), icon=":material/error:"):
        st.caption(t("failures.intro"))
        if total > len(items):
            st.caption(t("failures.more", shown=len(items), total=total))
        for failure in items:
            _failure(inst["id"], failure)


def _card(inst: dict) -> None:
    status = inst["status"]
    state = status.get("state") or "disconnected"
    real = inst["transport"] == "neonize"
    # a real number's pairing code takes the QR code's place (the connector shows one or the other)
    big_code = real and bool(status.get("pair_code"))
    with st.container(border=True):
        # the QR code (or pairing code) gets its own column only while there is one
        info, side = (st.columns([3, 2], gap="large") if status.get("qr") or big_code
                      else (st.container(), None))
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
            if status.get("pair_code") and not big_code:
                _detail(t("connections.pair_code"), status["pair_code"])
            if actor.is_manager and real and state in ("awaiting_qr", "pairing"):
                _pairing_controls(inst, status)
            if actor.is_manager:
                _actions(inst)
                _failures(inst)
        if side is not None:
            with side:
                if big_code:
                    _pair_code_block(status)
                else:
                    _qr_block(inst, status)


@live_fragment(run_every=2)
def _cards() -> None:
    """The numbers with their live status, re-read every two seconds (connector state lives in Redis)."""
    show_flash(FLASH_KEY)
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
