"""Configurações' team parts: *Pessoas* (role, deactivate/reactivate, new password), *Equipes* (create, rename,
delete, members, *Distribuir automaticamente*) and the *Respostas rápidas* tab.

Layout only: every change goes through ``workbench.services.workspaces`` and ``workbench.services.quick_replies``,
which check roles (admins manage people and teams; admins and supervisors manage quick replies). Names, e-mails,
team names, shortcuts and reply texts were typed by people: they are shown with ``st.dataframe``, ``st.text``,
``st.code`` and option text, never as Markdown.
"""

from __future__ import annotations

import streamlit as st

from pages.ui.feedback import attempt, show_flash
from workbench.base.i18n import role_label, t
from workbench.services import quick_replies, workspaces
from workbench.services.auth import Actor
from workbench.store.models import ROLES

PEOPLE_FLASH_KEY = "team_admin_people_flash"
TEAMS_FLASH_KEY = "team_admin_teams_flash"
REPLIES_FLASH_KEY = "team_admin_replies_flash"
# A reset password, popped by the run that shows it: on screen exactly once.
RESET_KEY = "team_admin_reset_credentials"
PERSON_PICK_KEY = "team_admin_person"
TEAM_PICK_KEY = "team_admin_team"
REPLY_PICK_KEY = "team_admin_reply"
NEW_REPLY = 0  # the picker's "Nova resposta rápida" entry


# -- Pessoas ----------------------------------------------------------------------------------------------------


def _change_role(actor: Actor, user_id: int) -> None:
    with attempt(PEOPLE_FLASH_KEY, t("team_admin.role_saved")):
        workspaces.change_role(actor, user_id, st.session_state.get(f"team_admin_role_{user_id}") or "agent")


def _set_active(actor: Actor, user_id: int, active: bool) -> None:
    with attempt(PEOPLE_FLASH_KEY, t("team_admin.activated" if active else "team_admin.deactivated")):
        workspaces.set_active(actor, user_id, active)


def _reset(actor: Actor, user_id: int) -> None:
    with attempt(PEOPLE_FLASH_KEY):
        st.session_state[RESET_KEY] = workspaces.reset_password(actor, user_id)


def show_credentials_once(state_key: str) -> None:
    """The e-mail and new password kept under ``state_key`` (a person added, a password reset), drawn once and
    forgotten."""
    credentials = st.session_state.pop(state_key, None)
    if credentials is None:
        return
    st.warning(t("settings.team.password_once"), icon=":material/key:")
    st.caption(t("settings.team.login_email"))
    st.code(credentials.email, language=None)
    st.caption(t("settings.team.login_password"))
    st.code(credentials.password, language=None)


def people_section(actor: Actor) -> None:
    """The people of the workspace with role, status, availability and teams; admins change them."""
    st.markdown(f"**{t('settings.team.members')}**")
    show_flash(PEOPLE_FLASH_KEY)
    show_credentials_once(RESET_KEY)
    people = workspaces.people(actor)
    st.dataframe([{t("settings.team.name"): p["name"], t("settings.team.email"): p["email"],
                   t("settings.team.role"): role_label(p["role"]),
                   t("team_admin.status"): t("team_admin.active" if p["active"] else "team_admin.inactive"),
                   t("team_admin.availability"): t(f"availability.{p['availability']}"),
                   t("settings.team.teams"): ", ".join(p["teams"])} for p in people], hide_index=True)
    if actor.role != "admin":
        return
    names = {p["id"]: f"{p['name']} ({p['email']})" for p in people}
    with st.expander(t("team_admin.manage_person"), icon=":material/manage_accounts:"):
        user_id = st.selectbox(t("team_admin.person"), list(names), key=PERSON_PICK_KEY, format_func=names.get)
        person = next((p for p in people if p["id"] == user_id), None)
        if person is None:
            return
        with st.container(horizontal=True, vertical_alignment="bottom"):
            st.selectbox(t("settings.team.role"), ROLES, index=ROLES.index(person["role"]),
                         key=f"team_admin_role_{user_id}", format_func=role_label)
            st.button(t("team_admin.save_role"), key="team_admin_save_role", on_click=_change_role,
                      args=(actor, user_id))
        with st.container(horizontal=True):
            if person["active"]:
                st.button(t("team_admin.deactivate"), key="team_admin_deactivate", icon=":material/person_off:",
                          on_click=_set_active, args=(actor, user_id, False), help=t("team_admin.deactivate_help"))
            else:
                st.button(t("team_admin.activate"), key="team_admin_activate", icon=":material/person_check:",
                          on_click=_set_active, args=(actor, user_id, True))
            st.button(t("team_admin.reset_password"), key="team_admin_reset", icon=":material/key:",
                      on_click=_reset, args=(actor, user_id), help=t("team_admin.reset_help"))


