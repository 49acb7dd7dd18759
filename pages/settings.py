"""Configurações: the bot's default reply, the workspace's time zone and team (tab Geral), and the contacts'
typed fields (tab Campos); admins and supervisors.

Layout only: settings go through ``workbench.services.workspace_settings``, people through
``workbench.services.workspaces`` and field definitions through ``workbench.services.contact_fields``, which also
enforce who may change what. Names, e-mails, field labels and options were typed by people, so they are shown
with literal elements (``st.dataframe``, ``st.code``, ``st.text``, option text), never as Markdown.
"""

from __future__ import annotations

import streamlit as st

from pages.ui import team_admin
from pages.ui.feedback import attempt, show_flash
from workbench.base.i18n import role_label, t
from workbench.services import contact_fields, workspace_settings, workspaces
from workbench.store.models import FIELD_TYPES, ROLES

actor = st.session_state["auth_actor"]

BOT_FLASH_KEY = "settings_bot_flash"
REPLY_FLASH_KEY = "settings_reply_flash"
TEAM_FLASH_KEY = "settings_team_flash"
ZONE_FLASH_KEY = "settings_zone_flash"
FIELDS_FLASH_KEY = "settings_fields_flash"
FIELD_PICK_KEY = "settings_field_pick"
# The id of the field whose deletion waits for confirmation.
FIELD_DELETE_KEY = "settings_field_pending_delete"
DISPLAY_ZONE_KEY = "display_zone"  # the zone app.py shows this session's times in
# The new account's credentials, popped by the run that shows them: the password is on screen exactly once.
CREDENTIALS_KEY = "settings_new_credentials"
REPLY_MODES = ("every", "once_24h")
# Widget key -> field of workspace_settings.DefaultReply.
REPLY_FIELDS = {"settings_reply_enabled": "enabled", "settings_reply_mode": "mode", "settings_reply_text": "text"}


# -- Resposta padrão ------------------------------------------------------------------------------------------


def _seed_reply_form() -> None:
    """Fill the form from the stored setting when it is first drawn (and again after leaving the page).

    Widget values live in session state rather than in ``value=``, so a refused save keeps what was typed.
    """
    if all(key in st.session_state for key in REPLY_FIELDS):
        return
    reply = workspace_settings.get_setting(actor, "default_reply")
    for key, field in REPLY_FIELDS.items():
        st.session_state[key] = getattr(reply, field)


def _save_reply() -> None:
    """Form callback: validate and store through the service; refusals come back as catalog messages."""
    value = {field: st.session_state.get(key) for key, field in REPLY_FIELDS.items()}
    with attempt(REPLY_FLASH_KEY, t("settings.reply.saved")):
        workspace_settings.save_setting(actor, "default_reply", value)


def _default_reply_section() -> None:
    st.subheader(t("settings.reply.title"))
    st.caption(t("settings.reply.caption"))
    _seed_reply_form()
    with st.form("settings_reply_form", border=True):
        st.toggle(t("settings.reply.enabled"), key="settings_reply_enabled")
        st.radio(t("settings.reply.mode"), REPLY_MODES, key="settings_reply_mode",
                 format_func=lambda mode: t(f"settings.reply.mode.{mode}"))
        st.text_area(t("settings.reply.text"), key="settings_reply_text", max_chars=4096, height=120,
                     help=t("settings.reply.text_help"))
        st.form_submit_button(t("settings.reply.save"), key="settings_reply_save", type="primary",
                              on_click=_save_reply)
    show_flash(REPLY_FLASH_KEY)


def _save_bot() -> None:
    """Form callback: store the bot's auto-resume time and read-receipt choice."""
    with attempt(BOT_FLASH_KEY, t("settings.bot.saved")):
        workspace_settings.save_setting(actor, "bot", {
            "auto_resume_minutes": int(st.session_state.get("settings_bot_resume") or 0),
            "read_receipts": bool(st.session_state.get("settings_bot_read"))})


def _bot_section() -> None:
    st.subheader(t("settings.bot.title"))
    if "settings_bot_resume" not in st.session_state:
        bot = workspace_settings.get_setting(actor, "bot")
        st.session_state["settings_bot_resume"] = bot.auto_resume_minutes
        st.session_state["settings_bot_read"] = bot.read_receipts
    with st.form("settings_bot_form", border=True):
        st.number_input(t("settings.bot.resume"), key="settings_bot_resume", min_value=0, max_value=60 * 24 * 30,
                        step=5, help=t("settings.bot.resume_help"))
        st.toggle(t("settings.bot.read"), key="settings_bot_read", help=t("settings.bot.read_help"))
        st.form_submit_button(t("settings.bot.save"), key="settings_bot_save", type="primary", on_click=_save_bot)
    show_flash(BOT_FLASH_KEY)


# -- Fuso horário ---------------------------------------------------------------------------------------------


