"""Pages of the team at work: Configurações' Pessoas, Equipes and Respostas rápidas; the sidebar's availability and
Minha conta; the inbox's private notes, transfer and quick replies. Typed text stays literal."""

from __future__ import annotations

from sqlalchemy import func, select

from connector.contracts import OUT_STREAM, decode_outbound
from tests.factories import PASSWORD, inbound, make_actor, make_instance, make_team, make_workspace, publish, run_jobs
from tests.test_pages_inbox import open_conversation, open_inbox, the_conversation
from tests.test_pages_settings import open_page
from workbench.services import auth, notifications, quick_replies, routing, workspaces
from workbench.store.db import session_scope
from workbench.store.models import Message, Note, Outbox, Team, User, WorkspaceMember

HOSTILE = "**x** <b>y</b> :red[z]"


def test_admin_creates_a_team_sets_members_and_distribution_and_deletes_it(engine, r):
    ws = make_workspace()
    admin = make_actor(ws)
    ana = make_actor(ws, "agent", email="ana@example.com")
    at = open_page(admin)
    assert not at.exception
    at.text_input(key="team_admin_new_team").input(f"Pós-venda {HOSTILE}")
    at = at.button(key="team_admin_create_team").click().run()
    assert not at.exception
    assert "Equipe criada." in [s.value for s in at.success]
    [team] = workspaces.team_details(admin)
    assert team["name"] == f"Pós-venda {HOSTILE}"
    at.multiselect(key=f"team_admin_team_members_{team['id']}").set_value([ana.user_id])
    at.toggle(key=f"team_admin_team_auto_{team['id']}").set_value(True)
    at = at.button(key="team_admin_save_team").click().run()
    assert not at.exception
    [team] = workspaces.team_details(admin)
    assert (team["auto_assign"], [m["name"] for m in team["members"]]) == (True, ["ana"])
    teams_table = next(d.value for d in at.dataframe if "Distribuir automaticamente" in d.value.columns)
    assert teams_table.iloc[0]["Equipe" if "Equipe" in teams_table.columns else "Time"] == f"Pós-venda {HOSTILE}"
    at = at.button(key="team_admin_delete_team").click().run()
    assert not at.exception
    assert workspaces.team_details(admin) == []


def test_admin_deactivates_a_person_and_resets_a_password_shown_once(engine, r):
    ws = make_workspace()
    admin = make_actor(ws)
    ana = make_actor(ws, "agent", email="ana@example.com")
    at = open_page(admin)
    at.selectbox(key="team_admin_person").set_value(ana.user_id)
    at = at.run()
    at = at.button(key="team_admin_deactivate").click().run()
    assert not at.exception
    with session_scope() as s:
        assert s.get(User, ana.user_id).is_active is False
    at.selectbox(key="team_admin_person").set_value(admin.user_id)
    at = at.run()
    at = at.button(key="team_admin_deactivate").click().run()  # oneself: refused with a message
    assert "Você não pode desativar a própria conta." in [e.value for e in at.error]
    at.selectbox(key="team_admin_person").set_value(ana.user_id)
    at = at.run()
    at = at.button(key="team_admin_activate").click().run()
    at = at.button(key="team_admin_reset").click().run()
    assert not at.exception
    email, password = (c.value for c in at.code)
    assert email == "ana@example.com" and auth.login(email, password)[0].user_id == ana.user_id
    at.run()
    assert not at.code
    # demoting the last admin is refused with the catalog's message
    at.selectbox(key="team_admin_person").set_value(admin.user_id)
    at = at.run()
    at.selectbox(key=f"team_admin_role_{admin.user_id}").set_value("agent")
    at = at.button(key="team_admin_save_role").click().run()
    assert any("último administrador" in e.value for e in at.error)