# -- Equipes ----------------------------------------------------------------------------------------------------


def _create_team(actor: Actor) -> None:
    with attempt(TEAMS_FLASH_KEY, t("team_admin.team_created")):
        st.session_state[TEAM_PICK_KEY] = workspaces.create_team(actor, st.session_state.get("team_admin_new_team")
                                                                  or "")
        st.session_state["team_admin_new_team"] = ""


def _save_team(actor: Actor, team_id: int, member_ids: list[int], auto_assign: bool) -> None:
    """Rename, switch distribution and set the members, each through the service. ``member_ids`` are the members
    the form offered (active people): deactivated members, not offered, stay in the team."""
    state = st.session_state
    with attempt(TEAMS_FLASH_KEY, t("team_admin.team_saved")):
        workspaces.rename_team(actor, team_id, state.get(f"team_admin_team_name_{team_id}") or "")
        wanted = set(state.get(f"team_admin_team_members_{team_id}") or [])
        for user_id in sorted(wanted - set(member_ids)):
            workspaces.add_team_member(actor, team_id, user_id)
        for user_id in sorted(set(member_ids) - wanted):
            workspaces.remove_team_member(actor, team_id, user_id)
        on = bool(state.get(f"team_admin_team_auto_{team_id}"))
        if on != auto_assign:
            workspaces.set_team_auto_assign(actor, team_id, on)


def _delete_team(actor: Actor, team_id: int) -> None:
    with attempt(TEAMS_FLASH_KEY, t("team_admin.team_deleted")):
        workspaces.delete_team(actor, team_id)
        st.session_state.pop(TEAM_PICK_KEY, None)


def teams_section(actor: Actor) -> None:
    """The teams with their members and switch; admins create, change and delete them."""
    st.markdown(f"**{t('settings.team.teams')}**")
    show_flash(TEAMS_FLASH_KEY)
    teams = workspaces.team_details(actor)
    if teams:
        st.dataframe([{t("settings.team.team_name"): team["name"],
                       t("team_admin.auto"): t("team_admin.yes" if team["auto_assign"] else "team_admin.no"),
                       t("settings.team.team_members"): ", ".join(m["name"] for m in team["members"])}
                      for team in teams], hide_index=True)
    else:
        st.caption(t("settings.team.no_teams"))
    if actor.role != "admin":
        return
    with st.expander(t("team_admin.new_team"), icon=":material/group_add:"), \
            st.form("team_admin_new_team_form", border=False):
        st.text_input(t("settings.team.team_name"), key="team_admin_new_team", max_chars=workspaces.MAX_TEAM_NAME)
        st.form_submit_button(t("team_admin.create_team"), key="team_admin_create_team", type="primary",
                              on_click=_create_team, args=(actor,))
    if not teams:
        return
    names = {team["id"]: team["name"] for team in teams}
    with st.expander(t("team_admin.edit_team"), icon=":material/groups:"):
        if st.session_state.get(TEAM_PICK_KEY) not in names:
            st.session_state[TEAM_PICK_KEY] = teams[0]["id"]
        team_id = st.selectbox(t("team_admin.team"), list(names), key=TEAM_PICK_KEY, format_func=names.get)
        team = next(team for team in teams if team["id"] == team_id)
        people = {p["id"]: p["name"] for p in workspaces.people(actor) if p["active"]}
        member_ids = [m["id"] for m in team["members"]]
        with st.form(f"team_admin_team_form_{team_id}", border=False):
            st.text_input(t("settings.team.team_name"), value=team["name"], key=f"team_admin_team_name_{team_id}",
                          max_chars=workspaces.MAX_TEAM_NAME)
            st.multiselect(t("settings.team.team_members"), list(people),
                           default=[m for m in member_ids if m in people], key=f"team_admin_team_members_{team_id}",
                           format_func=lambda user_id: people.get(user_id, "—"))
            st.toggle(t("team_admin.auto"), value=team["auto_assign"], key=f"team_admin_team_auto_{team_id}",
                      help=t("team_admin.auto_help"))
            st.form_submit_button(t("team_admin.save_team"), key="team_admin_save_team", type="primary",
                                  on_click=_save_team, args=(actor, team_id, [m for m in member_ids if m in people],
                                                             team["auto_assign"]))
        st.button(t("team_admin.delete_team"), key="team_admin_delete_team", icon=":material/delete:",
                  on_click=_delete_team, args=(actor, team_id), help=t("team_admin.delete_team_help"))


