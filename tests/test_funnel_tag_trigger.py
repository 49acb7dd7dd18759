"""The "Tag adicionada" trigger for real: a tag put on a contact by an agent or by a funnel's add-tag step
starts the funnel waiting for it, under the same rules as messages, on PostgreSQL and Redis."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select

from connector.contracts import OUT_STREAM
from engine.core.examples import scheduling_funnel
from tests.test_funnel_runtime import bot_texts, say, setup_workspace
from workbench.services import contacts, conversations
from workbench.services.runs import MAX_CHAIN
from workbench.store.db import session_scope
from workbench.store.models import Funnel, FunnelEvent, FunnelRun


def linear(trigger: dict[str, Any], *steps: tuple[str, dict[str, Any]]):
    """A funnel builder: the trigger, then each (type, data) step in a row, then the end."""
    def build() -> dict[str, Any]:
        nodes = [{"id": "gatilho", "type": "trigger", "position": {"x": 0, "y": 0}, "data": trigger}]
        for k, (node_type, data) in enumerate(steps):
            nodes.append({"id": f"passo{k}", "type": node_type, "position": {"x": 300 * (k + 1), "y": 0},
                          "data": data})
        nodes.append({"id": "fim", "type": "end", "position": {"x": 300 * (len(steps) + 1), "y": 0}, "data": {}})
        ids = [n["id"] for n in nodes]
        edges = [{"id": f"e{k}", "source": a, "target": b, "label": "next"} for k, (a, b) in
                 enumerate(zip(ids, ids[1:], strict=False))]
        return {"nodes": nodes, "edges": edges}
    return build


def on_tag(tag: str, **extra: Any) -> dict[str, Any]:
    return {"kind": "tag_added", "tag": tag, **extra}


def send(text: str) -> tuple[str, dict[str, Any]]:
    return "send_message", {"text": text, "typing": False}


def run_rows() -> list[tuple[str, str, str | None]]:
    """(funnel name, status, error) of every run, oldest first."""
    with session_scope() as s:
        return [tuple(row) for row in s.execute(select(Funnel.name, FunnelRun.status, FunnelRun.error)
                                                .join(Funnel, Funnel.id == FunnelRun.funnel_id).order_by(FunnelRun.id))]


def workspace(*builders):
    """Funnels published and active, and a lead whose first message matched none of them."""
    ws, inst, admin, _ = setup_workspace(*builders)
    say(inst, "bom dia")
    return inst, admin, conversations.list_conversations(admin)[0]


def test_an_agent_tag_starts_the_funnel_and_its_message_goes_out(engine, r):
    inst, admin, conversation = workspace(
        ("Clube VIP", linear(on_tag("VIP"), send("Bem-vindo ao clube VIP, plano {{contact.custom_data.plano}}!"))))
    assert bot_texts() == [] and run_rows() == []
    contacts.update_contact(admin, conversation["contact_id"], custom_data={"plano": "Ouro"})

    assert contacts.add_tag(admin, conversation["contact_id"], " vip ") == "vip"  # the trigger ignores case
    assert bot_texts() == ["Bem-vindo ao clube VIP, plano Ouro!"]
    assert run_rows() == [("Clube VIP", "completed", None)]
    assert r.xlen(OUT_STREAM.format(inst)) == 1  # published to the connector after commit
    with session_scope() as s:
        assert s.scalars(select(FunnelEvent.node_id).order_by(FunnelEvent.id)).all() == ["gatilho", "passo0", "fim"]

    contacts.add_tag(admin, conversation["contact_id"], "VIP")  # already carried: nothing new, nothing starts
    assert len(bot_texts()) == 1 and len(run_rows()) == 1


def test_no_start_while_the_bot_is_paused(engine, r):
    inst, admin, conversation = workspace(("Clube VIP", linear(on_tag("vip"), send("Bem-vindo!"))))
    conversations.pause_bot(admin, conversation["id"])
    contacts.add_tag(admin, conversation["contact_id"], "vip")
    assert bot_texts() == [] and run_rows() == [] and r.xlen(OUT_STREAM.format(inst)) == 0


def test_a_live_run_is_interrupted_only_by_restart_running(engine, r):
    inst, admin, conversation = workspace(
        ("Agendamento", scheduling_funnel),
        ("Quente", linear(on_tag("quente"), send("Lead quente!"))),
        ("Urgente", linear(on_tag("urgente", restart_running=True), send("Atendimento urgente!"))),
    )
    say(inst, "quero falar com vendas")
    assert run_rows() == [("Agendamento", "waiting", None)]

    contacts.add_tag(admin, conversation["contact_id"], "quente")
    assert run_rows() == [("Agendamento", "waiting", None)]  # the reply still goes to the waiting run
    assert bot_texts()[-1].endswith("qual é o seu nome?")

    contacts.add_tag(admin, conversation["contact_id"], "urgente")
    assert run_rows() == [("Agendamento", "stopped", "restarted by trigger"), ("Urgente", "completed", None)]
    assert bot_texts()[-1] == "Atendimento urgente!"


def test_an_add_tag_step_starts_the_funnel_of_that_tag(engine, r):
    ws, inst, admin, _ = setup_workspace(
        ("Entrada", linear({"kind": "keyword", "words": ["oi"]}, send("Olá!"), ("add_tag", {"tag": "lead"}))),
        ("Qualificação", linear(on_tag("Lead"), send("Vamos te conhecer melhor."))),
    )
    say(inst, "oi")
    assert bot_texts() == ["Olá!", "Vamos te conhecer melhor."]
    assert run_rows() == [("Entrada", "completed", None), ("Qualificação", "completed", None)]
    assert r.xlen(OUT_STREAM.format(inst)) == 2
    assert contacts.contact_profile(admin, conversations.list_conversations(admin)[0]["contact_id"])["tags"] == [
        "lead"]


def test_a_step_tag_does_not_restart_the_running_funnel_without_restart_running(engine, r):
    ws, inst, admin, _ = setup_workspace(
        ("Entrada", linear({"kind": "keyword", "words": ["oi"]}, ("add_tag", {"tag": "lead"}),
                           ("wait_reply", {"save_to": "vars.resposta", "validation": "any"}), send("Anotado."))),
        ("Qualificação", linear(on_tag("lead"), send("Vamos te conhecer melhor."))),
    )
    say(inst, "oi")  # Entrada waits for the reply after tagging: the tag trigger may not interrupt it
    assert run_rows() == [("Entrada", "waiting", None)] and bot_texts() == []
    say(inst, "certo")
    assert bot_texts() == ["Anotado."]


def test_funnels_tagging_each_other_are_cut_after_the_chain_limit(engine, r, caplog):
    inst, admin, conversation = workspace(
        ("A", linear(on_tag("a"), send("A"), ("remove_tag", {"tag": "a"}), ("add_tag", {"tag": "b"}))),
        ("B", linear(on_tag("b"), send("B"), ("remove_tag", {"tag": "b"}), ("add_tag", {"tag": "a"}))),
    )
    with caplog.at_level(logging.WARNING, logger="workbench.services.runs"):
        contacts.add_tag(admin, conversation["contact_id"], "a")
    # the agent's tag starts A; then MAX_CHAIN more funnels, one per tag a funnel added
    assert len(run_rows()) == MAX_CHAIN + 1
    assert bot_texts() == ["A", "B"] * ((MAX_CHAIN + 1) // 2)
    assert r.xlen(OUT_STREAM.format(inst)) == MAX_CHAIN + 1
    assert any("cut" in record.getMessage() for record in caplog.records)


def test_a_funnel_that_hands_over_to_a_human_starts_no_tag_funnel(engine, r):
    ws, inst, admin, _ = setup_workspace(
        ("Agendamento", scheduling_funnel),  # tags "agendamento", then routes to Vendas and pauses the bot
        ("Pós-agendamento", linear(on_tag("agendamento"), send("Não deveria sair."))),
    )
    say(inst, "vendas", "Carla", "carla@exemplo.com", "Amanhã às 10h")
    assert run_rows() == [("Agendamento", "completed", None)]
    assert bot_texts()[-1].startswith("Tudo certo!")
