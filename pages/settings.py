"""Configurações: the bot's default reply, the workspace's time zone and team (tab Geral), the contacts'
typed fields (tab Campos), what the reports count (tab Relatórios), integrations and e-mail; admins and
supervisors. Admins also get the AI providers and rules (tab IA, ``pages/ui/ai_settings.py``).

Layout only: settings go through ``workbench.services.workspace_settings``, people through
``workbench.services.workspaces`` and field definitions through ``workbench.services.contact_fields``, which also
enforce who may change what. Names, e-mails, field labels and options were typed by people, so they are shown
with literal elements (``st.dataframe``, ``st.code``, ``st.text``, option text), never as Markdown.
"""

from __future__ import annotations

import streamlit as st

from pages.ui import ai_settings, retention, system_health, team_admin
from pages.ui.feedback import attempt, flash, show_flash
from workbench.base.i18n import format_moment, role_label, t
from workbench.services import contact_fields, mail, odoo, secrets, workspace_settings, workspaces
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


# -- Relatórios ---------------------------------------------------------------------------------------------------

REPORTS_FLASH_KEY = "settings_reports_flash"
WEEKDAYS = tuple(range(7))


def _save_reports() -> None:
    """Form callback: the qualified-lead tag, the first-response target and the business hours."""
    state = st.session_state
    with attempt(REPORTS_FLASH_KEY, t("settings.reports.saved")):
        workspace_settings.save_setting(actor, "analytics", {
            "qualified_tag": (state.get("settings_reports_tag") or "").strip(),
            "sla_minutes": int(state.get("settings_reports_sla") or 0),
            "hours": {"days": list(state.get("settings_reports_days") or []),
                      "start": state["settings_reports_start"].strftime("%H:%M"),
                      "end": state["settings_reports_end"].strftime("%H:%M")}})


def _reports_section() -> None:
    st.subheader(t("settings.reports.title"))
    if "settings_reports_tag" not in st.session_state:
        value = workspace_settings.get_setting(actor, "analytics")
        st.session_state["settings_reports_tag"] = value.qualified_tag
        st.session_state["settings_reports_sla"] = value.sla_minutes
        st.session_state["settings_reports_days"] = list(value.hours.days)
        st.session_state["settings_reports_start"] = _clock(value.hours.start)
        st.session_state["settings_reports_end"] = _clock(value.hours.end)
    with st.form("settings_reports_form", border=True):
        st.text_input(t("settings.reports.qualified"), key="settings_reports_tag", max_chars=80)
        st.number_input(t("settings.reports.sla"), key="settings_reports_sla", min_value=1, max_value=60 * 24 * 7)
        st.multiselect(t("settings.reports.days"), WEEKDAYS, key="settings_reports_days",
                       format_func=lambda d: t(f"analytics.weekday.{d}"))
        st.time_input(t("settings.reports.start"), key="settings_reports_start", step=900)
        st.time_input(t("settings.reports.end"), key="settings_reports_end", step=900)
        st.form_submit_button(t("settings.reports.save"), key="settings_reports_save", type="primary",
                              on_click=_save_reports)
    show_flash(REPORTS_FLASH_KEY)


def _clock(hhmm: str):
    from datetime import time

    hours, minutes = hhmm.split(":")
    return time(int(hours), int(minutes))


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
    team_admin.show_credentials_once(CREDENTIALS_KEY)
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


# -- Integrações › Segredos -----------------------------------------------------------------------------------

SECRETS_FLASH_KEY = "settings_secrets_flash"
# A generated signing key, popped by the run that shows it: on screen exactly once.
SIGNING_KEY = "settings_secret_generated"


def _save_secret() -> None:
    state = st.session_state
    with attempt(SECRETS_FLASH_KEY, t("secrets.saved")):
        secrets.set_secret(actor, state.get("settings_secret_name") or "", state.get("settings_secret_value") or "")
        state["settings_secret_name"] = ""
        state["settings_secret_value"] = ""


def _generate_secret() -> None:
    state = st.session_state
    with attempt(SECRETS_FLASH_KEY, t("secrets.generated")):
        state[SIGNING_KEY] = secrets.generate_signing_secret(actor, state.get("settings_secret_name") or "")
        state["settings_secret_name"] = ""


def _delete_secret() -> None:
    with attempt(SECRETS_FLASH_KEY, t("secrets.deleted")):
        secrets.delete_secret(actor, st.session_state.get("settings_secret_delete_pick"))