def test_supervisor_manages_quick_replies_and_a_bad_template_keeps_what_was_typed(engine, r):
    ws = make_workspace()
    supervisor = make_actor(ws, "supervisor")
    at = open_page(supervisor)
    assert not at.exception
    assert not [b for b in at.button if b.key == "team_admin_create_team"]  # teams are the admins'
    version = "0_" + str(abs(hash("")))
    at.text_input(key=f"quick_shortcut_{version}").input("oi")
    at.text_area(key=f"quick_body_{version}").input("Olá {{ contact.name ")
    at = at.button(key="quick_save").click().run()
    assert any(e.value.startswith("O texto da resposta rápida tem um erro de variável") for e in at.error)
    assert at.text_area(key=f"quick_body_{version}").value == "Olá {{ contact.name "
    at.text_area(key=f"quick_body_{version}").input("Olá {{ contact.name }}!")
    at = at.button(key="quick_save").click().run()
    assert "Resposta rápida salva." in [s.value for s in at.success]
    assert [(q["shortcut"], q["body"]) for q in quick_replies.list_replies(supervisor)] == [
        ("oi", "Olá {{ contact.name }}!")]


def test_sidebar_sets_availability_and_my_account_changes_the_name(engine, r):
    ws = make_workspace()
    agent = make_actor(ws, "agent")
    at = open_inbox(agent)
    assert not at.exception
    assert at.selectbox(key="presence_availability").value == "available"
    at = at.selectbox(key="presence_availability").set_value("away").run()
    with session_scope() as s:
        member = s.get(WorkspaceMember, (ws, agent.user_id))
        assert member.availability == "away" and member.last_seen_at is not None
    at.text_input(key="account_name").input("Ana Paula")
    at = at.button(key="account_save_name").click().run()
    assert not at.exception
    with session_scope() as s:
        assert s.get(User, agent.user_id).name == "Ana Paula"
    at.text_input(key="account_current").input(PASSWORD)
    at.text_input(key="account_new").input("outra-senha-boa")
    at.text_input(key="account_confirm").input("outra-senha-ruim")
    at = at.button(key="account_save_password").click().run()
    assert "A nova senha e a repetição não são iguais." in [e.value for e in at.error]
    at.text_input(key="account_confirm").input("outra-senha-boa")
    at.text_input(key="account_new").input("outra-senha-boa")
    at.text_input(key="account_current").input(PASSWORD)
    at = at.button(key="account_save_password").click().run()
    assert "Senha trocada. As outras sessões desta conta foram encerradas." in [s.value for s in at.success]
    assert not at.exception and at.session_state["auth_actor"].user_id == agent.user_id  # goes on, with a new login
    assert auth.login(agent.email, "outra-senha-boa")[0].user_id == agent.user_id


def test_inbox_private_note_shows_apart_and_never_goes_out(engine, r):
    ws = make_workspace()
    inst = make_instance(ws)
    publish(inbound(inst, text="Oi"))
    run_jobs()
    actor = make_actor(ws, "admin")
    bia = make_actor(ws, "agent", email="bia@example.com")
    at = open_inbox(actor)
    conv = the_conversation()
    at = open_conversation(at, conv.id)
    at.text_area(key="inbox_note").input(f"@bia veja isto {HOSTILE}")
    at = at.button(key="inbox_note_submit").click().run()
    assert not at.exception
    assert "Nota salva. Ela não é enviada ao contato." in [s.value for s in at.success]
    texts = [t.value for t in at.text]
    assert f"@bia veja isto {HOSTILE}" in texts  # literal
    assert len(at.chat_message) == 2 and at.chat_message[1].avatar == ":material/lock:"
    with session_scope() as s:
        assert s.scalar(select(func.count(Note.id))) == 1
        assert s.scalar(select(func.count(Message.id))) == 1  # only the contact's message
        assert s.scalar(select(func.count(Outbox.id))) == 0
    assert r.xlen(OUT_STREAM.format(inst)) == 0
    assert len(notifications.list_notifications(bia)) == 1


