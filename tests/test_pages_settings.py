"""Configurações page: the default reply (saved, validated, then answering contacts) and the team."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from connector.contracts import OUT_STREAM, decode_outbound
from tests.factories import PASSWORD, inbound, make_actor, make_instance, make_workspace, publish, run_jobs
from tests.test_pages_app import login, new_app, signed_in_app
from workbench.base.errors import Conflict, InvalidInput, PermissionDenied
from workbench.base.i18n import error_text
from workbench.services import auth, conversations, workspaces
from workbench.services.workspace_settings import get_setting, save_setting


def open_page(actor) -> AppTest:
    at = signed_in_app(actor)  # logged in (the login itself is tested in test_pages_app)
    at.run()
    return at.switch_page("pages/settings.py").run()


def save_reply(at: AppTest, *, enabled: bool, mode: str, text: str) -> AppTest:
    at.toggle(key="settings_reply_enabled").set_value(enabled)
    at.radio(key="settings_reply_mode").set_value(mode)
    at.text_area(key="settings_reply_text").input(text)
    return at.button(key="settings_reply_save").click().run()


def test_admin_saves_default_reply_and_the_bot_answers_with_it(engine, r):
    ws = make_workspace()
    inst = make_instance(ws)
    admin = make_actor(ws)
    at = open_page(admin)
    assert not at.exception
    assert [t.value for t in at.title] == ["Configurações"]
    assert at.toggle(key="settings_reply_enabled").value is False  # the stored default, off
    assert at.radio(key="settings_reply_mode").options == [
        "Em toda mensagem", "No máximo uma vez a cada 24 h por conversa"]

    at = save_reply(at, enabled=True, mode="every", text="Oi! Já vamos te atender. <b>*negrito*</b>")
    assert not at.exception
    assert [s.value for s in at.success] == ["Resposta padrão salva. Ela vale para as próximas mensagens."]
    saved = get_setting(admin, "default_reply")
    assert (saved.enabled, saved.mode, saved.text) == (True, "every", "Oi! Já vamos te atender. <b>*negrito*</b>")

    publish(inbound(inst, text="primeira"), inbound(inst, text="segunda"))
    run_jobs()
    commands = [decode_outbound(fields) for _, fields in r.xrange(OUT_STREAM.format(inst))]
    # "every": both messages are answered, with the text exactly as typed
    assert [c.text for c in commands] == ["Oi! Já vamos te atender. <b>*negrito*</b>"] * 2
    assert commands[0].to_phone == "5511999990001"

    # A fresh visit shows what is stored.
    again = open_page(admin)
    assert again.toggle(key="settings_reply_enabled").value is True
    assert again.text_area(key="settings_reply_text").value == "Oi! Já vamos te atender. <b>*negrito*</b>"


def test_enabled_reply_without_text_is_refused_with_a_clear_message(engine, r):
    ws = make_workspace()
    supervisor = make_actor(ws, role="supervisor")  # supervisors may change settings too
    at = open_page(supervisor)
    at = save_reply(at, enabled=True, mode="once_24h", text="   ")
    assert not at.exception
    assert [e.value for e in at.error] == ["Escreva o texto da resposta padrão antes de ativá-la."]
    assert not at.success
    assert get_setting(supervisor, "default_reply").enabled is False  # nothing stored
    assert at.toggle(key="settings_reply_enabled").value is True  # what was typed stays on screen

    # Turned off, an empty text is fine (nothing would be sent).
    at = save_reply(at, enabled=False, mode="once_24h", text="")
    assert [s.value for s in at.success] == ["Resposta padrão salva. Ela vale para as próximas mensagens."]


def test_service_turns_validation_errors_into_catalog_messages(engine, r):
    admin = make_actor(make_workspace())
    with pytest.raises(InvalidInput) as too_long:
        save_setting(admin, "default_reply", {"enabled": True, "mode": "every", "text": "x" * 4097})
    assert error_text(too_long.value) == "Texto longo demais: use no máximo 4096 caracteres."
    with pytest.raises(InvalidInput) as bad_mode:
        save_setting(admin, "default_reply", {"enabled": True, "mode": "sometimes", "text": "Oi"})
    assert error_text(bad_mode.value).startswith("Essa configuração tem um valor inválido.")


def test_agents_do_not_get_the_page_and_cannot_change_settings(engine, r):
    ws = make_workspace()
    agent = make_actor(ws, role="agent")
    at = login(new_app().run(), agent.email, PASSWORD)
    assert not at.exception
    with pytest.raises(ValueError):  # not in the agent's navigation
        at.switch_page("pages/settings.py")
    with pytest.raises(PermissionDenied):
        save_setting(agent, "default_reply", {"enabled": True, "mode": "every", "text": "Oi"})
    with pytest.raises(PermissionDenied):
        workspaces.add_member(agent, "novo@example.com", "Novo", "agent")


def test_admin_adds_a_member_and_sees_the_password_once(engine, r):
    ws = make_workspace()
    admin = make_actor(ws)
    at = open_page(admin)
    assert at.expander  # "Adicionar pessoa"
    at.text_input(key="settings_new_name").input("Ana <i>Souza</i>")
    at.text_input(key="settings_new_email").input("  Ana@Example.com ")
    at.selectbox(key="settings_new_role").set_value("supervisor")
    at = at.button(key="settings_member_add").click().run()
    assert not at.exception
    assert [s.value for s in at.success] == ["Pessoa adicionada à equipe."]
    assert [w.value for w in at.warning] == ["Anote esta senha agora: ela não será mostrada de novo."]
    email, password = (c.value for c in at.code)
    assert email == "ana@example.com"
    new_actor, _ = auth.login("ana@example.com", password)  # the shown password works
    assert new_actor.role == "supervisor" and new_actor.workspace_id == ws
    assert at.text_input(key="settings_new_name").value == ""  # the form is cleared for the next person

    members = at.dataframe[0].value
    assert list(members.columns) == ["Nome", "E-mail", "Perfil", "Situação", "Disponibilidade", "Times"]
    row = members[members["E-mail"] == "ana@example.com"].iloc[0]
    assert (row["Nome"], row["Perfil"]) == ("Ana <i>Souza</i>", "Supervisor")  # literal, never Markdown

    at.run()  # any later run: the password is gone for good
    assert not at.code and not at.warning
    assert "settings_new_credentials" not in at.session_state  # not kept around either


def test_duplicate_e_mail_is_refused_with_a_message(engine, r):
    ws = make_workspace()
    admin = make_actor(ws)
    at = open_page(admin)
    at.text_input(key="settings_new_name").input("Outra")
    at.text_input(key="settings_new_email").input(admin.email.upper())
    at = at.button(key="settings_member_add").click().run()
    assert not at.exception
    assert [e.value for e in at.error] == ["Já existe uma conta com esse e-mail."]
    assert not at.code
    assert at.text_input(key="settings_new_email").value == admin.email.upper()  # kept to fix it
    with pytest.raises(Conflict):
        workspaces.add_member(admin, admin.email, "Outra", "agent")


def test_supervisor_sees_the_team_but_cannot_add_members(engine, r):
    ws = make_workspace()
    supervisor = make_actor(ws, role="supervisor")
    make_actor(ws, role="agent", email="bia@example.com")
    at = open_page(supervisor)
    assert not at.exception
    assert not at.tabs[0].expander and not [b for b in at.button if b.key == "settings_member_add"]
    assert "Só administradores podem adicionar pessoas à equipe." in [c.value for c in at.caption]
    members = at.dataframe[0].value
    assert sorted(members["Perfil"]) == ["Atendente", "Supervisor"]
    with pytest.raises(PermissionDenied):
        workspaces.add_member(supervisor, "novo@example.com", "Novo", "agent")
    assert len(workspaces.list_members(supervisor)) == 2


def test_bot_auto_resume_after_an_agent_reply(engine, r):
    from datetime import timedelta

    from engine.worker import jobs
    from tests.factories import inbound, make_instance, publish, run_jobs
    from workbench.base.clock import now
    from workbench.services import conversations
    from workbench.store.db import session_scope
    from workbench.store.models import Conversation

    ws = make_workspace()
    admin = make_actor(ws, "admin")
    at = open_page(admin)
    assert at.toggle(key="settings_bot_read").value is True, "read receipts are on by default"
    at.number_input(key="settings_bot_resume").set_value(30)
    at.toggle(key="settings_bot_read").set_value(False)
    at = at.button(key="settings_bot_save").click().run()
    assert not at.exception and [s.value for s in at.success] == ["Configuração do bot salva."]
    assert get_setting(admin, "bot").read_receipts is False
    inst = make_instance(ws)
    publish(inbound(inst))
    run_jobs()
    conv_id = conversations.list_conversations(admin)[0]["id"]
    conversations.send_text(admin, conv_id, "oi")
    with session_scope() as s:
        conv = s.get(Conversation, conv_id)
        assert conv.bot_paused and now() + timedelta(minutes=29) < conv.bot_paused_until
        conv.bot_paused_until = now() - timedelta(seconds=1)  # the 30 minutes have passed
    assert jobs.sweep()["pauses_ended"] == 1
    assert conversations.get_conversation(admin, conv_id)["bot_paused"] is False


def test_time_zone_moves_the_panel_times_and_is_checked(engine, r):
    from datetime import UTC, datetime

    ws = make_workspace()
    admin = make_actor(ws, "admin")
    inst = make_instance(ws)
    at_15_utc = int(datetime(2026, 11, 20, 15, 0, tzinfo=UTC).timestamp() * 1000)
    publish(inbound(inst, text="bom dia", timestamp_ms=at_15_utc))
    run_jobs()

    def chat_clock(at) -> str:
        at.session_state["inbox_selected"] = conversations.list_conversations(admin)[0]["id"]
        at = at.switch_page("pages/inbox.py").run()
        return at.chat_message[0].get("caption")[-1].value

    at = open_page(admin)
    assert at.selectbox(key="settings_zone").value == "America/Sao_Paulo"
    assert chat_clock(at) == "12:00", "São Paulo by default"
    at = at.switch_page("pages/settings.py").run()
    at.selectbox(key="settings_zone").set_value("America/Manaus")
    at = at.button(key="settings_zone_save").click().run()
    assert not at.exception and "Fuso horário salvo." in [s.value for s in at.success]
    assert workspaces.get_timezone(admin) == "America/Manaus"
    assert chat_clock(at) == "11:00", "the same message, now in Manaus time"
    assert chat_clock(open_page(admin)) == "11:00", "a new session reads the workspace's zone"

    with pytest.raises(InvalidInput) as bad:
        workspaces.set_timezone(admin, "Marte/Olympus")
    assert error_text(bad.value) == "Escolha um fuso horário da lista."
    with pytest.raises(PermissionDenied):
        workspaces.set_timezone(make_actor(ws, "agent", "agente@example.com"), "America/Manaus")
    assert workspaces.timezone_choices()[:2] == ["America/Sao_Paulo", "America/Bahia"]