def _secrets_section() -> None:
    st.subheader(t("secrets.title"))
    st.caption(t("secrets.caption"))
    show_flash(SECRETS_FLASH_KEY)
    generated = st.session_state.pop(SIGNING_KEY, None)
    if generated:
        st.code(generated, language=None)
    with st.form("settings_secret_form", border=True):
        st.text_input(t("secrets.name"), key="settings_secret_name", max_chars=64, help=t("secrets.name_help"))
        st.text_input(t("secrets.value"), key="settings_secret_value", type="password",
                      max_chars=secrets.MAX_SECRET_CHARS)
        with st.container(horizontal=True):
            st.form_submit_button(t("secrets.save"), key="settings_secret_save", type="primary",
                                  on_click=_save_secret)
            st.form_submit_button(t("secrets.generate"), key="settings_secret_generate", on_click=_generate_secret,
                                  help=t("secrets.generate_help"))
    stored = secrets.list_secrets(actor)
    if not stored:
        st.caption(t("secrets.none"))
        return
    st.dataframe([{t("secrets.col.name"): s.name, t("secrets.col.hint"): f"••••{s.hint}",
                   t("secrets.col.updated"): format_moment(s.updated_at)} for s in stored], hide_index=True)
    names = {s.id: s.name for s in stored}
    with st.container(horizontal=True, vertical_alignment="bottom"):
        st.selectbox(t("secrets.delete_pick"), list(names), format_func=names.get, key="settings_secret_delete_pick")
        st.button(t("secrets.delete"), key="settings_secret_delete", icon=":material/delete:",
                  on_click=_delete_secret)


# -- Integrações › Odoo ---------------------------------------------------------------------------------------

ODOO_FLASH_KEY = "settings_odoo_flash"
ODOO_REPORT_KEY = "settings_odoo_report"
# Widget key -> field of workbench.services.odoo.OdooSettings (the key is separate: never drawn back).
ODOO_FIELDS = {"settings_odoo_url": "url", "settings_odoo_database": "database", "settings_odoo_login": "login",
               "settings_odoo_team": "team_id", "settings_odoo_user": "user_id", "settings_odoo_stage": "stage_id",
               "settings_odoo_tags": "tags", "settings_odoo_source": "source"}


def _seed_odoo(config: odoo.OdooConfig | None) -> None:
    if all(key in st.session_state for key in ODOO_FIELDS):
        return
    values = config.settings.model_dump() if config else {"url": "", "database": "", "login": "", "tags": [],
                                                          "source": "WhatsApp"}
    for key, field in ODOO_FIELDS.items():
        value = values.get(field)
        st.session_state[key] = "\n".join(value) if field == "tags" else value


def _odoo_values() -> dict:
    state = st.session_state
    values = {field: state.get(key) for key, field in ODOO_FIELDS.items()}
    values["tags"] = [line for line in (state.get("settings_odoo_tags") or "").splitlines() if line.strip()]
    for field in ("url", "database", "login", "source"):
        values[field] = values[field] or ""
    return values


def _save_odoo() -> None:
    with attempt(ODOO_FLASH_KEY, t("odoo.saved")):
        odoo.save_config(actor, _odoo_values(), st.session_state.get("settings_odoo_key") or "")
        st.session_state["settings_odoo_key"] = ""


def _test_odoo() -> None:
    with attempt(ODOO_FLASH_KEY):
        st.session_state[ODOO_REPORT_KEY] = odoo.test_connection(actor)


def _show_odoo_report() -> None:
    report = st.session_state.pop(ODOO_REPORT_KEY, None)
    if report is None:
        return
    if report.ok:
        st.success(t("odoo.test_ok", version=report.version or "?"))
        return
    st.error(t("odoo.test_failed", problem=t(f"odoo.problem.{report.problem}")))
    if report.detail:
        st.caption(t("odoo.problem.detail", detail=""))
        st.text(report.detail)  # the server's words: shown literally


def _odoo_pick(field: str, key: str, choices: list[tuple[int, str]]) -> None:
    """A default (team, salesperson, stage): picked by name once *Testar conexão* found them, else typed as an id."""
    if not choices:
        st.number_input(t(f"odoo.{field}"), key=key, min_value=1, value=None, step=1)
        return
    names = dict(choices)  # Odoo's names, typed by people: plain option text
    current = st.session_state.get(key)
    options = [None, *names, *([current] if current is not None and current not in names else [])]
    st.selectbox(t(f"odoo.{field}"), options, key=key,
                 format_func=lambda value: "—" if value is None else f"{names.get(value, '?')} ({value})")


def _odoo_section() -> None:
    st.subheader(t("odoo.title"))
    st.caption(t("odoo.caption"))
    show_flash(ODOO_FLASH_KEY)
    _show_odoo_report()
    config = odoo.get_config(actor)
    _seed_odoo(config)
    with st.form("settings_odoo_form", border=True):
        st.text_input(t("odoo.url"), key="settings_odoo_url", max_chars=500, help=t("odoo.url_help"))
        st.text_input(t("odoo.database"), key="settings_odoo_database", max_chars=128)
        st.text_input(t("odoo.login"), key="settings_odoo_login", max_chars=254)
        st.text_input(t("odoo.api_key"), key="settings_odoo_key", type="password", max_chars=4096,
                      help=t("odoo.api_key_help"))
        if config and config.key_hint:
            st.caption(t("odoo.api_key_saved", hint=config.key_hint))
        choices = odoo.stored_choices(actor)
        with st.container(horizontal=True):
            for field, key in (("team_id", "settings_odoo_team"), ("user_id", "settings_odoo_user"),
                               ("stage_id", "settings_odoo_stage")):
                _odoo_pick(field, key, choices[field])
        if not any(choices.values()):
            st.caption(t("odoo.choices_help"))
        st.text_area(t("odoo.tags"), key="settings_odoo_tags", height=80)
        st.text_input(t("odoo.source"), key="settings_odoo_source", max_chars=64)
        with st.container(horizontal=True):
            st.form_submit_button(t("odoo.save"), key="settings_odoo_save", type="primary", on_click=_save_odoo)
            st.form_submit_button(t("odoo.test"), key="settings_odoo_test", on_click=_test_odoo,
                                  disabled=config is None)


