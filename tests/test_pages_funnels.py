"""Funis page (cards, counts, create from an example, activate, publish with problems, delete, import) and the
inbox contact panel's "Funil" section (a live run, stopped from there)."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from engine.core.examples import scheduling_funnel, welcome_funnel
from tests.factories import PASSWORD, inbound, make_actor, make_instance, make_team, make_workspace, publish, run_jobs
from tests.test_pages_app import login, new_app, signed_in_app
from tests.test_pages_inbox import walk
from workbench.services import conversations, funnels
from workbench.store.db import session_scope
from workbench.store.models import Funnel, FunnelRun, Message

HOSTILE = "**x** <b>y</b> [l](http://e.vil) :red[z]"
LEAD = "5511900000001"


def open_page(actor) -> AppTest:
    at = signed_in_app(actor)  # logged in (the login itself is tested in test_pages_app)
    at.run()
    return at.switch_page("pages/funnels.py").run()


def texts(at: AppTest) -> list[str]:
    return [el.value for el in at.text]


def badges(at: AppTest) -> list[str]:
    return [m.value for m in at.markdown if "-badge[" in m.value]


def live_funnel(ws: int, name: str = "Agendamento", build=scheduling_funnel) -> tuple[int, object]:
    """A published, active funnel and an admin of the workspace."""
    admin = make_actor(ws)
    fid = funnels.create_funnel(admin, name, build())
    funnels.publish(admin, fid)
    funnels.set_active(admin, fid, True)
    return fid, admin


def say(inst: int, *messages: str, phone: str = LEAD) -> None:
    publish(*[inbound(inst, phone=phone, text=text) for text in messages])
    run_jobs()


def test_cards_show_trigger_version_switch_and_counts(engine, r):
    ws = make_workspace()
    inst = make_instance(ws)
    make_team(ws, "Vendas")
    fid, admin = live_funnel(ws)
    draft_id = funnels.create_funnel(admin, "Rascunho", welcome_funnel())
    say(inst, "vendas", "Carla", "carla@exemplo.com", "Amanhã às 10h")  # one completed run
    say(inst, "vendas", phone="5511900000002")  # one waiting for the name
    changed = scheduling_funnel()
    changed["nodes"][1]["data"]["text"] = "Versão nova"
    funnels.save_draft(admin, fid, changed)

    at = open_page(make_actor(ws, role="supervisor"))
    assert not at.exception
    assert [t.value for t in at.title] == ["Funis"]
    assert texts(at)[:4] == ["Agendamento", "Palavra-chave: vendas (contém)", "Rascunho",
                             "Primeira mensagem do contato"]
    assert badges(at) == [":blue-badge[:material/verified: Versão 1 publicada]",
                          ":orange-badge[:material/edit_note: Alterações não publicadas]",
                          ":gray-badge[Nunca publicado]"]
    assert [(m.label, m.value) for m in at.metric] == [
        ("Entraram", "2"), ("Concluíram", "1"), ("Em andamento", "1"),
        ("Entraram", "0"), ("Concluíram", "0"), ("Em andamento", "0")]
    assert at.toggle(key=f"funnels_active_{fid}").value is True
    assert at.toggle(key=f"funnels_active_{draft_id}").value is False
    assert [d.label for d in at.download_button] == ["Exportar JSON", "Exportar JSON"]
    # The draft as JSON, literal, with its validation report.
    assert [e.label for e in at.expander][2:] == ["Meta e conversão", "Definição (JSON)"] * 2
    assert json.loads(at.code[0].value) == changed
    assert [s.value for s in at.success] == ["O rascunho não tem problemas e pode ser publicado."] * 2


def test_create_from_an_example_then_publish_and_activate(engine, r):
    ws = make_workspace()
    admin = make_actor(ws)
    at = open_page(admin)
    assert at.info[0].value == "Nenhum funil ainda. Crie um em branco ou a partir de um exemplo."
    assert at.selectbox(key="funnels_new_start").options == [
        "Em branco", "Exemplo: Boas-vindas (primeira mensagem, menu Vendas/Suporte)",
        "Exemplo: Agendamento (palavra-chave “vendas”, nome, e-mail e horário)",
        "Exemplo: Qualificação com IA (palavra-chave “orçamento”; a IA coleta nome, e-mail, empresa e melhor "
        "horário, conferidos)"]
    at.selectbox(key="funnels_new_start").set_value("agendamento")
    at = at.button(key="funnels_create").click().run()  # name left blank: the example's name
    assert not at.exception
    assert [s.value for s in at.success][0] == "Funil criado como rascunho. Publique e ative quando estiver pronto."
    [card] = funnels.list_funnels(admin)
    assert (card["name"], card["draft"], card["is_active"]) == ("Funil de Agendamento", scheduling_funnel(), False)
    assert "Funil de Agendamento" in texts(at) and ":gray-badge[Nunca publicado]" in badges(at)

    at = at.button(key=f"funnels_publish_{card['id']}").click().run()
    assert [s.value for s in at.success][0] == "Versão 1 publicada. Ative o funil para ele começar a responder."
    assert at.button(key=f"funnels_publish_{card['id']}").disabled  # nothing new to publish
    at = at.toggle(key=f"funnels_active_{card['id']}").set_value(True).run()
    assert [s.value for s in at.success][0] == "Funil ativado: ele passa a responder aos contatos."
    assert funnels.list_funnels(admin)[0]["is_active"] is True
    at = at.toggle(key=f"funnels_active_{card['id']}").set_value(False).run()
    assert [s.value for s in at.success][0] == "Funil desativado: ele não inicia mais para novos contatos."
    assert funnels.list_funnels(admin)[0]["is_active"] is False

    # A blank funnel needs a name.
    at.selectbox(key="funnels_new_start").set_value("empty")
    at = at.button(key="funnels_create").click().run()
    assert [e.value for e in at.error] == ["Dê ao funil um nome de até 120 caracteres."]
    at.text_input(key="funnels_new_name").input("Meu funil")
    at = at.button(key="funnels_create").click().run()
    assert [c["name"] for c in funnels.list_funnels(admin)] == ["Funil de Agendamento", "Meu funil"]
    assert at.text_input(key="funnels_new_name").value == ""


def test_switching_on_an_unpublished_funnel_is_refused(engine, r):
    ws = make_workspace()
    admin = make_actor(ws)
    fid = funnels.create_funnel(admin, "Agendamento", scheduling_funnel())
    at = open_page(admin)
    at = at.toggle(key=f"funnels_active_{fid}").set_value(True).run()
    assert not at.exception
    assert [e.value for e in at.error] == ["Publique o funil antes: ainda não há versão publicada."]
    assert at.toggle(key=f"funnels_active_{fid}").value is False  # the switch springs back
    assert funnels.list_funnels(admin)[0]["is_active"] is False


def test_publishing_an_invalid_draft_lists_problems_by_node(engine, r):
    ws = make_workspace()
    admin = make_actor(ws)
    definition = scheduling_funnel()
    next(n for n in definition["nodes"] if n["id"] == "pede_email")["data"]["text"] = ""
    definition["nodes"].append({"id": "sozinho", "type": "end", "position": {"x": 0, "y": 0}, "data": {}})
    definition["edges"].append({"id": "solta", "source": "fantasma", "target": "fim", "label": "next"})
    fid = funnels.create_funnel(admin, "Quebrado", definition)
    at = open_page(admin)
    assert [w.value for w in at.warning] == ["O rascunho tem 3 problema(s) a corrigir antes de publicar:"]
    at = at.button(key=f"funnels_publish_{fid}").click().run()
    assert not at.exception
    assert [e.value for e in at.error] == ["O funil tem 3 problema(s) a corrigir antes de publicar."]
    listed = [text for text in texts(at) if text.startswith(("Nó ", "Conexão ", "Funil inteiro"))]
    expected = ["Nó pede_email:\n  • data: informe o texto ou a mídia da mensagem",
                "Conexão solta:\n  • a conexão liga um nó que não existe: 'fantasma'",
                "Nó sozinho:\n  • nenhum caminho a partir do gatilho chega a este nó"]
    assert sorted(listed) == sorted(expected * 2)  # next to the error, and in "Definição (JSON)"
    assert funnels.list_funnels(admin)[0]["published_version"] is None
    at.run()  # the list next to the error is shown once; the draft's report stays in the expander
    assert sorted(t for t in texts(at) if t.startswith(("Nó ", "Conexão "))) == sorted(expected)

    # Fixed outside and loaded back into the same funnel's draft, it publishes.
    fixed = json.dumps(scheduling_funnel()).encode("utf-8")
    at.file_uploader(key=f"funnels_replace_file_{fid}_0").set_value(("corrigido.json", fixed, "application/json"))
    at = at.button(key=f"funnels_replace_{fid}").click().run()
    assert not at.exception
    assert [s.value for s in at.success][0] == "Rascunho substituído. Publique para ele valer para os contatos."
    assert not [t for t in texts(at) if t.startswith(("Nó ", "Conexão "))]
    at = at.button(key=f"funnels_publish_{fid}").click().run()
    assert [s.value for s in at.success][0] == "Versão 1 publicada. Ative o funil para ele começar a responder."
    assert [c["id"] for c in funnels.list_funnels(admin)] == [fid]  # the same funnel, not a new one


def test_a_team_of_another_workspace_is_listed_as_a_problem_of_its_node(engine, r):
    admin = make_actor(make_workspace())
    elsewhere = make_team(make_workspace("Outra"), "Vendas")
    definition = welcome_funnel()
    next(n for n in definition["nodes"] if n["id"] == "rota_vendas")["data"] = {"team_id": elsewhere}
    fid = funnels.create_funnel(admin, "Importado", definition)
    at = open_page(admin)
    assert [w.value for w in at.warning] == ["O rascunho tem 1 problema(s) a corrigir antes de publicar:"]
    at = at.button(key=f"funnels_publish_{fid}").click().run()
    assert [e.value for e in at.error] == ["O funil tem 1 problema(s) a corrigir antes de publicar."]
    assert f"Nó rota_vendas:\n  • data.team_id: a equipe {elsewhere} não existe neste espaço de trabalho" in texts(at)


def test_delete_asks_for_confirmation(engine, r):
    ws = make_workspace()
    admin = make_actor(ws)
    fid = funnels.create_funnel(admin, "Agendamento", scheduling_funnel())
    at = open_page(admin)
    at = at.button(key=f"funnels_delete_{fid}").click().run()
    assert [w.value for w in at.warning][0].startswith("Excluir este funil?")
    assert len(funnels.list_funnels(admin)) == 1  # nothing deleted yet
    at = at.button(key=f"funnels_no_delete_{fid}").click().run()
    assert not [w for w in at.warning if w.value.startswith("Excluir")]
    at = at.button(key=f"funnels_delete_{fid}").click().run()
    at = at.button(key=f"funnels_yes_delete_{fid}").click().run()
    assert not at.exception
    assert [s.value for s in at.success] == ["Funil excluído."]
    assert funnels.list_funnels(admin) == []
    assert at.info[0].value == "Nenhum funil ainda. Crie um em branco ou a partir de um exemplo."


def test_duplicate_and_import(engine, r):
    ws = make_workspace()
    admin = make_actor(ws)
    fid = funnels.create_funnel(admin, "Agendamento", scheduling_funnel())
    at = open_page(admin)
    at = at.button(key=f"funnels_duplicate_{fid}").click().run()
    assert [s.value for s in at.success][0] == "Cópia criada, em rascunho e desativada."
    assert "Agendamento (cópia)" in texts(at)

    # Nothing chosen, then a malformed file: clear messages, nothing created.
    at = at.button(key="funnels_import").click().run()
    assert [e.value for e in at.error] == ["Escolha um arquivo JSON primeiro."]
    at.file_uploader(key="funnels_import_file_0").set_value(("quebrado.json", b"{nope", "application/json"))
    at = at.button(key="funnels_import").click().run()
    assert [e.value for e in at.error] == [
        "Não foi possível importar o arquivo: JSON inválido na linha 1, coluna 2: Expecting property name "
        "enclosed in double quotes"]
    assert len(funnels.list_funnels(admin)) == 2

    # An exported funnel, named after the file.
    exported = funnels.export_funnel(admin, fid).encode("utf-8")
    at.file_uploader(key="funnels_import_file_0").set_value(("Vendas Março.json", exported, "application/json"))
    at = at.button(key="funnels_import").click().run()
    assert not at.exception
    assert [s.value for s in at.success][0] == "Funil importado como rascunho."
    imported = next(c for c in funnels.list_funnels(admin) if c["name"] == "Vendas Março")
    assert imported["draft"] == scheduling_funnel()
    assert at.file_uploader(key="funnels_import_file_1").value is None  # a fresh uploader for the next file

    # A file whose definition has problems is kept as a draft to fix, with a warning.
    at.file_uploader(key="funnels_import_file_1").set_value(("x.json", b'{"nodes": []}', "application/json"))
    at.text_input(key="funnels_import_name").input("Vazio")
    at = at.button(key="funnels_import").click().run()
    assert [w.value for w in at.warning][0].startswith("Funil importado como rascunho, com 1 problema(s)")
    assert "Vazio" in [c["name"] for c in funnels.list_funnels(admin)]


def test_user_typed_names_stay_literal(engine, r):
    ws = make_workspace()
    admin = make_actor(ws)
    funnels.create_funnel(admin, HOSTILE, {"nodes": [{"id": "t", "type": "trigger", "data": {
        "kind": "keyword", "words": [HOSTILE]}}], "edges": []})
    at = open_page(admin)
    assert not at.exception
    where = {}
    for node in walk(at.main):
        proto = getattr(node, "proto", None)
        if proto is not None and "e.vil" in str(proto):
            where.setdefault(node.type, []).append(node)
    assert set(where) <= {"text", "code"}, f"user text reached {set(where) - {'text', 'code'}}"
    assert HOSTILE in texts(at) and f"Palavra-chave: {HOSTILE} (contém)" in texts(at)


def test_agents_do_not_get_the_page(engine, r):
    ws = make_workspace()
    agent = make_actor(ws, role="agent")
    at = login(new_app().run(), agent.email, PASSWORD)
    assert not at.exception
    with pytest.raises(ValueError):  # not in the agent's navigation
        at.switch_page("pages/funnels.py")


def test_inbox_panel_shows_the_live_run_and_stops_it(engine, r):
    ws = make_workspace()
    inst = make_instance(ws)
    make_team(ws, "Vendas")
    live_funnel(ws, name=HOSTILE)
    say(inst, "vendas")
    agent = make_actor(ws, role="agent")  # agents may stop the bot in conversations they see
    conversation_id = conversations.list_conversations(agent)[0]["id"]
    at = signed_in_app(agent)
    at = at.run().button(key=f"inbox_open_{conversation_id}").click().run()
    assert not at.exception
    assert "Funil" in [h.value for h in at.subheader]
    panel = texts(at)
    assert HOSTILE in panel and "espera_nome" in panel  # the funnel's name, literal; the node it waits on
    assert ":blue-badge[Aguardando]" in [m.value for m in at.markdown]
    assert [c.value for c in at.caption if c.value in ("Etapa atual", "Início", "Prazo da espera")] == [
        "Etapa atual", "Início", "Prazo da espera"]
    with session_scope() as s:
        run_id = s.scalar(select(FunnelRun.id))

    at = at.button(key=f"inbox_stop_run_{run_id}").click().run()
    assert not at.exception
    assert [s.value for s in at.success] == ["Funil parado. O bot não continua este funil com o contato."]
    with session_scope() as s:
        assert s.get(FunnelRun, run_id).status == "stopped"
    assert ":gray-badge[Parado]" in [m.value for m in at.markdown]
    assert not [b for b in at.button if b.key == f"inbox_stop_run_{run_id}"]

    say(inst, "Carla")  # the funnel does not go on
    with session_scope() as s:
        sent = s.scalars(select(Message.text).where(Message.direction == "out")).all()
        assert len(sent) == 1 and s.scalar(select(Funnel.name)) == HOSTILE


def test_agent_starts_a_funnel_by_hand_from_the_inbox(engine, r):
    ws = make_workspace()
    inst = make_instance(ws)
    make_team(ws, "Vendas")
    funnel_id, _ = live_funnel(ws, name="Agendamento")
    say(inst, "bom dia")  # no trigger matches: the contact is not in any funnel
    agent = make_actor(ws, role="agent")
    conversation_id = conversations.list_conversations(agent)[0]["id"]
    conversations.pause_bot(agent, conversation_id)
    at = signed_in_app(agent)
    at = at.run().button(key=f"inbox_open_{conversation_id}").click().run()
    assert at.selectbox(key="inbox_start_funnel").value == funnel_id
    at = at.button(key="inbox_start_funnel_go").click().run()
    assert not at.exception
    assert [s.value for s in at.success] == ["Funil iniciado para este contato."]
    with session_scope() as s:
        run = s.scalars(select(FunnelRun)).one()
        assert (run.status, run.current_node) == ("waiting", "espera_nome")
        sent = s.scalars(select(Message.text).where(Message.direction == "out")).all()
        assert sent == ["Olá! Sou o assistente virtual do time de vendas. Para começar, qual é o seu nome?"]
    assert r.xlen(f"wb:out:{inst}") == 1 and r.zcard("rq:scheduled:default") == 1  # published and timer set
    assert conversations.get_conversation(agent, conversation_id)["bot_paused"] is False


def test_starting_an_inactive_funnel_is_refused(engine, r):
    from workbench.base.errors import Conflict
    from workbench.services import funnels

    ws = make_workspace()
    inst = make_instance(ws)
    funnel_id, admin = live_funnel(ws, name="Agendamento")
    funnels.set_active(admin, funnel_id, False)
    say(inst, "oi")
    conversation_id = conversations.list_conversations(admin)[0]["id"]
    with pytest.raises(Conflict):
        funnels.start_for_conversation(admin, conversation_id, funnel_id)


def test_an_example_can_be_created_with_the_optional_odoo_step(engine, r):
    admin = make_actor(make_workspace())
    at = open_page(admin)
    at.selectbox(key="funnels_new_start").set_value("agendamento")
    at.checkbox(key="funnels_new_odoo").check()
    at = at.button(key="funnels_create").click().run()
    assert not at.exception
    [funnel] = funnels.list_funnels(admin)
    draft = funnels.get_funnel(admin, funnel["id"])["draft"]
    assert "enviar_odoo" in {n["id"] for n in draft["nodes"]}
    assert funnels.validate(admin, draft).is_valid