def _save_zone() -> None:
    """Form callback: store the workspace's time zone and show this session's times in it at once."""
    with attempt(ZONE_FLASH_KEY, t("settings.zone.saved")):
        st.session_state[DISPLAY_ZONE_KEY] = workspaces.set_timezone(actor, st.session_state.get("settings_zone") or "")


def _zone_section() -> None:
    st.subheader(t("settings.zone.title"))
    choices = workspaces.timezone_choices()
    if "settings_zone" not in st.session_state:
        st.session_state["settings_zone"] = workspaces.get_timezone(actor)
    with st.form("settings_zone_form", border=True):
        st.selectbox(t("settings.zone.label"), choices, key="settings_zone", help=t("settings.zone.help"))
        st.form_submit_button(t("settings.zone.save"), key="settings_zone_save", type="primary", on_click=_save_zone)
    show_flash(ZONE_FLASH_KEY)


# -- Equipe ---------------------------------------------------------------------------------------------------


def _add_member() -> None:
    """Form callback for "Adicionar pessoa": on success, keep the credentials for the next run to show."""
    with attempt(TEAM_FLASH_KEY, t("settings.team.added")):
        credentials = workspaces.add_member(actor, st.session_state.get("settings_new_email") or "",
                                            st.session_state.get("settings_new_name") or "",
                                            st.session_state.get("settings_new_role") or "agent")
        st.session_state["settings_new_name"] = ""
        st.session_state["settings_new_email"] = ""
        st.session_state[CREDENTIALS_KEY] = credentials


def _show_credentials_once() -> None:
    credentials = st.session_state.pop(CREDENTIALS_KEY, None)
    if credentials is None:
        return
    st.warning(t("settings.team.password_once"), icon=":material/key:")
    st.caption(t("settings.team.login_email"))
    st.code(credentials.email, language=None)
    st.caption(t("settings.team.login_password"))
    st.code(credentials.password, language=None)


def _add_member_form() -> None:
    with st.expander(t("settings.team.add"), icon=":material/person_add:"):
        st.caption(t("settings.team.add_help"))
        with st.form("settings_member_form", border=False):
            st.text_input(t("settings.team.new_name"), key="settings_new_name", max_chars=120)
            st.text_input(t("settings.team.new_email"), key="settings_new_email", max_chars=254)
            st.selectbox(t("settings.team.new_role"), ROLES, key="settings_new_role", index=ROLES.index("agent"),
                         format_func=role_label)
            st.form_submit_button(t("settings.team.submit"), key="settings_member_add", type="primary",
                                  on_click=_add_member)


def _team_section() -> None:
    st.subheader(t("settings.team.title"))
    if actor.role == "admin":
        _add_member_form()
    else:
        st.caption(t("settings.team.admin_only"))
    show_flash(TEAM_FLASH_KEY)
    _show_credentials_once()
    # Pessoas and Equipes (issue 10): pages/ui/team_admin.py
    team_admin.people_section(actor)
    team_admin.teams_section(actor)


# -- Campos ---------------------------------------------------------------------------------------------------


def _type_label(field_type: str) -> str:
    return t(f"fields.type.{field_type}")


def _lines(key: str) -> list[str]:
    return (st.session_state.get(key) or "").splitlines()


def _create_field() -> None:
    """Form callback for "Criar campo": on success, clear the form for the next field."""
    state = st.session_state
    with attempt(FIELDS_FLASH_KEY, t("fields.created")):
        created = contact_fields.create_field(actor, state.get("settings_field_new_key") or "",
                                              state.get("settings_field_new_label") or "",
                                              state.get("settings_field_new_type") or "text",
                                              _lines("settings_field_new_options"))
        for key in ("settings_field_new_key", "settings_field_new_label", "settings_field_new_options"):
            state[key] = ""
        state[FIELD_PICK_KEY] = created.id


def _new_field_form() -> None:
    with st.expander(t("fields.add"), icon=":material/add:"), st.form("settings_field_new_form", border=False):
        st.text_input(t("fields.key"), key="settings_field_new_key", max_chars=64, help=t("fields.key_help"))
        st.text_input(t("fields.label"), key="settings_field_new_label", max_chars=contact_fields.MAX_LABEL_CHARS,
                      help=t("fields.label_help"))
        st.selectbox(t("fields.type"), FIELD_TYPES, key="settings_field_new_type", format_func=_type_label)
        st.text_area(t("fields.options"), key="settings_field_new_options", help=t("fields.options_help"))
        st.form_submit_button(t("fields.create"), key="settings_field_create", type="primary", on_click=_create_field)


def _save_field(field_id: int, version: str) -> None:
    state = st.session_state
    with attempt(FIELDS_FLASH_KEY, t("fields.saved")):
        contact_fields.update_field(actor, field_id, label=state.get(f"settings_field_label_{version}") or "",
                                    field_type=state.get(f"settings_field_type_{version}"),
                                    options=_lines(f"settings_field_options_{version}"))