def _integrations_tab() -> None:
    if actor.role != "admin":
        st.caption(t("settings.admin_only"))
        return
    _secrets_section()
    st.divider()
    _odoo_section()


# -- E-mail ---------------------------------------------------------------------------------------------------

MAIL_FLASH_KEY = "settings_mail_flash"
MAIL_SECURITY = ("starttls", "tls", "none")
# Widget key -> field of workbench.services.mail.SmtpSettings (the password is separate: never drawn back).
MAIL_FIELDS = {"settings_mail_host": "host", "settings_mail_port": "port", "settings_mail_security": "security",
               "settings_mail_username": "username", "settings_mail_sender": "sender",
               "settings_mail_sender_name": "sender_name"}


def _save_mail() -> None:
    state = st.session_state
    values = {field: state.get(key) for key, field in MAIL_FIELDS.items()}
    with attempt(MAIL_FLASH_KEY, t("mail.saved")):
        mail.save_config(actor, values, state.get("settings_mail_password") or "")
        state["settings_mail_password"] = ""


def _test_mail() -> None:
    with attempt(MAIL_FLASH_KEY) as outcome:
        try:
            mail.send_test(actor, st.session_state.get("settings_mail_test_to") or "")
        except mail.MailError as exc:
            flash(MAIL_FLASH_KEY, "error", t("mail.test_failed", problem=t(f"mail.problem.{exc.kind}")))
            return
    if outcome.ok:
        flash(MAIL_FLASH_KEY, "success", t("mail.test_sent"))


def _mail_tab() -> None:
    if actor.role != "admin":
        st.caption(t("settings.admin_only"))
        return
    st.subheader(t("mail.title"))
    st.caption(t("mail.caption"))
    show_flash(MAIL_FLASH_KEY)
    config = mail.get_config(actor)
    if not all(key in st.session_state for key in MAIL_FIELDS):
        values = config.settings.model_dump() if config else {"host": "", "port": 587, "security": "starttls",
                                                              "username": "", "sender": "", "sender_name": ""}
        for key, field in MAIL_FIELDS.items():
            st.session_state[key] = values[field]
        st.session_state.setdefault("settings_mail_test_to", actor.email)
    with st.form("settings_mail_form", border=True):
        with st.container(horizontal=True):
            st.text_input(t("mail.host"), key="settings_mail_host", max_chars=255)
            st.number_input(t("mail.port"), key="settings_mail_port", min_value=1, max_value=65535, step=1)
        st.radio(t("mail.security"), MAIL_SECURITY, key="settings_mail_security", horizontal=True,
                 format_func=lambda value: t(f"mail.security.{value}"))
        st.text_input(t("mail.username"), key="settings_mail_username", max_chars=254)
        st.text_input(t("mail.password"), key="settings_mail_password", type="password", max_chars=1024,
                      help=t("mail.password_help"))
        if config and config.has_password:
            st.caption(t("mail.password_saved"))
        st.text_input(t("mail.sender"), key="settings_mail_sender", max_chars=254)
        st.text_input(t("mail.sender_name"), key="settings_mail_sender_name", max_chars=120)
        st.form_submit_button(t("mail.save"), key="settings_mail_save", type="primary", on_click=_save_mail)
    with st.container(horizontal=True, vertical_alignment="bottom"):
        st.text_input(t("mail.test_to"), key="settings_mail_test_to", max_chars=254)
        st.button(t("mail.test"), key="settings_mail_test", on_click=_test_mail, disabled=config is None)


st.title(t("settings.title"))
if not actor.is_manager:
    # app.py leaves this page out of an agent's navigation; this guards a direct load all the same.
    st.error(t("settings.manager_only"))
    st.stop()
st.caption(t("settings.intro"))
tab_names = [t("settings.tab.general"), t("settings.tab.fields"), t("settings.tab.quick"), t("settings.tab.reports"),
             t("settings.tab.integrations"), t("settings.tab.email")]
if actor.role == "admin":
    tab_names.append(t("settings.tab.ai"))
general_tab, fields_tab, quick_tab, reports_tab, integrations_tab, mail_tab, *ai_tab = st.tabs(tab_names)
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
with reports_tab:
    _reports_section()
with integrations_tab:
    _integrations_tab()
with mail_tab:
    _mail_tab()
if ai_tab:
    with ai_tab[0]:
        ai_settings.render()
if actor.role == "admin":
    with general_tab:  # Retenção de mensagens and Saúde do sistema: admins only, at the end of Geral
        st.divider()
        retention.render(actor)
        st.divider()
        system_health.render(actor)
