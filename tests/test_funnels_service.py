"""workbench.services.funnels: drafts, versions, activation, copies, import/export, permissions, isolation, run counts,
and stopping a contact's run — on the real database."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from engine.core.definition import validate_definition
from engine.core.examples import EXAMPLES, scheduling_funnel, welcome_funnel
from tests.factories import inbound, make_actor, make_instance, make_team, make_workspace, publish, run_jobs
from workbench.base import i18n
from workbench.base.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from workbench.base.i18n import error_text, trigger_label
from workbench.services import conversations, funnels
from workbench.services.workspaces import ensure_demo_workspace
from workbench.store import live
from workbench.store.bus import get_redis
from workbench.store.db import session_scope
from workbench.store.models import Funnel, FunnelRun, FunnelVersion


def broken_scheduling() -> dict:
    """The scheduling example with three mistakes: an empty message, a dangling edge, an unreachable node."""
    definition = scheduling_funnel()
    next(n for n in definition["nodes"] if n["id"] == "pede_email")["data"]["text"] = ""
    definition["edges"].append({"id": "solta", "source": "fim", "target": "nao_existe", "label": "next"})
    definition["nodes"].append({"id": "sozinho", "type": "end", "position": {"x": 0, "y": 0}, "data": {}})
    return definition


def versions_of(funnel_id: int) -> list[int]:
    with session_scope() as s:
        return list(s.scalars(select(FunnelVersion.version).where(FunnelVersion.funnel_id == funnel_id)
                              .order_by(FunnelVersion.version)))


def card(actor, funnel_id: int) -> dict:
    return next(c for c in funnels.list_funnels(actor) if c["id"] == funnel_id)


def say(inst: int, phone: str, *texts: str) -> None:
    publish(*[inbound(inst, phone=phone, text=text) for text in texts])
    run_jobs()


def test_create_save_publish_makes_versions(engine, r):
    admin = make_actor(make_workspace())
    fid = funnels.create_funnel(admin, "  Boas-vindas  ")
    got = funnels.get_funnel(admin, fid)
    assert (got["name"], got["draft"], got["published_version_id"]) == ("Boas-vindas", funnels.EMPTY, None)
    assert card(admin, fid)["has_draft_changes"] is False  # an empty, never-published draft has nothing to lose

    report = funnels.save_draft(admin, fid, welcome_funnel())
    assert report.is_valid
    assert card(admin, fid)["published_version"] is None and card(admin, fid)["has_draft_changes"] is True
    assert funnels.publish(admin, fid) == 1
    first = card(admin, fid)
    assert (first["published_version"], first["has_draft_changes"]) == (1, False)
    assert first["trigger"] == {"kind": "first_message", "priority": 10}

    changed = welcome_funnel()
    changed["nodes"][1]["data"]["text"] = "Oi! Versão 2."
    funnels.save_draft(admin, fid, changed)
    assert card(admin, fid)["has_draft_changes"] is True
    assert funnels.publish(admin, fid) == 2
    assert versions_of(fid) == [1, 2]
    assert card(admin, fid)["published_version"] == 2

    # Discarding a draft brings back the published version.
    funnels.save_draft(admin, fid, broken_scheduling())
    funnels.discard_draft(admin, fid)
    assert funnels.get_funnel(admin, fid)["draft"] == changed


def test_publish_is_refused_with_every_problem_and_no_version(engine, r):
    admin = make_actor(make_workspace())
    fid = funnels.create_funnel(admin, "Quebrado", broken_scheduling())
    report = funnels.save_draft(admin, fid, broken_scheduling())  # a draft may be unfinished: it is stored
    assert not report.is_valid
    with pytest.raises(InvalidInput) as refused:
        funnels.publish(admin, fid)
    assert refused.value.key == "error.funnel_invalid"
    count = len(report.errors)
    assert error_text(refused.value) == f"O funil tem {count} problema(s) a corrigir antes de publicar."
    assert versions_of(fid) == []
    # What the page lists: each problem with its node id.
    by_node = validate_definition(funnels.get_funnel(admin, fid)["draft"]).by_node()
    assert {"pede_email", "fim", "sozinho"} <= set(by_node)
    assert [p.code for p in by_node["sozinho"]] == ["unreachable_node"]


def test_only_a_published_funnel_can_be_switched_on(engine, r):
    admin = make_actor(make_workspace())
    fid = funnels.create_funnel(admin, "Agendamento", scheduling_funnel())
    with pytest.raises(Conflict) as refused:
        funnels.set_active(admin, fid, True)
    assert error_text(refused.value) == "Publique o funil antes: ainda não há versão publicada."
    assert card(admin, fid)["is_active"] is False
    funnels.set_active(admin, fid, False)  # switching off is always fine
    funnels.publish(admin, fid)
    funnels.set_active(admin, fid, True)
    assert card(admin, fid)["is_active"] is True


def test_duplicate_copies_the_draft_inactive_and_unpublished(engine, r):
    admin = make_actor(make_workspace())
    fid = funnels.create_funnel(admin, "Agendamento", scheduling_funnel())
    funnels.publish(admin, fid)
    funnels.set_active(admin, fid, True)
    copy_id = funnels.duplicate(admin, fid)
    copy = card(admin, copy_id)
    assert copy["name"] == "Agendamento (cópia)"
    assert (copy["is_active"], copy["published_version"]) == (False, None)
    assert copy["draft"] == funnels.get_funnel(admin, fid)["draft"]
    long_id = funnels.create_funnel(admin, "x" * 120)
    assert len(card(admin, funnels.duplicate(admin, long_id))["name"]) == 120  # still a valid name


def test_delete_removes_the_funnel_its_versions_and_runs(engine, r):
    ws = make_workspace()
    inst = make_instance(ws)
    admin = make_actor(ws)
    make_team(ws, "Vendas")
    fid = funnels.create_funnel(admin, "Agendamento", scheduling_funnel())
    funnels.publish(admin, fid)
    funnels.set_active(admin, fid, True)
    say(inst, "5511900000001", "vendas")
    funnels.delete_funnel(admin, fid)
    with pytest.raises(NotFound):
        funnels.get_funnel(admin, fid)
    assert funnels.list_funnels(admin) == []
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(FunnelVersion)) == 0
        assert s.scalar(select(func.count()).select_from(FunnelRun)) == 0
    say(inst, "5511900000002", "vendas")  # nothing starts any more
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(FunnelRun)) == 0


@pytest.mark.parametrize("text, reason", [
    ("{nope", "JSON inválido na linha 1, coluna 2"),
    ("[]", "o JSON deve ser um objeto com a lista 'nodes' (e 'edges')"),
    ('{"nodes": [], "edges": {}}', "'edges' deve ser uma lista"),
    (b"", "o arquivo está vazio"),
    (b"\xff\xfe{}", "o arquivo não está em UTF-8"),
    ('{"nodes": [], "x": NaN}', "o JSON contém o valor não suportado NaN"),
])
def test_import_refuses_malformed_json_with_the_reason(engine, r, text, reason):
    admin = make_actor(make_workspace())
    with pytest.raises(InvalidInput) as refused:
        funnels.import_funnel(admin, "Importado", text)
    assert refused.value.key == "error.funnel_import"
    assert error_text(refused.value).startswith(f"Não foi possível importar o arquivo: {reason}")
    assert funnels.list_funnels(admin) == []


def test_import_needs_a_name_and_keeps_a_draft_with_problems(engine, r):
    admin = make_actor(make_workspace())
    with pytest.raises(InvalidInput) as unnamed:
        funnels.import_funnel(admin, "   ", json.dumps(welcome_funnel()))
    assert error_text(unnamed.value) == "Dê ao funil um nome de até 120 caracteres."
    # Malformed nodes are stored as a draft to fix; the list still works (and names no trigger).
    fid = funnels.import_funnel(admin, "Estranho", '{"nodes": [1, {"id": "t", "type": "trigger", "data": [1]}]}')
    assert card(admin, fid)["trigger"] == {}  # a trigger node whose data is not an object
    assert trigger_label(card(admin, fid)["trigger"]) == "Sem gatilho"
    assert not validate_definition(funnels.get_funnel(admin, fid)["draft"]).is_valid


def test_export_then_import_round_trips(engine, r):
    admin = make_actor(make_workspace())
    original = scheduling_funnel()
    fid = funnels.create_funnel(admin, "Agendamento", original)
    exported = funnels.export_funnel(admin, fid)
    assert json.loads(exported) == original
    assert "Olá! Sou o assistente virtual" in exported  # UTF-8 kept readable, not \\u escapes
    again = funnels.import_funnel(admin, "Agendamento 2", ("\ufeff" + exported).encode("utf-8"))  # BOM: fine
    assert funnels.get_funnel(admin, again)["draft"] == original
    assert funnels.publish(admin, again) == 1  # the copy is publishable as it is


def test_import_draft_replaces_the_draft_and_keeps_versions(engine, r):
    admin = make_actor(make_workspace())
    fid = funnels.create_funnel(admin, "Boas-vindas", welcome_funnel())
    funnels.publish(admin, fid)
    report = funnels.import_draft(admin, fid, funnels.export_funnel(admin, fid).replace("Vendas", "Comercial"))
    assert report.is_valid
    assert card(admin, fid)["has_draft_changes"] is True and versions_of(fid) == [1]
    assert funnels.publish(admin, fid) == 2
    report = funnels.import_draft(admin, fid, '{"nodes": []}')  # stored even with problems, to fix later
    assert [p.code for p in report.errors] == ["no_start"]
    with pytest.raises(InvalidInput) as refused:
        funnels.import_draft(admin, fid, "{nope")
    assert refused.value.key == "error.funnel_import"
    assert funnels.get_funnel(admin, fid)["draft"] == {"nodes": [], "edges": []}
    with pytest.raises(NotFound):
        funnels.import_draft(make_actor(make_workspace("Outra")), fid, '{"nodes": []}')


def test_other_workspaces_funnels_are_not_found(engine, r):
    admin = make_actor(make_workspace())
    fid = funnels.create_funnel(admin, "Nosso", welcome_funnel())
    stranger = make_actor(make_workspace("Outra loja"))
    assert funnels.list_funnels(stranger) == []
    for attempt in (
        lambda: funnels.get_funnel(stranger, fid),
        lambda: funnels.save_draft(stranger, fid, welcome_funnel()),
        lambda: funnels.publish(stranger, fid),
        lambda: funnels.discard_draft(stranger, fid),
        lambda: funnels.set_active(stranger, fid, False),
        lambda: funnels.duplicate(stranger, fid),
        lambda: funnels.delete_funnel(stranger, fid),
        lambda: funnels.export_funnel(stranger, fid),
    ):
        with pytest.raises(NotFound) as missing:
            attempt()
        assert error_text(missing.value) == "Funil não encontrado."
    assert funnels.get_funnel(admin, fid)["draft"] == welcome_funnel()  # untouched


def test_agents_neither_read_nor_edit_funnels(engine, r):
    ws = make_workspace()
    admin, agent = make_actor(ws), make_actor(ws, role="agent")
    fid = funnels.create_funnel(admin, "Boas-vindas", welcome_funnel())
    for attempt in (
        lambda: funnels.create_funnel(agent, "Meu"),
        lambda: funnels.save_draft(agent, fid, scheduling_funnel()),
        lambda: funnels.publish(agent, fid),
        lambda: funnels.discard_draft(agent, fid),
        lambda: funnels.set_active(agent, fid, True),
        lambda: funnels.duplicate(agent, fid),
        lambda: funnels.delete_funnel(agent, fid),
        lambda: funnels.import_funnel(agent, "Meu", "{nope"),  # refused before the file is even read
        lambda: funnels.import_draft(agent, fid, "{nope"),
        lambda: funnels.list_funnels(agent),  # drafts are the marketers' work in progress
        lambda: funnels.get_funnel(agent, fid),
        lambda: funnels.export_funnel(agent, fid),
    ):
        with pytest.raises(PermissionDenied):
            attempt()
    assert versions_of(fid) == []
    supervisor = make_actor(ws, role="supervisor")  # supervisors are marketers too
    assert funnels.publish(supervisor, fid) == 1


def test_list_counts_runs_entered_completed_and_waiting(engine, r):
    ws = make_workspace()
    inst = make_instance(ws)
    admin = make_actor(ws)
    make_team(ws, "Vendas")
    fid = funnels.create_funnel(admin, "Agendamento", scheduling_funnel())
    other = funnels.create_funnel(admin, "Outro")
    funnels.publish(admin, fid)
    funnels.set_active(admin, fid, True)
    say(inst, "5511900000001", "vendas")
    say(inst, "5511900000001", "Carla")
    say(inst, "5511900000001", "carla@exemplo.com")
    say(inst, "5511900000001", "Amanhã às 10h")  # completed
    say(inst, "5511900000002", "quero falar com vendas")  # waits for the name
    counts = {c["id"]: (c["entered"], c["completed"], c["waiting"]) for c in funnels.list_funnels(admin)}
    assert counts == {fid: (2, 1, 1), other: (0, 0, 0)}
    assert card(admin, fid)["is_active"] and card(admin, fid)["published_version"] == 1


def test_contact_runs_and_stopping_a_live_run(engine, r):
    ws = make_workspace()
    inst = make_instance(ws)
    admin, agent, pedro = make_actor(ws), make_actor(ws, role="agent"), make_actor(ws, role="agent")
    fid = funnels.create_funnel(admin, "Agendamento", scheduling_funnel())
    funnels.publish(admin, fid)
    funnels.set_active(admin, fid, True)
    say(inst, "5511900000001", "vendas")
    conversation = conversations.list_conversations(admin)[0]
    [run] = funnels.contact_runs(agent, conversation["contact_id"])
    assert (run["funnel"], run["status"], run["node"]) == ("Agendamento", "waiting", "espera_nome")
    assert run["deadline"] is not None and run["started_at"] is not None and run["error"] is None
    assert funnels.contact_runs(make_actor(make_workspace("Outra")), conversation["contact_id"]) == []

    # Only someone who sees the conversation may stop it.
    conversations.assign(admin, conversation["id"], agent_id=pedro.user_id)
    assert funnels.contact_runs(agent, conversation["contact_id"]) == [], "not listed either"
    assert [r["id"] for r in funnels.contact_runs(pedro, conversation["contact_id"])] == [run["id"]]
    with pytest.raises(NotFound) as hidden:
        funnels.stop_contact_run(agent, run["id"])
    assert error_text(hidden.value) == "Execução de funil não encontrada."
    with pytest.raises(NotFound):
        funnels.stop_contact_run(make_actor(make_workspace("Outra")), run["id"])

    before = live.revision(get_redis(), ws)
    funnels.stop_contact_run(pedro, run["id"])
    assert live.revision(get_redis(), ws) > before  # open inboxes re-read
    [stopped] = funnels.contact_runs(admin, conversation["contact_id"])
    assert stopped["status"] == "stopped" and stopped["deadline"] is None
    with pytest.raises(Conflict) as ended:
        funnels.stop_contact_run(pedro, run["id"])
    assert error_text(ended.value) == "Este funil já tinha terminado para o contato; não há nada para parar."


def test_demo_workspace_ships_the_examples_published_and_active(engine, r):
    assert ensure_demo_workspace() is not None
    with session_scope() as s:
        workspace_id = s.scalar(select(Funnel.workspace_id))
    cards = funnels.list_funnels(make_actor(workspace_id))
    assert sorted(c["name"] for c in cards) == sorted(name for name, _ in EXAMPLES.values())
    assert all(c["is_active"] and c["published_version"] == 1 and not c["has_draft_changes"] for c in cards)
    assert sorted(trigger_label(c["trigger"]) for c in cards) == [
        "Palavra-chave: orçamento, orcamento (contém)", "Palavra-chave: vendas (contém)",
        "Primeira mensagem do contato"]


@pytest.mark.parametrize("trigger, label", [
    ({"kind": "keyword", "mode": "contains", "words": ["vendas", "preço"]}, "Palavra-chave: vendas, preço (contém)"),
    ({"kind": "keyword", "mode": "exact", "words": ["oi"]}, "Palavra-chave: oi (exata)"),
    ({"kind": "keyword", "mode": "regex", "words": ["^pre[cç]o"]}, "Palavra-chave: ^pre[cç]o (expressão regular)"),
    ({"words": ["vendas"]}, "Palavra-chave: vendas (contém)"),  # the node's defaults
    ({"kind": "first_message"}, "Primeira mensagem do contato"),
    ({"kind": "any_message"}, "Qualquer mensagem"),
    ({"kind": "tag_added", "tag": "vip"}, "Tag adicionada: vip"),
    ({"kind": "tag_added"}, "Tag adicionada"),
    ({"kind": "manual"}, "Início manual"),
    ({"kind": "teleport"}, "Gatilho desconhecido"),
    ({"kind": ["keyword"]}, "Gatilho desconhecido"),
    (None, "Sem gatilho"),
])
def test_trigger_label(trigger, label):
    assert i18n.trigger_label(trigger) == label