# -- Respostas rápidas ------------------------------------------------------------------------------------------


def _save_reply(actor: Actor, reply_id: int | None, version: str) -> None:
    state = st.session_state
    with attempt(REPLIES_FLASH_KEY, t("quick.saved")):
        state[REPLY_PICK_KEY] = quick_replies.save_reply(actor, state.get(f"quick_shortcut_{version}") or "",
                                                         state.get(f"quick_body_{version}") or "", reply_id)


def _delete_reply(actor: Actor, reply_id: int) -> None:
    with attempt(REPLIES_FLASH_KEY, t("quick.deleted")):
        quick_replies.delete_reply(actor, reply_id)
        st.session_state[REPLY_PICK_KEY] = NEW_REPLY


def quick_replies_section(actor: Actor) -> None:
    """List, create, change and delete the workspace's quick replies (admins and supervisors)."""
    st.subheader(t("quick.title"))
    st.caption(t("quick.caption"))
    show_flash(REPLIES_FLASH_KEY)
    replies = quick_replies.list_replies(actor)
    if replies:
        st.dataframe([{t("quick.shortcut"): f"/{q['shortcut']}", t("quick.body"): q["body"]} for q in replies],
                     hide_index=True)
    else:
        st.caption(t("quick.none"))
    names = {NEW_REPLY: t("quick.new"), **{q["id"]: f"/{q['shortcut']}" for q in replies}}
    if st.session_state.get(REPLY_PICK_KEY) not in names:
        st.session_state[REPLY_PICK_KEY] = NEW_REPLY
    reply_id = st.selectbox(t("quick.pick"), list(names), key=REPLY_PICK_KEY, format_func=names.get)
    reply = next((q for q in replies if q["id"] == reply_id), None)
    # keyed by the stored reply: a save gives fresh widgets, a refusal keeps what was typed
    version = f"{reply_id}_{abs(hash((reply or {}).get('body', '')))}"
    with st.form(f"quick_form_{version}", border=True):
        st.text_input(t("quick.shortcut"), value=reply["shortcut"] if reply else "", key=f"quick_shortcut_{version}",
                      max_chars=quick_replies.MAX_SHORTCUT, help=t("quick.shortcut_help"))
        st.text_area(t("quick.body"), value=reply["body"] if reply else "", key=f"quick_body_{version}",
                     max_chars=quick_replies.MAX_BODY, help=t("quick.body_help"))
        st.form_submit_button(t("quick.save"), key="quick_save", type="primary", on_click=_save_reply,
                              args=(actor, reply["id"] if reply else None, version))
    if reply:
        st.button(t("quick.delete"), key="quick_delete", icon=":material/delete:", on_click=_delete_reply,
                  args=(actor, reply["id"]))