def _move_field(field_id: int, step: int) -> None:
    with attempt(FIELDS_FLASH_KEY, t("fields.moved")):
        contact_fields.move_field(actor, field_id, step)


def _ask_delete(field_id: int) -> None:
    st.session_state[FIELD_DELETE_KEY] = field_id


def _delete_field(field_id: int) -> None:
    st.session_state.pop(FIELD_DELETE_KEY, None)
    with attempt(FIELDS_FLASH_KEY, t("fields.deleted")):
        contact_fields.delete_field(actor, field_id)
        st.session_state.pop(FIELD_PICK_KEY, None)


def _cancel_delete() -> None:
    st.session_state.pop(FIELD_DELETE_KEY, None)


def _confirm_delete(field_id: int) -> None:
    """The deletion's confirmation, saying how many contacts lose their value."""
    count = contact_fields.field_usage(actor, field_id)
    text = "none" if count == 0 else "one" if count == 1 else "many"
    st.warning(t(f"fields.delete_confirm.{text}", count=count), icon=":material/delete:")
    with st.container(horizontal=True):
        st.button(t("fields.delete_yes"), key="settings_field_delete_yes", type="primary", on_click=_delete_field,
                  args=(field_id,))
        st.button(t("fields.delete_no"), key="settings_field_delete_no", on_click=_cancel_delete)


def _edit_field(fields: list[contact_fields.FieldDef]) -> None:
    """Pick a field, then change its label, type or options, move it, or delete it."""
    names = {f.id: f"{f.label} ({f.key})" for f in fields}  # typed by people: plain option text
    if st.session_state.get(FIELD_PICK_KEY) not in names:
        st.session_state[FIELD_PICK_KEY] = fields[0].id
    field_id = st.selectbox(t("fields.edit_pick"), list(names), key=FIELD_PICK_KEY, format_func=names.get)
    field = next(f for f in fields if f.id == field_id)
    # Keyed by the stored definition: a save gives fresh widgets, a refusal keeps what was typed.
    version = f"{field.id}_{abs(hash((field.label, field.type, field.options)))}"
    with st.form(f"settings_field_form_{version}", border=True):
        st.text_input(t("fields.key"), value=field.key, key=f"settings_field_key_{version}", disabled=True)
        st.text_input(t("fields.label"), value=field.label, key=f"settings_field_label_{version}",
                      max_chars=contact_fields.MAX_LABEL_CHARS)
        st.selectbox(t("fields.type"), FIELD_TYPES, index=FIELD_TYPES.index(field.type),
                     key=f"settings_field_type_{version}", format_func=_type_label, help=t("fields.type_help"))
        st.text_area(t("fields.options"), value="\n".join(field.options), key=f"settings_field_options_{version}",
                     help=t("fields.options_help"))
        st.form_submit_button(t("fields.save"), key="settings_field_save", type="primary", on_click=_save_field,
                              args=(field.id, version))
    with st.container(horizontal=True):
        st.button(t("fields.up"), key="settings_field_up", icon=":material/arrow_upward:", on_click=_move_field,
                  args=(field.id, -1), disabled=field.id == fields[0].id)
        st.button(t("fields.down"), key="settings_field_down", icon=":material/arrow_downward:",
                  on_click=_move_field, args=(field.id, 1), disabled=field.id == fields[-1].id)
        st.button(t("fields.delete"), key="settings_field_delete", icon=":material/delete:", on_click=_ask_delete,
                  args=(field.id,))
    if st.session_state.get(FIELD_DELETE_KEY) == field.id:
        _confirm_delete(field.id)


def _fields_section() -> None:
    st.subheader(t("fields.title"))
    st.caption(t("fields.caption"))
    show_flash(FIELDS_FLASH_KEY)
    _new_field_form()
    fields = contact_fields.list_fields(actor)
    if not fields:
        st.caption(t("fields.none"))
        return
    st.dataframe([{t("fields.col.label"): f.label, t("fields.col.key"): f.key,
                   t("fields.col.type"): _type_label(f.type), t("fields.col.options"): ", ".join(f.options)}
                  for f in fields], hide_index=True)
    _edit_field(fields)


st.title(t("settings.title"))
if not actor.is_manager:
    # app.py leaves this page out of an agent's navigation; this guards a direct load all the same.
    st.error(t("settings.manager_only"))
    st.stop()
st.caption(t("settings.intro"))
general_tab, fields_tab, quick_tab = st.tabs([t("settings.tab.general"), t("settings.tab.fields"),
                                             t("settings.tab.quick")])
with general_tab:
    _default_reply_section()
    _bot_section()
    _zone_section()
    st.divider()
    _team_section()
with fields_tab:
    _fields_section()
with quick_tab:
    team_admin.quick_replies_section(actor)