def test_inbox_transfers_with_a_note_and_sends_a_quick_reply_by_shortcut(engine, r):
    ws = make_workspace()
    inst = make_instance(ws)
    publish(inbound(inst, text="Oi", push_name="Maria"))
    run_jobs()
    admin = make_actor(ws, "admin")
    bia = make_actor(ws, "agent", email="bia@example.com")
    team = make_team(ws, "Suporte", bia.user_id)
    with session_scope() as s:
        s.get(Team, team).auto_assign = True
    routing.set_availability(bia, "available")
    quick_replies.save_reply(admin, "oi", "Olá {{contact.name}}, aqui é {{agent.name}}!")
    at = open_inbox(admin)
    conv = the_conversation()
    at = open_conversation(at, conv.id)
    at = at.chat_input(key="inbox_reply").set_value("/oi").run()
    assert not at.exception
    commands = [decode_outbound(fields) for _, fields in r.xrange(OUT_STREAM.format(inst))]
    assert [c.text for c in commands] == [f"Olá Maria, aqui é {admin.name}!"]
    at = at.chat_input(key="inbox_reply").set_value("/nada").run()
    assert "Resposta rápida não encontrada." in [e.value for e in at.error]
    at.selectbox(key="inbox_transfer_team").set_value(team)
    at.text_area(key="inbox_transfer_note").input("Cliente quer suporte técnico")
    at = at.button(key="inbox_transfer_submit").click().run()
    assert not at.exception
    assert "Conversa transferida." in [s.value for s in at.success]
    assert (the_conversation().agent_id, the_conversation().team_id) == (bia.user_id, team)
    [notice] = notifications.list_notifications(bia)
    assert notice["body"].endswith("Cliente quer suporte técnico")


def test_inbox_sends_a_library_image_with_a_caption(engine, r):
    from tests.test_media_library import PNG
    from workbench.services import media_library

    ws = make_workspace()
    inst = make_instance(ws)
    publish(inbound(inst, text="Tem foto?"))
    run_jobs()
    admin = make_actor(ws, "admin")
    item = media_library.upload_media(admin, "vitrine.png", PNG)
    at = open_conversation(open_inbox(admin), the_conversation().id)
    at.selectbox(key="inbox_media_pick").set_value(item["id"])
    at.text_input(key="inbox_media_caption").input("Nossa vitrine")
    at = at.button(key="inbox_media_send").click().run()
    assert not at.exception
    assert "Mídia enviada para a fila de envio." in [s.value for s in at.success]
    [command] = [decode_outbound(fields) for _, fields in r.xrange(OUT_STREAM.format(inst))]
    assert (command.type, command.text, command.media.filename) == ("image", "Nossa vitrine", "vitrine.png")
    at = at.button(key="inbox_media_send").click().run()  # nothing picked now: a clear refusal
    assert "Escolha um arquivo da biblioteca ou envie um do computador (um de cada vez)." in [e.value for e in at.error]


def test_a_long_thread_shows_the_newest_messages_and_older_ones_on_demand(engine, r):
    from sqlalchemy import text

    ws = make_workspace()
    inst = make_instance(ws)
    publish(inbound(inst, text="primeira"))
    run_jobs()
    conv = the_conversation()
    with session_scope() as s:
        s.execute(text("INSERT INTO messages (workspace_id, instance_id, conversation_id, direction, type, text,"
                       " status) SELECT :ws, :inst, :conv, 'in', 'text', 'mensagem ' || g, 'received'"
                       " FROM generate_series(1, 249) g"), {"ws": ws, "inst": inst, "conv": conv.id})
    at = open_conversation(open_inbox(make_actor(ws)), conv.id)
    assert not at.exception
    assert len(at.chat_message) == 200
    assert at.chat_message[-1].children[0].value == "mensagem 249"
    at = at.button(key="inbox_older").click().run()
    assert len(at.chat_message) == 250
    assert at.chat_message[0].children[0].value == "primeira"
    assert not [b for b in at.button if b.key == "inbox_older"]


def test_saving_a_team_keeps_its_deactivated_members(engine, r):
    ws = make_workspace()
    admin = make_actor(ws)
    ana, bia = make_actor(ws, "agent", email="ana@example.com"), make_actor(ws, "agent", email="bia@example.com")
    team = make_team(ws, "Vendas", ana.user_id, bia.user_id)
    workspaces.set_active(admin, ana.user_id, False)
    at = open_page(admin)
    assert at.multiselect(key=f"team_admin_team_members_{team}").value == [bia.user_id]
    at.text_input(key=f"team_admin_team_name_{team}").input("Vendas SP")
    at = at.button(key="team_admin_save_team").click().run()
    assert not at.exception
    [saved] = workspaces.team_details(admin)
    assert saved["name"] == "Vendas SP" and {m["name"] for m in saved["members"]} == {"ana", "bia"}
