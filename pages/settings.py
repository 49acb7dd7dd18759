"""Configurações: the bot's default reply, the workspace's time zone and team (admins and supervisors).

Layout only: settings go through ``workbench.services.workspace_settings`` and people through
``workbench.services.workspaces``, which also enforce who may change what. Names and e-mails were typed by
people, so they are shown with literal elements (``st.dataframe``, ``st.code``), never as Markdown.
"""

from __future__ import annotations

import streamlit as st

from pages.ui.feedback import attempt, show_flash
from workbench.base.i18n import role_label, t
from workbench.services import workspace_settings, workspaces
from workbench.store.models import ROLES

actor = st.session_state["auth_actor"]

BOT_FLASH_KEY = "settings_bot_flash"
REPLY_FLASH_KEY = "settings_reply_flash"
TEAM_FLASH_KEY = "settings_team_flash"
ZONE_FLASH_KEY = "settings_zone_flash"
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
    st.markdown(f"**{t('settings.team.members')}**")
    members = workspaces.list_members(actor)
    st.dataframe([{t("settings.team.name"): m["name"], t("settings.team.email"): m["email"],
                   t("settings.team.role"): role_label(m["role"])} for m in members], hide_index=True)
    st.markdown(f"**{t('settings.team.teams')}**")
    teams = workspaces.list_teams(actor)
    if teams:
        st.dataframe([{t("settings.team.team_name"): team["name"], t("settings.team.team_members"): team["members"]}
                      for team in teams], hide_index=True)
    else:
        st.caption(t("settings.team.no_teams"))


st.title(t("settings.title"))
if not actor.is_manager:
    # app.py leaves this page out of an agent's navigation; this guards a direct load all the same.
    st.error(t("settings.manager_only"))
    st.stop()
st.caption(t("settings.intro"))
_default_reply_section()
_bot_section()
_zone_section()
st.divider()
_team_section()
